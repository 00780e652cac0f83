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
    mkPackageOption
    mkIf
    types
    literalExpression
    literalMD
    ;

  cfg = config.secretd;
  home = config.home.homeDirectory;

  # The user's runtime directory is known only at activation; the daemon replaces this
  # spelling (and sops-nix's `%r`) with it.
  runtimeDir = "\${XDG_RUNTIME_DIR}";

  formats = [
    "binary"
    "yaml"
    "json"
    "dotenv"
    "ini"
  ];

  # As in module.nix: the format sops gives a file from its name.
  formatOfFileName =
    file:
    let
      name = baseNameOf (toString file);
    in
    if lib.hasSuffix ".yaml" name || lib.hasSuffix ".yml" name then
      "yaml"
    else if lib.hasSuffix ".json" name then
      "json"
    else if lib.hasSuffix ".env" name then
      "dotenv"
    else if lib.hasSuffix ".ini" name then
      "ini"
    else
      "binary";

  placeholderOf = name: "<SECRETD:${builtins.hashString "sha256" name}:${name}>";

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
    { name, config, ... }:
    {
      options = outputOptions // {
        name = mkOption {
          type = types.str;
          default = name;
          defaultText = literalMD "the attribute name";
          description = "Name of the secret: the file appears as `<secretsDir>/<name>`.";
        };
        file = mkOption {
          type = types.nullOr types.path;
          default = cfg.defaultFile;
          defaultText = literalExpression "config.secretd.defaultFile";
          description = "Encrypted file holding the secret: an age file or a sops file.";
        };
        format = mkOption {
          type = types.enum formats;
          default =
            if cfg.defaultFormat != null then
              cfg.defaultFormat
            else if config.file == null then
              "binary"
            else
              formatOfFileName config.file;
          defaultText = literalMD "`secretd.defaultFormat`, else from the file name as sops chooses it";
          description = "How the decrypted file is read: `binary` is the whole plaintext; the others pick `key`.";
        };
        key = mkOption {
          type = types.str;
          default = if config.format == "binary" then "" else config.name;
          defaultText = literalMD ''the secret's `name` for structured formats, `""` for `binary`'';
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

  templateType = types.submodule (
    { name, config, ... }:
    {
      options = outputOptions // {
        name = mkOption {
          type = types.str;
          default = name;
          defaultText = literalMD "the attribute name";
          description = "Name of the rendered file: it appears as `<secretsDir>/rendered/<name>`.";
        };
        content = mkOption {
          type = types.lines;
          description = "Text of the file; each `config.secretd.placeholder.<secret>` in it is replaced by the secret.";
        };
        path = mkOption {
          type = types.str;
          default = "${cfg.secretsDir}/rendered/${config.name}";
          defaultText = literalExpression ''"''${config.secretd.secretsDir}/rendered/''${name}"'';
          description = "Where the rendered file can be read; set elsewhere, a symlink to it.";
        };
      };
    }
  );

  secrets = lib.attrValues cfg.secrets;
  templates = lib.attrValues cfg.templates;

  locationOf = s: "${cfg.secretsDir}/${s.name}";
  renderedLocationOf = t: "${cfg.secretsDir}/rendered/${t.name}";

  linkEntry = path: location: lib.optionalAttrs (path != location) { inherit path; };

  consumersEntry =
    o:
    lib.optionalAttrs (o.restartUnits != [ ]) { restartUnits = lib.unique o.restartUnits; }
    // lib.optionalAttrs (o.reloadUnits != [ ]) { reloadUnits = lib.unique o.reloadUnits; };

  secretEntry =
    s:
    {
      inherit (s) name format mode;
      file =
        if s.file == null then
          throw "secretd.secrets.\"${s.name}\": no file (set file or secretd.defaultFile)"
        else
          "${s.file}";
    }
    // lib.optionalAttrs (s.key != "") { inherit (s) key; }
    // linkEntry s.path (locationOf s)
    // consumersEntry s;

  templateEntry =
    t: { inherit (t) name content mode; } // linkEntry t.path (renderedLocationOf t) // consumersEntry t;

  placeholders = lib.listToAttrs (
    map (s: lib.nameValuePair s.name (placeholderOf s.name)) (
      lib.filter (s: lib.any (t: lib.hasInfix (placeholderOf s.name) t.content) templates) secrets
    )
  );

  manifest = {
    version = 1;
    inherit (cfg) secretsDir mountPoint keepGenerations;
    identities = cfg.identityPaths;
    secrets = map secretEntry secrets;
    templates = map templateEntry templates;
  }
  // lib.optionalAttrs (placeholders != { }) { inherit placeholders; };

  unchecked = pkgs.writeText "secretd-user-manifest.json" (builtins.toJSON manifest);
  manifestFile =
    if !cfg.checkManifest then
      unchecked
    else
      pkgs.runCommand "secretd-user-manifest.json"
        {
          preferLocalBuild = true;
          allowSubstitutes = false;
        }
        ''
          ${cfg.package}/bin/secretd check --user --manifest ${unchecked}
          cp ${unchecked} "$out"
        '';

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
  options.secretd = {
    enable = mkEnableOption "secretd for this user's own secrets" // {
      default = cfg.secrets != { } || cfg.templates != { };
      defaultText = literalMD "whether any secret or template is declared";
    };

    package = mkPackageOption pkgs "secretd" { };

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
        Missing ones are skipped with a warning; `$SOPS_AGE_KEY_FILE`, when set in the unit's
        environment, is tried first.
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
      type = types.nullOr types.path;
      default = null;
      example = literalExpression "./secrets/home.yaml";
      description = "Encrypted file that secrets without their own `file` come from.";
    };

    defaultFormat = mkOption {
      type = types.nullOr (types.enum formats);
      default = null;
      description = "Format of secrets that do not set one; `null`: from the file name.";
    };

    checkManifest = mkOption {
      type = types.bool;
      default = true;
      description = "Whether to run `secretd check --user` on the manifest when building the home configuration.";
    };

    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
      description = "The user's secrets, decrypted into `secretsDir`.";
    };

    templates = mkOption {
      type = types.attrsOf templateType;
      default = { };
      description = "Files rendered from text holding placeholders of secrets, into `<secretsDir>/rendered`.";
    };

    placeholder = mkOption {
      type = types.attrsOf types.str;
      readOnly = true;
      description = "For each secret, the placeholder to write into a template's `content`.";
    };

    manifest = mkOption {
      type = types.raw;
      readOnly = true;
      description = "The user's manifest that the `secretd` user unit activates.";
    };

    manifestFile = mkOption {
      type = types.path;
      readOnly = true;
      description = "The checked manifest file in the Nix store.";
    };
  };

  config = lib.mkMerge [
    {
      secretd = {
        placeholder = lib.mapAttrs (_: s: placeholderOf s.name) cfg.secrets;
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
