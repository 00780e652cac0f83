# Lets a configuration written for sops-nix run on secretd unchanged: it declares sops-nix's
# `sops.*` options (secrets, templates, placeholder, neededForUsers, restart and reload units)
# and maps them onto `secretd.*`. Secrets land where sops-nix puts them: /run/secrets,
# /run/secrets/rendered and /run/secrets-for-users. Import it instead of sops-nix's module,
# not beside it. Every sops-nix option is declared: those with a meaning here have it, the
# others draw a warning saying what is ignored.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;

  cfg = config.sops;
  users = config.users.users;

  formats = [
    "yaml"
    "json"
    "binary"
    "dotenv"
    "ini"
  ];

  # Options sops-nix gives secrets and templates alike.
  ownershipOptions = config: {
    mode = mkOption {
      type = types.str;
      default = "0400";
      description = "Permission bits of the file, in octal.";
    };
    owner = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "User owning the file; when null, `uid` is used.";
    };
    uid = mkOption {
      type = types.nullOr types.int;
      default = 0;
      description = "Owner of the file when `owner` is null.";
    };
    group = mkOption {
      type = types.nullOr types.str;
      default = if config.owner != null then users.${config.owner}.group or null else null;
      defaultText = lib.literalExpression "config.users.users.\${owner}.group";
      description = "Group of the file; when null, `gid` is used.";
    };
    gid = mkOption {
      type = types.nullOr types.int;
      default = 0;
      description = "Group of the file when `group` is null.";
    };
    restartUnits = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Units restarted when the file changes.";
    };
    reloadUnits = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Units reloaded when the file changes.";
    };
  };

  secretType = types.submodule (
    { config, ... }:
    {
      options = ownershipOptions config // {
        name = mkOption { description = "Name of the file under /run/secrets."; };
        path = mkOption {
          default = "${if config.neededForUsers then "/run/secrets-for-users" else "/run/secrets"}/${config.name}";
        };
        format = mkOption { type = types.enum formats; };
        sopsFileHash = mkOption {
          type = types.str;
          readOnly = true;
          default = lib.optionalString cfg.validateSopsFiles "${builtins.hashFile "sha256" config.sopsFile}";
          description = "SHA-256 of the sops file (empty without validateSopsFiles), for restartTriggers.";
        };
        neededForUsers = mkOption {
          type = types.bool;
          default = false;
          description = "Decrypt before users are created, into /run/secrets-for-users.";
        };
      };
    }
  );

  templateType = types.submodule (
    { name, config, ... }:
    {
      options = ownershipOptions config // {
        name = mkOption {
          type = types.str;
          default = name;
          description = "Name of the file under /run/secrets/rendered.";
        };
        path = mkOption {
          type = types.str;
          default = "/run/secrets/rendered/${config.name}";
        };
        file = mkOption {
          description = ''
            File read for the text instead of `content`: a file of the configuration, or a
            derivation made by `pkgs.writeText` (whose text is taken without building it).
          '';
        };
      };
    }
  );

  # sops-nix hands unit names to systemctl, which reads a name without a unit type suffix
  # ("duckdns") as a service.
  unitTypes = [ "service" "socket" "target" "timer" "path" "mount" "automount" "swap" "slice" "scope" "device" ];
  unitName = u: if lib.elem (lib.last (lib.splitString "." u)) unitTypes then u else "${u}.service";

  # sops-nix's owner/uid pairs: a name wins over the number.
  ownershipOf = o: {
    inherit (o) mode;
    restartUnits = map unitName o.restartUnits;
    reloadUnits = map unitName o.reloadUnits;
    owner = o.owner;
    uid = if o.owner == null then o.uid else null;
    group = o.group;
    gid = if o.group == null then o.gid else null;
  };

  useSystemd = config.systemd.sysusers.enable || config.services.userborn.enable;

  # sops-nix's defaults: the host keys of a type, but not one deployed by sops itself.
  hostKeys =
    type:
    lib.optionals config.services.openssh.enable (
      map (k: k.path) (
        lib.filter (k: k.type or null == type && !lib.hasPrefix "/run/secrets" k.path) config.services.openssh.hostKeys
      )
    );
