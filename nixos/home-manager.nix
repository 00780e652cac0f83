# home-manager module of secretd: a user's own secrets.
#
# It turns `secretd.secrets.<name>` and `secretd.templates.<name>` of a home-manager
# configuration into a user's manifest, checks it at build time with `secretd check --user`,
# and runs `secretd activate --user` on it from a systemd user unit, as the user: the
# generations live on the user's runtime tmpfs ($XDG_RUNTIME_DIR), files belong to the user,
# and the units told of a change are the user's own.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    literalExpression
    literalMD
    ;

  cfg = config.secretd;
  manifestLib = import ./lib/manifest.nix { inherit lib; };
  home = config.home.homeDirectory;

  # The user's runtime directory is known only at activation; the daemon replaces this
  # spelling (and sops-nix's `%r`) with it.
  runtimeDir = "\${XDG_RUNTIME_DIR}";

  outputOptions = {
    mode = mkOption {
      type = types.strMatching "0?[0-7]{3}";
      default = "0400";
      example = "0600";
      description = "Permission bits of the file, in octal. The file always belongs to the user.";
    };
    restartUnits = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "gh-sync.service" ];
      description = "User units restarted (try-restart, after the new secrets are live) when this file changes.";
    };
    reloadUnits = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "User units reloaded (reload-or-try-restart, after the new secrets are live) when this file changes.";
    };
  };

  secretType = types.submodule (
    { config, ... }:
    {
      options = outputOptions // {
        name = mkOption {
          description = "Name of the secret: the file appears as `<secretsDir>/<name>`.";
        };
        file = mkOption {
          description = "Encrypted file holding the secret: an age file or a sops file.";
        };
        format = mkOption {
          defaultText = literalMD "`secretd.defaultFormat`, else from the file name as sops chooses it";
          description = "How the decrypted file is read: `binary` is the whole plaintext; the others pick `key`.";
        };
        key = mkOption {
          description = "Which value of a structured document to use, keys separated by `/`.";
        };
        path = mkOption {
          type = types.str;
          default = "${cfg.secretsDir}/${config.name}";
          defaultText = literalExpression ''"''${config.secretd.secretsDir}/''${name}"'';
          example = literalExpression ''"''${config.home.homeDirectory}/.npmrc"'';
          description = ''
            Where the secret can be read. Set elsewhere (such as `~/.npmrc`), secretd makes a
            symlink there pointing into `secretsDir`.
          '';
        };
      };
    }
  );

  templateType = types.submodule {
    options = outputOptions // {
      content = mkOption {
        type = types.lines;
        description = "Text of the file; each `config.secretd.placeholder.<secret>` in it is replaced by the secret.";
      };
      path = mkOption {
        description = "Where the rendered file can be read; set elsewhere, a symlink to it.";
      };
    };
  };

  secrets = lib.attrValues cfg.secrets;
  templates = lib.attrValues cfg.templates;

  manifest = manifestLib.mkManifest {
    inherit (cfg) secretsDir mountPoint keepGenerations;
    identities = cfg.identityPaths;
    inherit secrets templates;
  };

  manifestFile = manifestLib.manifestFileOf {
    inherit pkgs manifest;
    name = "secretd-user-manifest.json";
    check = if cfg.checkManifest then "${cfg.package}/bin/secretd check --user --manifest" else null;
  };

  consumers = lib.unique (lib.concatMap (o: o.restartUnits ++ o.reloadUnits) (secrets ++ templates));

  isAbsolute = p: lib.hasPrefix "/" p || lib.hasPrefix runtimeDir p || lib.hasPrefix "%r" p;

  assertions =
    [
      {
        assertion = cfg.identityPaths != [ ];
        message = "secretd: secretd.identityPaths is empty, so nothing could decrypt the secrets.";
      }
    ]
    ++ lib.concatLists (
      lib.mapAttrsToList (
        attr: s:
        let
          what = "secretd.secrets.\"${attr}\"";
        in
        [
          {
            assertion = s.file != null;
            message = "${what}: no encrypted file: set its file, or secretd.defaultFile.";
          }
          {
            assertion = !(s.format == "binary" && s.key != "");
            message = "${what}: key = \"${s.key}\" is set, but a binary secret is the whole decrypted file.";
          }
          {
            assertion = isAbsolute s.path;
            message = "${what}: path \"${s.path}\" must be absolute.";
          }
        ]
      ) cfg.secrets
    )
    ++ lib.mapAttrsToList (attr: t: {
      assertion = isAbsolute t.path;
      message = "secretd.templates.\"${attr}\": path \"${t.path}\" must be absolute.";
    }) cfg.templates;
