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
    { name, config, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          description = "Name of the file under `sops.defaultSymlinkPath`.";
        };
        key = mkOption {
          type = types.str;
          default = if cfg.defaultSopsKey != null then cfg.defaultSopsKey else name;
          description = ''Key looked up in the sops file ("" for the whole file; ignored for binary).'';
        };
        path = mkOption {
          type = types.str;
          default = "${cfg.defaultSymlinkPath}/${name}";
          description = "Where the secret can be read; elsewhere than the default, a symlink.";
        };
        format = mkOption {
          type = types.enum formats;
          default = cfg.defaultSopsFormat;
          description = "Format of the sops file.";
        };
        mode = mkOption {
          type = types.str;
          default = "0400";
          description = "Permission bits of the file, in octal.";
        };
        sopsFile = mkOption {
          type = types.path;
          default = cfg.defaultSopsFile;
          defaultText = lib.literalExpression "config.sops.defaultSopsFile";
          description = "Sops file the secret is read from.";
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
          description = "Where the rendered file can be read.";
        };
        content = mkOption {
          type = types.lines;
          default = "";
          description = "Text of the file, holding `config.sops.placeholder.<secret>` values.";
        };
        mode = mkOption {
          type = types.singleLineStr;
          default = "0400";
          description = "Permission bits of the rendered file, in octal.";
        };
        file = mkOption {
          type = types.nullOr types.path;
          default = null;
          description = "File read for the text instead of `content`.";
        };
      };
    }
  );

  config' = config;
in
{
  imports = [ ../home-manager.nix ];

  options.sops = {
    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
      description = "Secrets, as sops-nix's home-manager module declares them, activated by secretd.";
    };
    templates = mkOption {
      type = types.attrsOf templateType;
      default = { };
      description = "Templates, as sops-nix declares them, rendered by secretd.";
    };
    placeholder = mkOption {
      type = types.attrsOf types.str;
      readOnly = true;
      description = "The placeholder of each secret, for template contents.";
    };
    defaultSopsFile = mkOption {
      type = types.path;
      description = "Sops file that secrets come from by default.";
    };
    defaultSopsFormat = mkOption {
      type = types.str;
      default = "yaml";
      description = "Format of secrets that do not set one.";
    };
    defaultSopsKey = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Key of secrets that do not set one (null: the secret's name).";
    };
    validateSopsFiles = mkOption {
      type = types.bool;
      default = true;
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
      type = types.ints.unsigned;
      default = 1;
      description = "Generations of secrets kept besides the current one (0 counts as 1).";
    };
    log = mkOption {
      type = types.listOf (
        types.enum [
          "keyImport"
          "secretChanges"
        ]
      );
      default = [
        "keyImport"
        "secretChanges"
      ];
      description = "Accepted for compatibility: secretd always logs what it changed, never a secret.";
    };
    environment = mkOption {
      type = types.attrsOf (types.either types.str types.path);
      default = { };
      description = "Environment variables of the activation unit.";
    };
    # Paths given as Nix paths are kept as strings, never copied into the store.
    age.keyFile = mkOption {
      type = types.nullOr (types.either types.str types.path);
      default = null;
      description = "An age identity file that decrypts the secrets.";
    };
    age.sshKeyPaths = mkOption {
      type = types.listOf (types.either types.str types.path);
      default = [ ];
      description = "SSH keys whose age identity decrypts the secrets.";
    };
    age.generateKey = mkOption {
      type = types.bool;
      default = false;
      description = "Not supported by secretd: must stay false (create the key with age-keygen).";
    };
    age.plugins = mkOption {
      type = types.listOf types.package;
      default = [ ];
      description = "age plugins put on the activation unit's PATH.";
    };
    gnupg.home = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Not supported by secretd: must stay null.";
    };
    gnupg.sshKeyPaths = mkOption {
      type = types.listOf types.path;
      default = [ ];
      description = "Not supported by secretd: must stay empty.";
    };
  };

  config = lib.mkMerge [
    { sops.placeholder = lib.mapAttrs (n: _: config.secretd.placeholder.${n}) cfg.secrets; }

    (lib.mkIf (cfg.secrets != { } || cfg.templates != { }) {
      secretd = {
        enable = true;
        secretsDir = lib.mkDefault cfg.defaultSymlinkPath;
        mountPoint = lib.mkDefault cfg.defaultSecretsMountPoint;
        identityPaths = lib.mkDefault (
          map toString (lib.optional (cfg.age.keyFile != null) cfg.age.keyFile ++ cfg.age.sshKeyPaths)
        );
        keepGenerations = lib.mkDefault (lib.max 1 cfg.keepGenerations);
        checkManifest = lib.mkDefault cfg.validateSopsFiles;
        secrets = lib.mapAttrs (_: s: {
          inherit (s)
            name
            path
            format
            mode
            restartUnits
            reloadUnits
            ;
          file = s.sopsFile;
          key = if s.format == "binary" then "" else s.key;
        }) cfg.secrets;
        templates = lib.mapAttrs (_: t: {
          inherit (t) name path mode;
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
          assertion = lib.elem cfg.defaultSopsFormat [
            "yaml"
            "json"
            "binary"
            "ini"
            "dotenv"
          ];
          message = "sops.defaultSopsFormat = \"${cfg.defaultSopsFormat}\" is not one of yaml, json, binary, ini, dotenv.";
        }
      ];
    })
  ];
}
