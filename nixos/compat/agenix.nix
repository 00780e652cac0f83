# Lets a configuration written for agenix run on secretd unchanged: it declares agenix's
# `age.*` options and maps them onto `secretd.*`. Import it instead of agenix's module, not
# beside it.
{
  config,
  lib,
  ...
}:

let
  inherit (lib) mkOption types;

  cfg = config.age;
  users = config.users.users;

  isNumber = s: builtins.match "[0-9]+" s != null;

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
        owner = mkOption {
          type = types.str;
          default = "0";
          description = "User (name or number) owning the decrypted file.";
        };
        group = mkOption {
          type = types.str;
          default = users.${config.owner}.group or "0";
          description = "Group (name or number) of the decrypted file.";
        };
        symlink = mkOption {
          type = types.bool;
          default = true;
          description = ''
            Accepted for compatibility: secretd always makes `path` a symlink into
            `age.secretsDir` (false only draws a warning).
          '';
        };
      };
    }
  );

  # agenix takes "0" and other numbers for ids.
  ownerOf =
    s:
    if isNumber s.owner then
      { uid = lib.toInt s.owner; }
    else
      { owner = s.owner; };
  groupOf =
    s:
    if isNumber s.group then
      { gid = lib.toInt s.group; }
    else
      { group = s.group; };
in
{
  imports = [ ../module.nix ];

  options.age = {
    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
      description = "Secrets, as agenix declares them, activated by secretd.";
    };
    secretsDir = mkOption {
      type = types.str;
      default = "/run/agenix";
      description = "Where the secrets appear.";
    };
    secretsMountPoint = mkOption {
      type = types.str;
      default = "/run/agenix.d";
      description = "Where the ramfs holding the generations of secrets is mounted.";
    };
    # Paths given as Nix paths are kept as strings, never copied into the store.
    identityPaths = mkOption {
      type = types.listOf (types.either types.str types.path);
      default = lib.optionals config.services.openssh.enable (
        map (k: k.path) (lib.filter (k: lib.elem (k.type or null) [ "ed25519" "rsa" ]) config.services.openssh.hostKeys)
      );
      defaultText = lib.literalMD "the ed25519 and rsa host keys of `services.openssh`, when it is enabled";
      description = "Keys that decrypt the secrets.";
    };
    ageBin = mkOption {
      type = types.str;
      default = "";
      description = "Accepted for compatibility and ignored: secretd decrypts by itself.";
    };
  };

  config = lib.mkIf (cfg.secrets != { }) {
    secretd = {
      enable = true;
      secretsDir = lib.mkDefault cfg.secretsDir;
      mountPoint = lib.mkDefault cfg.secretsMountPoint;
      identityPaths = lib.mkDefault (map toString cfg.identityPaths);
      secrets = lib.mapAttrs (
        _: s:
        {
          inherit (s) name file path;
          format = "binary";
          mode = lib.mkIf (builtins.match "0?[0-7]{3}" s.mode != null) s.mode;
          symlink = true;
        }
        // ownerOf s
        // groupOf s
      ) cfg.secrets;
    };
    assertions = lib.mapAttrsToList (n: s: {
      assertion = builtins.match "0?[0-7]{3}" s.mode != null;
      message = "age.secrets.\"${n}\".mode = \"${s.mode}\" is not an octal mode of at most 0777.";
    }) cfg.secrets;
    warnings = lib.concatLists (
      lib.mapAttrsToList (
        n: s:
        lib.optional (!s.symlink)
          "age.secrets.\"${n}\".symlink = false: secretd makes ${s.path} a symlink to the secret all the same."
      ) cfg.secrets
    );
  };
}
