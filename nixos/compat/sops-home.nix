# Lets a home-manager configuration written for sops-nix's home-manager module run on secretd
# unchanged: it declares that module's `sops.*` options and maps them onto the `secretd.*` of
# ../home-manager.nix. Secrets land where sops-nix puts them: symlinks under
# ~/.config/sops-nix/secrets (`sops.defaultSymlinkPath`) to generations in
# $XDG_RUNTIME_DIR/secrets.d (`sops.defaultSecretsMountPoint`, `%r` for the runtime directory).
# Import it instead of sops-nix's module, not beside it. GnuPG keys are not supported.
{
  config,
  lib,
  ...
}:

let
  inherit (lib) mkOption types;

  cfg = config.sops;

  formats = [
    "yaml"
    "json"
    "binary"
    "ini"
    "dotenv"
  ];

  secretType = types.submodule (
    { name, ... }:
    {
      options = {
        name = mkOption { description = "Name of the file under `sops.defaultSymlinkPath`."; };
        path = mkOption { default = "${cfg.defaultSymlinkPath}/${name}"; };
        format = mkOption { type = types.enum formats; };
        mode = mkOption {
          type = types.str;
          default = "0400";
          description = "Permission bits of the file, in octal.";
        };
        restartUnits = mkOption {
          type = types.listOf types.str;
          default = [ ];
          description = "User units restarted when the secret changes (a secretd addition).";
        };
        reloadUnits = mkOption {
          type = types.listOf types.str;
          default = [ ];
          description = "User units reloaded when the secret changes (a secretd addition).";
        };
      };
    }
  );

  templateType = types.submodule (
    { config, ... }:
    {
      options = {
        name = mkOption {
          type = types.singleLineStr;
          default = config._module.args.name;
          description = "Name of the file under `rendered/`.";
        };
        path = mkOption {
          type = types.singleLineStr;
          # As sops-nix: under xdg.configHome whatever sops.defaultSymlinkPath is.
          default = "${config'.xdg.configHome}/sops-nix/secrets/rendered/${config.name}";
        };
        mode = mkOption {
          type = types.singleLineStr;
          default = "0400";
          description = "Permission bits of the rendered file, in octal.";
        };
        file = mkOption { description = "File read for the text instead of `content`."; };
      };
    }
  );

  config' = config;
in
{
  imports = [
    ../home-manager.nix
    # The options and mapping it has in common with the NixOS module.
    ./common/sops.nix
  ];

  options.sops = {
    secrets = mkOption {
      type = types.attrsOf secretType;
      description = "Secrets, as sops-nix's home-manager module declares them, activated by secretd.";
    };
    templates = mkOption { type = types.attrsOf templateType; };
    defaultSopsFormat = mkOption { type = types.str; };
    validateSopsFiles = mkOption {
      description = "Check the sops files when building (`secretd.checkManifest`).";
    };
    defaultSymlinkPath = mkOption {
      type = types.str;
      default = "${config.xdg.configHome}/sops-nix/secrets";
      description = "Where the secrets appear: a symlink to the newest generation.";
    };
    defaultSecretsMountPoint = mkOption {
      type = types.str;
      default = "%r/secrets.d";
      description = "Where the generations are kept; `%r` is the user's runtime directory.";
    };
    keepGenerations = mkOption {
      description = "Generations of secrets kept besides the current one (0 counts as 1).";
    };
    log = mkOption {
      description = "Accepted for compatibility: secretd always logs what it changed, never a secret.";
    };
    environment = mkOption {
      description = "Environment variables of the activation unit.";
    };
    age.sshKeyPaths = mkOption {
      default = [ ];
      description = "SSH keys whose age identity decrypts the secrets.";
    };
    age.generateKey = mkOption {
      description = "Not supported by secretd: must stay false (create the key with age-keygen).";
    };
    age.plugins = mkOption {
      description = "age plugins put on the activation unit's PATH.";
    };
    gnupg.home = mkOption {
      description = "Not supported by secretd: must stay null.";
    };
    gnupg.sshKeyPaths = mkOption {
      type = types.listOf types.path;
      default = [ ];
      description = "Not supported by secretd: must stay empty.";
    };
  };

  config = lib.mkIf (cfg.secrets != { } || cfg.templates != { }) {
    secretd = {
      secretsDir = lib.mkDefault cfg.defaultSymlinkPath;
      mountPoint = lib.mkDefault cfg.defaultSecretsMountPoint;
      identityPaths = lib.mkDefault (
        map toString (lib.optional (cfg.age.keyFile != null) cfg.age.keyFile ++ cfg.age.sshKeyPaths)
      );
      keepGenerations = lib.mkDefault (lib.max 1 cfg.keepGenerations);
      secrets = lib.mapAttrs (_: s: {
        inherit (s) mode restartUnits reloadUnits;
        key = if s.format == "binary" then "" else s.key;
      }) cfg.secrets;
      templates = lib.mapAttrs (_: t: {
        inherit (t) mode;
        content = if t.file != null then builtins.readFile t.file else t.content;
      }) cfg.templates;
    };
    systemd.user.services.secretd.Service.Environment =
      lib.mapAttrsToList (n: v: "${n}=${toString v}") cfg.environment
      ++ lib.optional (cfg.age.plugins != [ ]) "PATH=${lib.makeBinPath cfg.age.plugins}";
    assertions = [
      {
        assertion = cfg.gnupg.home == null && cfg.gnupg.sshKeyPaths == [ ];
        message = "sops.gnupg: secretd decrypts with age keys only (sops.age.keyFile, sops.age.sshKeyPaths), not GnuPG.";
      }
      {
        assertion = !cfg.age.generateKey;
        message = "sops.age.generateKey: secretd does not create keys; run age-keygen -o ${toString cfg.age.keyFile} once.";
      }
      {
        assertion = lib.elem cfg.defaultSopsFormat formats;
        message = "sops.defaultSopsFormat = \"${cfg.defaultSopsFormat}\" is not one of yaml, json, binary, ini, dotenv.";
      }
    ];
  };
}
