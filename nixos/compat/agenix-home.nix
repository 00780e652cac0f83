# Lets a home-manager configuration written for agenix's home-manager module run on secretd
# unchanged: it declares that module's `age.*` options and maps them onto the `secretd.*` of
# ../home-manager.nix. Secrets land where agenix puts them: $XDG_RUNTIME_DIR/agenix, a symlink
# to generations in $XDG_RUNTIME_DIR/agenix.d. Import it instead of agenix's module, not beside
# it.
{
  config,
  lib,
  ...
}:

let
  inherit (lib) mkOption types;

  cfg = config.age;
  home = config.home.homeDirectory;

  secretType = types.submodule {
    options = {
      path = mkOption { description = "Where the secret can be read; elsewhere than the default, a symlink."; };
      mode = mkOption { description = "Permission bits of the decrypted file."; };
      symlink = mkOption {
        description = "Accepted for compatibility: secretd always makes `path` a symlink (false only warns).";
      };
    };
  };
in
{
  imports = [
    ../home-manager.nix
    # The options and mapping it has in common with the NixOS module.
    ./common/agenix.nix
  ];

  options.age = {
    secrets = mkOption {
      type = types.attrsOf secretType;
      description = "Secrets, as agenix's home-manager module declares them, activated by secretd.";
    };
    identityPaths = mkOption {
      default = [
        "${home}/.ssh/id_ed25519"
        "${home}/.ssh/id_rsa"
      ];
      defaultText = lib.literalExpression ''
        [
          "''${config.home.homeDirectory}/.ssh/id_ed25519"
          "''${config.home.homeDirectory}/.ssh/id_rsa"
        ]
      '';
    };
    secretsDir = mkOption { default = "\${XDG_RUNTIME_DIR}/agenix"; };
    secretsMountPoint = mkOption {
      default = "\${XDG_RUNTIME_DIR}/agenix.d";
      description = "Where the generations of secrets are kept.";
    };
    package = mkOption {
      type = types.nullOr types.package;
      default = null;
      description = "Accepted for compatibility and ignored: secretd decrypts by itself.";
    };
  };

  config = lib.mkIf (cfg.secrets != { }) {
    secretd.secrets = lib.mapAttrs (_: s: {
      mode = lib.mkIf (builtins.match "0?[0-7]{3}" s.mode != null) s.mode;
    }) cfg.secrets;
    assertions = lib.mapAttrsToList (n: s: {
      assertion = builtins.match "0?[0-7]{3}" s.mode != null;
      message = "age.secrets.\"${n}\".mode = \"${s.mode}\" is not an octal mode of at most 0777.";
    }) cfg.secrets;
    warnings = lib.concatLists (
      lib.mapAttrsToList (
        n: s:
        lib.optional (!s.symlink) "age.secrets.\"${n}\".symlink = false: secretd makes ${s.path} a symlink to the secret all the same."
      ) cfg.secrets
    );
  };
}