in
{
  # The options, types and defaults it has in common with the NixOS module.
  imports = [ ./common/options.nix ];

  options.secretd = {
    enable = mkEnableOption "secretd for this user's own secrets" // {
      default = cfg.secrets != { } || cfg.templates != { };
      defaultText = literalMD "whether any secret or template is declared";
    };

    identityPaths = mkOption {
      type = types.listOf types.str;
      default = [
        "${config.xdg.configHome}/sops/age/keys.txt"
        "${home}/.ssh/id_ed25519"
        "${home}/.ssh/id_rsa"
      ];
      defaultText = literalExpression ''
        [
          "''${config.xdg.configHome}/sops/age/keys.txt"
          "''${config.home.homeDirectory}/.ssh/id_ed25519"
          "''${config.home.homeDirectory}/.ssh/id_rsa"
        ]
      '';
      description = ''
        The user's keys that decrypt the secrets: age identity files (where sops looks for
        them) and OpenSSH ed25519 or RSA keys (as agenix's home-manager module uses them).
        Missing ones, and passphrase-protected OpenSSH keys while another identity exists, are
        skipped with a warning; `$SOPS_AGE_KEY_FILE`, when set in the unit's environment, is
        tried first.
      '';
    };

    secretsDir = mkOption {
      type = types.str;
      default = "${runtimeDir}/secrets";
      description = ''
        Where the secrets appear: a symlink to the newest generation. `''${XDG_RUNTIME_DIR}`
        (or `%r`) stands for the user's runtime directory, replaced at activation.
      '';
    };

    mountPoint = mkOption {
      type = types.str;
      default = "${runtimeDir}/secretd.d";
      description = "Directory on the user's runtime tmpfs holding the generations of secrets.";
    };

    keepGenerations = mkOption {
      type = types.ints.positive;
      default = 1;
      description = "How many generations to keep besides the current one.";
    };

    defaultFile = mkOption {
      example = literalExpression "./secrets/home.yaml";
      description = "Encrypted file that secrets without their own `file` come from.";
    };

    defaultFormat = mkOption {
      description = "Format of secrets that do not set one; `null`: from the file name.";
    };

    checkManifest = mkOption {
      description = "Whether to run `secretd check --user` on the manifest when building the home configuration.";
    };

    secrets = mkOption {
      type = types.attrsOf secretType;
      description = "The user's secrets, decrypted into `secretsDir`.";
    };

    templates = mkOption {
      type = types.attrsOf templateType;
      description = "Files rendered from text holding placeholders of secrets, into `<secretsDir>/rendered`.";
    };

    placeholder = mkOption {
      description = "For each secret, the placeholder to write into a template's `content`.";
    };

    manifest = mkOption {
      description = "The user's manifest that the `secretd` user unit activates.";
    };

    manifestFile = mkOption {
      description = "The checked manifest file in the Nix store.";
    };
  };

  config = lib.mkMerge [
    {
      secretd = {
        inherit manifest manifestFile;
      };
    }

    (mkIf cfg.enable {
      inherit assertions;

      home.packages = [ cfg.package ];

      systemd.user.services.secretd = {
        Unit = {
          Description = "Activate the secrets of ${config.home.username}";
          # Started with the consumers in one transaction, it runs first.
          Before = consumers;
          X-Restart-Triggers = [ "${manifestFile}" ];
        };
        Service = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = "${cfg.package}/bin/secretd activate --user --manifest ${manifestFile}";
          UMask = "0077";
          # A core dump would hold plaintext.
          LimitCORE = 0;
          NoNewPrivileges = true;
          LockPersonality = true;
          MemoryDenyWriteExecute = true;
          RestrictRealtime = true;
          SystemCallArchitectures = "native";
        };
        Install.WantedBy = [ "default.target" ];
      };

      # `home-manager switch` reruns the activation once the new unit is loaded, when the
      # user's manager runs; at boot the unit itself does it. The entry is spelt as the
      # attribute set that lib.hm.dag.entryAfter returns.
      home.activation.secretd = {
        after = [ "reloadSystemd" ];
        before = [ ];
        data = ''
          systemdStatus=$(${config.systemd.user.systemctlPath} --user is-system-running 2>&1 || true)
          if [[ $systemdStatus == running || $systemdStatus == degraded ]]; then
            run ${config.systemd.user.systemctlPath} --user restart secretd.service
          else
            echo "secretd: the user's systemd is not running; its secretd.service activates the secrets when it starts."
          fi
          unset systemdStatus
        '';
      };
    })
  ];
}
