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

  secretType = types.submodule (
    { name, config, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          description = "Name of the file under `age.secretsDir`.";
        };
        file = mkOption {
          type = types.path;
          description = "Age file the secret is decrypted from.";
        };
        path = mkOption {
          type = types.str;
          default = "${cfg.secretsDir}/${config.name}";
          description = "Where the secret can be read; elsewhere than the default, a symlink.";
        };
        mode = mkOption {
          type = types.str;
          default = "0400";
          description = "Permission bits of the decrypted file.";
        };
        symlink = mkOption {
          type = types.bool;
          default = true;
          description = "Accepted for compatibility: secretd always makes `path` a symlink (false only warns).";
        };
      };
    }
  );
in
{
  imports = [ ../home-manager.nix ];

  options.age = {
    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
      description = "Secrets, as agenix's home-manager module declares them, activated by secretd.";
    };
    identityPaths = mkOption {
      type = types.listOf (types.either types.str types.path);
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
      description = "Keys that decrypt the secrets.";
    };
    secretsDir = mkOption {
      type = types.str;
      default = "\${XDG_RUNTIME_DIR}/agenix";
      description = "Where the secrets appear.";
    };
    secretsMountPoint = mkOption {
      type = types.str;
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
    secretd = {
      enable = true;
      secretsDir = lib.mkDefault cfg.secretsDir;
      mountPoint = lib.mkDefault cfg.secretsMountPoint;
      identityPaths = lib.mkDefault (map toString cfg.identityPaths);
      secrets = lib.mapAttrs (_: s: {
        inherit (s) name file path;
        format = "binary";
        mode = lib.mkIf (builtins.match "0?[0-7]{3}" s.mode != null) s.mode;
      }) cfg.secrets;
    };
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