in
{
  imports = [
    ../module.nix
    # The options and mapping it has in common with the home-manager module.
    ./common/sops.nix
    (lib.mkRenamedOptionModule [ "sops" "gnupgHome" ] [ "sops" "gnupg" "home" ])
    (lib.mkRenamedOptionModule [ "sops" "sshKeyPaths" ] [ "sops" "gnupg" "sshKeyPaths" ])
  ];

  options.sops = {
    secrets = mkOption {
      type = types.attrsOf secretType;
      description = "Secrets, as sops-nix declares them, activated by secretd.";
    };
    templates = mkOption { type = types.attrsOf templateType; };
    defaultSopsFormat = mkOption { type = types.enum formats; };
    validateSopsFiles = mkOption {
      description = "Check the sops files when building the system (`secretd.checkManifest`).";
    };
    keepGenerations = mkOption {
      description = "Generations of secrets kept besides the current one (0 never prunes).";
    };
    log = mkOption {
      description = "Accepted: secretd always logs the identities it uses and what changed (names only).";
    };
    environment = mkOption {
      description = "Environment variables of secretd's activation units.";
    };
    package = mkOption {
      type = types.nullOr types.package;
      default = null;
      description = "Ignored (sops-install-secrets is not used): set `secretd.package`.";
    };
    validationPackage = mkOption {
      type = types.nullOr types.package;
      default = null;
      description = "Ignored (sops-install-secrets is not used): set `secretd.validationPackage`.";
    };
    useTmpfs = mkOption {
      type = types.bool;
      default = false;
      description = "Accepted: secretd always keeps secrets on a ramfs, which is never swapped out.";
    };
    useSystemdActivation = mkOption {
      type = types.nullOr types.bool;
      default = null;
      description = ''
        Accepted: secretd always activates from a unit that starts before sysinit.target
        (secrets for users before users are created).
      '';
    };
    age.plugins = mkOption {
      description = "age plugins, on the activation units' PATH (`secretd.plugins`).";
    };
    age.generateKey = mkOption {
      description = ''
        Whether to create `age.keyFile` with age-keygen at activation when it does not exist,
        before secrets are activated.
      '';
    };
    age.sshKeyPaths = mkOption {
      default = hostKeys "ed25519";
      defaultText = lib.literalMD "the ed25519 keys of `services.openssh.hostKeys`";
      description = "SSH keys whose age identity decrypts the secrets.";
    };
    gnupg.home = mkOption {
      example = "/root/.gnupg";
      description = "A GnuPG home whose keys open PGP recipients, through gpg (`secretd.gnupgHome`).";
    };
    # Paths given as Nix paths are kept as strings, never copied into the store.
    gnupg.sshKeyPaths = mkOption {
      type = types.listOf (types.either types.str types.path);
      default = hostKeys "rsa";
      defaultText = lib.literalMD "the rsa keys of `services.openssh.hostKeys`";
      description = "RSA SSH keys that open PGP recipients as OpenPGP keys (in-process, as ssh-to-pgp makes them).";
    };
    gnupg.package = mkOption {
      type = types.package;
      default = pkgs.gnupg;
      defaultText = lib.literalExpression "pkgs.gnupg";
      description = "The gnupg whose gpg reads `gnupg.home`.";
    };
  };

  config = lib.mkMerge [
    (lib.mkIf (cfg.secrets != { } || cfg.templates != { }) {
      secretd = {
        identityPaths = lib.mkDefault (
          map toString (
            cfg.age.sshKeyPaths ++ lib.optional (cfg.age.keyFile != null) cfg.age.keyFile ++ cfg.gnupg.sshKeyPaths
          )
        );
        gnupgHome = lib.mkDefault cfg.gnupg.home;
        gnupgPackage = lib.mkDefault cfg.gnupg.package;
        keepGenerations = lib.mkDefault cfg.keepGenerations;
        plugins = cfg.age.plugins;
        inherit (cfg) environment;
        activateAfter = lib.optional cfg.age.generateKey "generate-age-key";
        secrets = lib.mapAttrs (
          _: s:
          ownershipOf s
          // {
            inherit (s) neededForUsers;
            # sops-nix writes whole dotenv and INI files, whatever the key.
            key = if lib.elem s.format [ "binary" "dotenv" "ini" ] then "" else s.key;
          }
        ) cfg.secrets;
        templates = lib.mapAttrs (
          _: t:
          ownershipOf t
          // {
            # A file of the configuration or a pkgs.writeText is read now; another derivation
            # is read by secretd, so that evaluation does not build it.
            content =
              if t.file == null then
                t.content
              else if t.file ? text then
                t.file.text
              else if lib.isDerivation t.file then
                ""
              else
                builtins.readFile t.file;
            file = if lib.isDerivation t.file && !(t.file ? text) then t.file else null;
          }
        ) cfg.templates;
      };
      assertions = [
        {
          assertion = !(cfg.gnupg.home != null && cfg.gnupg.sshKeyPaths != [ ]);
          message = "Exactly one of sops.gnupg.home and sops.gnupg.sshKeyPaths must be set";
        }
        {
          assertion = cfg.age.generateKey -> cfg.age.keyFile != null;
          message = "sops.age.generateKey needs sops.age.keyFile, the file to create.";
        }
      ];

      warnings =
        lib.optional (cfg.package != null) "sops.package is ignored: secretd activates the secrets (secretd.package)."
        ++ lib.optional (cfg.validationPackage != null) "sops.validationPackage is ignored: secretd checks the manifest (secretd.validationPackage)."
        ++ lib.optional cfg.useTmpfs "sops.useTmpfs is ignored: secretd keeps secrets on a ramfs, which is never written to swap."
        ++ lib.optional (cfg.useSystemdActivation == false) "sops.useSystemdActivation = false is ignored: secretd activates from a unit ordered before sysinit.target and before every unit that reads the secrets."
        ++ lib.optional (lib.sort lib.lessThan cfg.log != [ "keyImport" "secretChanges" ]) "sops.log is ignored: secretd always logs which identities it uses and which secrets changed (by name, never their values).";

      # The unit names sops-nix has with systemd activation, which units order against
      # (after = [ "sops-install-secrets.service" ]).
      systemd.services.secretd.aliases = lib.mkIf useSystemd [ "sops-install-secrets.service" ];

      # The snippet names sops-nix gives other modules to order against. With secretd the
      # secrets are activated by secretd.service, which starts before sysinit.target.
      system.activationScripts = lib.mkMerge [
        (lib.mkIf cfg.age.generateKey {
          generate-age-key = {
            deps = [ "specialfs" ];
            text = ''
              if [[ ! -f ${lib.escapeShellArg cfg.age.keyFile} ]]; then
                echo generating machine-specific age key...
                mkdir -p "$(dirname ${lib.escapeShellArg cfg.age.keyFile})"
                # age-keygen sets 0600 by default.
                ${pkgs.age}/bin/age-keygen -o ${lib.escapeShellArg cfg.age.keyFile}
              fi
            '';
          };
        })
        (lib.mkIf (!useSystemd && lib.any (s: !s.neededForUsers) (lib.attrValues cfg.secrets)) {
          setupSecrets = {
            deps = [
              "specialfs"
              "users"
              "groups"
              "secretd"
            ];
            text = "";
          };
        })
        (lib.mkIf (!useSystemd && lib.any (s: s.neededForUsers) (lib.attrValues cfg.secrets)) {
          setupSecretsForUsers = {
            deps = [ "secretd-for-users" ];
            text = "";
          };
          users.deps = [ "setupSecretsForUsers" ];
        })
      ];
    })

    {
      system.build.sops-nix-manifest = config.secretd.manifestFile;
      system.build.sops-nix-users-manifest = config.secretd.manifestFileForUsers;
    }
  ];
}
