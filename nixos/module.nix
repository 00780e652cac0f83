# NixOS module of secretd.
#
# It turns `secretd.secrets.<name>` and `secretd.templates.<name>` into a version 1 manifest
# (see manifest/manifest.go, the contract with the daemon), checks that manifest at build time
# with `secretd check`, and runs `secretd activate` on it from an early-boot oneshot unit that
# NixOS reruns on every switch.
{
  config,
  options,
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
    mkMerge
    types
    literalExpression
    literalMD
    ;

  cfg = config.secretd;
  manifestLib = import ./lib/manifest.nix { inherit lib; };

  # Secrets needed to create users (hashedPasswordFile) live apart from the others (unless
  # forUsersSecretsDir is secretsDir, see there): they are activated before users exist, so
  # they can only be owned by root.
  forUsersSecretsDir = cfg.forUsersSecretsDir;
  forUsersMountPoint = cfg.forUsersMountPoint;
  # agenix keeps password files among the other secrets: they are activated into that
  # directory at boot before users, then again with all the others.
  sharedForUsersDir = forUsersSecretsDir == cfg.secretsDir;

  inherit (manifestLib) placeholderOf;

  # systemd credential names are file names, so they cannot hold "/".
  credentialNameOf = name: lib.replaceStrings [ "/" ] [ "_" ] name;

  sysusers = config.systemd.sysusers.enable;
  userborn = config.services.userborn.enable;

  isRootUser = o: (o.owner == null || o.owner == "root") && (o.uid == null || o.uid == 0);
  isRootGroup = o: (o.group == null || o.group == "root") && (o.gid == null || o.gid == 0);

  # Options shared by secrets and templates: who owns the output file and who is told when it
  # changes.
  outputOptions =
    config:
    {
      owner = mkOption {
        type = types.nullOr types.str;
        default = if config.uid == null then "root" else null;
        defaultText = literalMD ''`"root"`, or `null` when `uid` is set'';
        description = "User that owns the file, looked up by name at activation. Set this or `uid`.";
      };
      group = mkOption {
        type = types.nullOr types.str;
        default = if config.gid == null then "root" else null;
        defaultText = literalMD ''`"root"`, or `null` when `gid` is set'';
        description = "Group that owns the file, looked up by name at activation. Set this or `gid`.";
      };
      uid = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = null;
        description = "Numeric owner, used instead of a name lookup (for users that are not in /etc/passwd).";
      };
      gid = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = null;
        description = "Numeric group, used instead of a name lookup.";
      };
      mode = mkOption {
        type = types.strMatching "0?[0-7]{3,4}";
        default = "0400";
        example = "0440";
        description = "Permission bits of the file, in octal.";
      };
      restartUnits = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "nginx.service" ];
        description = "Units restarted (try-restart, after the new secrets are live) when this file is added, removed, or changes content, owner, group or mode on a switch.";
      };
      reloadUnits = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "nginx.service" ];
        description = "Units reloaded (reload-or-try-restart, after the new secrets are live) when this file is added, removed, or changes content, owner, group or mode on a switch.";
      };
    };

  secretType = types.submodule (
    { config, ... }:
    {
      options = outputOptions config // {
        name = mkOption {
          description = ''
            Name of the secret: the file appears as `<secretsDir>/<name>`. It may contain `/`
            to make subdirectories, as sops-nix names for nested keys do.
          '';
        };
        file = mkOption {
          example = literalExpression "./secrets/wifi.age";
          description = ''
            Encrypted file holding the secret: an age file (agenix style) or a sops file. A
            path in the configuration is copied to the Nix store, which is safe: it stays
            encrypted there.
          '';
        };
        format = mkOption {
          defaultText = literalMD ''
            `secretd.defaultFormat` when set; otherwise the format sops gives the file from its
            name: `yaml` for `.yaml`/`.yml`, `json` for `.json`, `dotenv` for `.env`, `ini` for
            `.ini`, and `binary` (the whole decrypted file) for anything else, such as `.age`
          '';
          description = ''
            How the decrypted file is read. `binary` makes the whole plaintext the secret; the
            other formats pick one value out of a structured document with `key`. Note that a
            sops file encrypted with `--input-type binary` is stored as JSON: give it
            `format = "binary"`.
          '';
        };
        key = mkOption {
          example = "database/password";
          description = ''
            Which value of a structured document to use: a path of keys separated by `/`
            (`github/oauth_token` is key `oauth_token` under `github`, as in sops-nix). The
            empty string selects the whole decrypted document. Must be empty for `binary`.
          '';
        };
        path = mkOption {
          type = types.str;
          default = "${if config.neededForUsers then forUsersSecretsDir else cfg.secretsDir}/${config.name}";
          defaultText = literalExpression ''"''${config.secretd.secretsDir}/''${name}"'';
          description = ''
            Where the secret can be read. Other options should refer to this (for example
            `config.secretd.secrets.foo.path`). When set to a place outside `secretsDir`,
            secretd creates a symlink there pointing to `<secretsDir>/<name>` (see `symlink`).
          '';
        };
        symlink = mkOption {
          type = types.bool;
          default = true;
          description = ''
            Whether `path`, when it differs from its default, is a symlink to the secret, or
            (false, as agenix's `symlink = false`) a copy of it with its owner and mode, for
            programs that do not follow symlinks. A copy on a disk holds plaintext there.
          '';
        };
        neededForUsers = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Activate this secret before users are created, into `${forUsersSecretsDir}`, so that
            `users.users.<name>.hashedPasswordFile` can use it. Such secrets must be owned by
            root.
          '';
        };
        services = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "grafana" ];
          description = ''
            Services (names as in `systemd.services`) that receive this secret as a systemd
            credential: each gets `LoadCredential=<credentialName>:<secret file>`, is ordered
            after secretd and is restarted when the secret changes. The service reads it from
            `$CREDENTIALS_DIRECTORY/<credentialName>`, whatever the file's owner.
          '';
        };
        credentialName = mkOption {
          type = types.str;
          readOnly = true;
          default = credentialNameOf config.name;
          defaultText = literalMD ''the secret's `name` with `/` replaced by `_`'';
          description = "Name of the credential that `services` receive.";
        };
      };
    }
  );

  templateType = types.submodule (
    { config, ... }:
    {
      options = outputOptions config // {
        content = mkOption {
          type = types.lines;
          example = literalExpression ''
            '''
              [database]
              password = ''${config.secretd.placeholder."db/password"}
            '''
          '';
          default = "";
          description = ''
            Text of the file. Each `config.secretd.placeholder.<secret>` in it is replaced by
            that secret's value when secrets are activated.
          '';
        };
        file = mkOption {
          type = types.nullOr types.path;
          default = null;
          example = literalExpression ''(pkgs.formats.ini { }).generate "app.ini" { db.password = config.secretd.placeholder.db; }'';
          description = ''
            A file holding the text instead of `content`, such as a derivation: secretd reads it
            when it loads the manifest, so evaluating the configuration never builds it (no
            import from derivation).
          '';
        };
        path = mkOption {
          description = ''
            Where the rendered file can be read. When set outside `secretsDir`, secretd creates a
            symlink there pointing to the rendered file.
          '';
        };
      };
    }
  );

  allSecrets = lib.attrValues cfg.secrets;
  mainSecrets = lib.filter (s: !s.neededForUsers || sharedForUsersDir) allSecrets;
  userSecrets = lib.filter (s: s.neededForUsers) allSecrets;
  templates = lib.attrValues cfg.templates;

  secretsDirOf = s: if s.neededForUsers then forUsersSecretsDir else cfg.secretsDir;
  locationOf = s: "${secretsDirOf s}/${s.name}";
  renderedLocationOf = t: "${cfg.secretsDir}/rendered/${t.name}";

  mkManifest =
    args:
    manifestLib.mkManifest (
      {
        inherit (cfg) keepGenerations gnupgHome;
        identities = cfg.identityPaths;
      }
      // args
    );

  # Checked by `secretd check` (every key name, format and encrypted file, without
  # decrypting).
  manifestFileOf =
    name: manifest:
    manifestLib.manifestFileOf {
      inherit pkgs name manifest;
      check = if cfg.checkManifest then "${cfg.validationPackage}/bin/secretd check --manifest" else null;
    };

  # Sandboxing of the activation units, as far as the job allows. The job mounts a ramfs on
  # mountPoint that every other unit must see, so the unit must run in the host's mount
  # namespace: systemd gives a unit its own mount namespace for any of ProtectSystem=,
  # ProtectHome=, ReadWritePaths=, PrivateTmp=, PrivateDevices=, PrivateIPC=,
  # ProtectKernelTunables=, ProtectKernelModules=, ProtectKernelLogs=, ProtectControlGroups= and
  # ProtectProc=, marking every mount in it slave first, and MountFlags=shared cannot undo
  # that (systemd.exec(5), MountFlags=), so a ramfs mounted there would stay invisible to the
  # host. Those options are left out; their effect is approached by the capability bounding
  # set, the system call filter and DevicePolicy=. PrivateNetwork= implies PrivateMounts= since
  # systemd 254 unless PrivateMounts= is set explicitly, hence PrivateMounts=false below. The
  # unit only talks to the service manager over unix sockets in the file system, which a
  # private network namespace leaves reachable.
  hardening = {
    UMask = "0077";
    NoNewPrivileges = true;
    # Mount the ramfs (SYS_ADMIN), hand files to their owners (CHOWN, FOWNER), create symlinks
    # in directories of other users and read keys whatever their mode (DAC_*), keep plaintext
    # out of swap (IPC_LOCK).
    CapabilityBoundingSet = "CAP_SYS_ADMIN CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_IPC_LOCK";
    LimitMEMLOCK = "infinity";
    # A core dump would hold plaintext.
    LimitCORE = "0";
    PrivateNetwork = true;
    PrivateMounts = false;
    RestrictAddressFamilies = "AF_UNIX";
    DevicePolicy = "closed";
    ProtectClock = true;
    ProtectHostname = true;
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "@mount"
    ];
    SystemCallErrorNumber = "EPERM";
    # Decrypting takes well under a second a secret; never hold the boot forever.
    TimeoutStartSec = "5min";
  };

  # Extra symlinks may live on other file systems (/home): the unit waits for them as for the
  # keys.
  linkDirsOf =
    secrets: templates:
    map (o: dirOf o.path) (
      lib.filter (s: s.path != locationOf s) secrets
      ++ lib.filter (t: t.path != renderedLocationOf t) templates
    );

  activationUnit =
    {
      description,
      manifestFile,
      extraArgs,
      linkDirs,
      after ? [ ],
      before ? [ ],
      unitConfig ? { },
    }:
    {
      inherit description;
      # Identities on file systems that services mount (ZFS datasets without legacy
      # mountpoints) are there only after local-fs.target.
      after = [ "local-fs.target" ] ++ after;
      wantedBy = [ "sysinit.target" ];
      # NixOS restarts sysinit-reactivation.target on every switch and `test`, which starts
      # the units it requires that are not active. Without RemainAfterExit the unit is inactive
      # once done, so every switch reruns it, after systemd has loaded the new unit: encrypted
      # files outside the store are read again and a damaged secrets directory is repaired,
      # even when the manifest did not change.
      requiredBy = [ "sysinit-reactivation.target" ];
      before = [
        "sysinit.target"
        "sysinit-reactivation.target"
        "shutdown.target"
      ]
      ++ before;
      # Without default dependencies, nothing else stops it at shutdown.
      conflicts = [ "shutdown.target" ];
      restartTriggers = [ manifestFile ];
      # age plugins (YubiKey, TPM) and gpg run as programs found on PATH.
      path = programs;
      inherit (cfg) environment;
      unitConfig = {
        DefaultDependencies = false;
        RequiresMountsFor = lib.unique (
          cfg.identityPaths ++ lib.optional (cfg.gnupgHome != null) cfg.gnupgHome ++ linkDirs
        );
      }
      // unitConfig;
      serviceConfig =
        hardening
        // {
          Type = "oneshot";
          RemainAfterExit = false;
          ExecStart = "${cfg.package}/bin/secretd activate${extraArgs} --manifest ${manifestFile}";
        }
        # Plugins talk to their hardware (hidraw, USB, TPM): device nodes are allowed only then.
        // lib.optionalAttrs (cfg.plugins != [ ]) { DevicePolicy = "auto"; };
    };

  # Units that read the secrets: those the configuration names as consumers, and units that
  # start before sysinit.target (DefaultDependencies=no, such as network and cryptsetup units)
  # and name a secret's path in their settings or script.
  secretPaths = map (s: s.path) allSecrets ++ map (t: t.path) templates;
  earlyReaders = lib.attrNames (
    lib.filterAttrs (
      name: u:
      !(lib.hasPrefix "secretd" name)
      && lib.elem (u.unitConfig.DefaultDependencies or true) [
        false
        "no"
        "false"
      ]
      && (
        let
          text = builtins.toJSON [
            (u.serviceConfig or { })
            (u.script or "")
            (u.environment or { })
          ];
        in
        lib.hasInfix cfg.secretsDir text || lib.any (p: lib.hasInfix p text) secretPaths
      )
    ) config.systemd.services
  );
  # systemd-networkd reads WireGuard keys named in .netdev files before sysinit.target.
  readsSecret = f: builtins.isString f && (lib.hasPrefix "${cfg.secretsDir}/" f || lib.elem f secretPaths);
  networkdKeyFiles = lib.concatMap (
    netdev:
    [ (netdev.wireguardConfig.PrivateKeyFile or null) ]
    ++ map (peer: peer.PresharedKeyFile or peer.wireguardPeerConfig.PresharedKeyFile or null) (
      netdev.wireguardPeers or [ ]
    )
  ) (lib.attrValues (config.systemd.network.netdevs or { }));
  networkdReadsSecrets = lib.any readsSecret networkdKeyFiles;

  # Only whole unit names can be ordered against (NixOS's unitNameType); a pattern such as
  # "wireguard-*" cannot.
  isUnitName =
    u: builtins.match "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)" u != null;
  consumerUnits = lib.filter isUnitName (lib.unique (
    lib.concatMap (o: o.restartUnits ++ o.reloadUnits) (mainSecrets ++ templates)
    ++ map (u: "${u.unit}.service") credentialUsers
    ++ map (n: "${n}.service") earlyReaders
    ++ lib.optional networkdReadsSecrets "systemd-networkd.service"
  ));

  # What the units get from `path` and `environment`, for the activation snippets.
  # Programs secretd runs: age plugins, and gpg only for a GnuPG home.
  programs = cfg.plugins ++ lib.optional (cfg.gnupgHome != null) cfg.gnupgPackage;
  snippetEnv = lib.concatStringsSep " " (
    lib.optional (programs != [ ]) "PATH=${lib.makeBinPath programs}\${PATH:+:$PATH}"
    ++ lib.mapAttrsToList (n: v: "${n}=${lib.escapeShellArg v}") cfg.environment
  );
  secretdCommand = lib.optionalString (snippetEnv != "") "${snippetEnv} " + "${cfg.package}/bin/secretd activate";
  forUsersCommand = "${secretdCommand} --for-users --manifest ${cfg.manifestFileForUsers}";

  # Services that load a secret as a credential.
  credentialUsers = lib.concatMap (
    s:
    map (svc: {
      unit = lib.removeSuffix ".service" svc;
      secret = s;
    }) s.services
  ) allSecrets;

  passwordFiles = lib.filter (f: f != null) (
    lib.mapAttrsToList (_: u: u.hashedPasswordFile or null) config.users.users
  );

  # Assertions.

  # A service in `services` must be declared by something else than this module, which only
  # adds LoadCredential= to it.
  thisFile = toString ./module.nix;
  declaredServices = lib.unique (
    lib.concatMap (d: lib.attrNames d.value) (
      lib.filter (d: d.file != thisFile) options.systemd.services.definitionsWithLocations
    )
  );
  unknownServices = s: lib.filter (svc: !lib.elem (lib.removeSuffix ".service" svc) declaredServices) s.services;

  quoted = v: if v == null then "null" else if builtins.isInt v then toString v else "\"${v}\"";

  nameProblem =
    name:
    let
      segments = lib.splitString "/" name;
      badSegment = seg: seg == "" || seg == "." || seg == ".." || builtins.match "[^[:cntrl:]/]+" seg == null;
    in
    if lib.hasPrefix "/" name then
      "is absolute; names are relative to secretsDir"
    else if lib.any badSegment segments then
      "must be segments of text without control characters joined by /, none of them empty, . or .."
    else
      null;

  outputAssertions =
    what: o: defaultDir:
    [
      {
        assertion = !(o.owner != null && o.uid != null);
        message = "${what}: set owner or uid, not both (owner ${quoted o.owner}, uid ${toString o.uid}).";
      }
      {
        assertion = !(o.group != null && o.gid != null);
        message = "${what}: set group or gid, not both (group ${quoted o.group}, gid ${toString o.gid}).";
      }
      {
        assertion = nameProblem o.name == null;
        message = "${what}: name ${quoted o.name} ${toString (nameProblem o.name)}.";
      }
      {
        assertion = lib.hasPrefix "/" o.path;
        message = "${what}: path ${quoted o.path} must be absolute.";
      }
      {
        assertion =
          o.path == "${defaultDir}/${o.name}"
          || !(lib.hasPrefix "${cfg.secretsDir}/" o.path || lib.hasPrefix "${forUsersSecretsDir}/" o.path);
        message = "${what}: path ${quoted o.path} is inside a secrets directory, which secretd replaces whole on every activation; leave path at its default or point it elsewhere.";
      }
    ]
    ++ lib.optionals (!config.users.mutableUsers) [
      {
        assertion = o.owner == null || config.users.users ? ${o.owner};
        message = "${what}: owner ${quoted o.owner} is not declared in users.users, and users.mutableUsers is false, so no such user will exist.";
      }
      {
        assertion = o.group == null || config.users.groups ? ${o.group};
        message = "${what}: group ${quoted o.group} is not declared in users.groups, and users.mutableUsers is false, so no such group will exist.";
      }
    ];

  secretAssertions = lib.concatLists (
    lib.mapAttrsToList (
      attr: s:
      let
        what = "secretd.secrets.${quoted attr}";
      in
      outputAssertions what s (secretsDirOf s)
      ++ [
        {
          assertion = s.file != null;
          message = "${what}: no encrypted file: set its file, or secretd.defaultFile.";
        }
        {
          assertion = !(s.format == "binary" && s.key != "");
          message = "${what}: key = ${quoted s.key} is set, but a binary secret is the whole decrypted file. Set format to yaml, json, dotenv or ini, or remove key.";
        }
        {
          assertion = !s.neededForUsers || (isRootUser s && isRootGroup s);
          message = "${what}: neededForUsers secrets are activated before users and groups exist, so they must be owned by root (owner ${quoted s.owner}, uid ${quoted s.uid}, group ${quoted s.group}, gid ${quoted s.gid}); leave owner and group at \"root\".";
        }
        {
          assertion = unknownServices s == [ ];
          message = "${what}: services names ${lib.concatMapStringsSep ", " quoted (unknownServices s)}, which no other module declares in systemd.services (a typo?); secretd would only create an empty unit to load it into.";
        }
        {
          assertion = s.name != "rendered" && !lib.hasPrefix "rendered/" s.name;
          message = "${what}: name ${quoted s.name} is inside rendered/, which holds rendered templates.";
        }
      ]
    ) cfg.secrets
  );

  templateAssertions = lib.concatLists (
    lib.mapAttrsToList (
      attr: t:
      let
        what = "secretd.templates.${quoted attr}";
        forUsersUsed = lib.filter (s: lib.hasInfix (placeholderOf s.name) t.content) userSecrets;
      in
      outputAssertions what t "${cfg.secretsDir}/rendered"
      ++ [
        {
          assertion = forUsersUsed == [ ];
          message = "${what}: uses the placeholder of ${lib.concatMapStringsSep ", " (s: quoted s.name) forUsersUsed}, a neededForUsers secret; templates are rendered with the other secrets, after users exist. Declare a second secret without neededForUsers for the template.";
        }
      ]
    ) cfg.templates
  );

  pathAssertions =
    let
      outputs =
        lib.mapAttrsToList (attr: s: {
          what = "secretd.secrets.${quoted attr}";
          inherit (s) path;
        }) cfg.secrets
        ++ lib.mapAttrsToList (attr: t: {
          what = "secretd.templates.${quoted attr}";
          inherit (t) path;
        }) cfg.templates;
      clashes = lib.filterAttrs (_: l: lib.length l > 1) (lib.groupBy (o: o.path) outputs);
    in
    lib.mapAttrsToList (path: l: {
      assertion = false;
      message = "secretd: ${lib.concatMapStringsSep " and " (o: o.what) l} all have path ${quoted path}; each secret and template needs a path of its own.";
    }) clashes;

  credentialAssertions =
    let
      byUnit = lib.groupBy (u: u.unit) credentialUsers;
    in
    lib.concatLists (
      lib.mapAttrsToList (
        unit: users:
        let
          clashes = lib.filterAttrs (_: l: lib.length l > 1) (lib.groupBy (u: u.secret.credentialName) users);
        in
        lib.mapAttrsToList (credential: l: {
          assertion = false;
          message = "secretd: secrets ${lib.concatMapStringsSep " and " (u: quoted u.secret.name) l} would all be credential ${quoted credential} of ${unit}.service; rename one of them.";
        }) clashes
      ) byUnit
    );
in
{
  # The options, types and defaults it has in common with the home-manager module.
  imports = [ ./common/options.nix ];

  options.secretd = {
    enable = mkEnableOption "secretd, which decrypts age and sops secrets with the host's SSH key at boot and on every switch";

    identityPaths = mkOption {
      type = types.listOf types.str;
      default = lib.optionals config.services.openssh.enable (
        map (k: k.path) (lib.filter (k: lib.elem (k.type or null) [ "ed25519" "rsa" ]) config.services.openssh.hostKeys)
      );
      defaultText = literalExpression ''
        lib.optionals config.services.openssh.enable
          (map (k: k.path) (lib.filter (k: k.type == "ed25519" || k.type == "rsa") config.services.openssh.hostKeys))
      '';
      example = [ "/persist/etc/ssh/ssh_host_ed25519_key" ];
      description = ''
        Private keys that decrypt the secrets: OpenSSH ed25519 or RSA keys (agenix files are
        encrypted to the public key, sops files to the `ssh-to-age` recipient of an ed25519
        key), or age identity files. The unit waits for the file systems holding them.
      '';
    };

    secretsDir = mkOption {
      type = types.str;
      default = "/run/secrets";
      description = ''
        Where secrets appear: a symlink that secretd points atomically at the newest
        generation under `mountPoint`.
      '';
    };

    mountPoint = mkOption {
      type = types.str;
      default = "/run/secrets.d";
      description = "Where secretd mounts the ramfs that holds the generations of secrets.";
    };

    keepGenerations = mkOption {
      type = types.ints.unsigned;
      default = 1;
      description = ''
        How many generations to keep besides the current one, so that a process still reading
        the previous secrets during a switch does not lose them. 0 never prunes (as in
        sops-nix).
      '';
    };

    forUsersSecretsDir = mkOption {
      type = types.str;
      default = "/run/secrets-for-users";
      description = ''
        Where `neededForUsers` secrets appear. When it is `secretsDir` (as agenix has it), they
        are activated there alone before users are created at boot, and with all the others by
        `secretd.service`.
      '';
    };

    forUsersMountPoint = mkOption {
      type = types.str;
      default = if cfg.forUsersSecretsDir == cfg.secretsDir then cfg.mountPoint else "/run/secrets-for-users.d";
      defaultText = literalMD "`mountPoint` when `forUsersSecretsDir` is `secretsDir`, else `/run/secrets-for-users.d`";
      description = "Where the generations of `neededForUsers` secrets are mounted.";
    };

    plugins = mkOption {
      type = types.listOf (types.either types.package types.path);
      default = [ ];
      example = literalExpression "[ pkgs.age-plugin-yubikey pkgs.age-plugin-tpm ]";
      description = ''
        age plugins for plugin identities (`AGE-PLUGIN-…` in an identity file): put on the
        units' PATH, and the units may then open device nodes (`DevicePolicy=auto`).
      '';
    };

    gnupgHome = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/root/.gnupg";
      description = ''
        A GnuPG home whose secret keys open the PGP recipients of sops files, through `gpg`
        (as sops does; sops-nix's `sops.gnupg.home`). `gpg` is on the units' PATH only then.
        RSA keys among `identityPaths` open PGP recipients without it, in-process.
      '';
    };

    gnupgPackage = mkPackageOption pkgs "gnupg" { };

    environment = mkOption {
      type = types.attrsOf (types.either types.str types.path);
      default = { };
      description = "Environment variables of the activation units (for plugins, or `SOPS_GPG_EXEC`).";
    };

    activateAfter = mkOption {
      type = types.listOf types.str;
      default = [ ];
      internal = true;
      description = "Activation snippets the for-users snippet runs after (such as one that creates a key).";
    };

    validationPackage = mkOption {
      type = types.package;
      default =
        if pkgs.stdenv.buildPlatform == pkgs.stdenv.hostPlatform then cfg.package else pkgs.pkgsBuildHost.secretd;
      defaultText = literalMD "`package` when building natively, else the build platform's `secretd`";
      description = ''
        The secretd that runs `secretd check` when the system is built: it must run on the
        build machine, so a cross-compiled system needs the build platform's.
      '';
    };

    defaultFile = mkOption {
      example = literalExpression "./secrets/secrets.yaml";
      description = ''
        Encrypted file that secrets without their own `file` come from, like sops-nix's
        `defaultSopsFile`: typically one sops YAML file holding many keys.
      '';
    };

    defaultFormat = mkOption {
      example = "yaml";
      description = ''
        Format of secrets that do not set their own. By default (`null`) the format comes from
        the file name, as sops chooses it when encrypting: `yaml` for `.yaml` and `.yml`,
        `json`, `dotenv` for `.env`, `ini`, and `binary` for anything else, such as agenix
        `.age` files. So sops-nix users with `secrets.yaml` get `yaml`, as `defaultSopsFormat`
        gave them, and agenix files are whole-file secrets, without any setting.
      '';
    };

    checkManifest = mkOption {
      description = ''
        Whether to run `secretd check` on the manifest when building the system: it verifies
        every encrypted file and that every key exists, without decrypting. Turn this off when
        secrets refer to files outside the Nix store, which the build cannot read.
      '';
    };

    secrets = mkOption {
      type = types.attrsOf secretType;
      example = literalExpression ''
        {
          # agenix style: a whole age file.
          wifi.file = ./secrets/wifi.age;
          # sops-nix style: a key of secretd.defaultFile.
          "db/password" = { owner = "grafana"; restartUnits = [ "grafana.service" ]; };
        }
      '';
      description = "Secrets to decrypt into `secretsDir`.";
    };

    templates = mkOption {
      type = types.attrsOf templateType;
      description = ''
        Files rendered from text holding placeholders of secrets (`secretd.placeholder`), into
        `<secretsDir>/rendered`.
      '';
    };

    placeholder = mkOption {
      description = ''
        For each secret, the placeholder to write into a template's `content` where the
        secret's value belongs.
      '';
    };

    manifest = mkOption {
      description = "The manifest activated by `secretd.service` (try `nix eval` on it).";
    };

    manifestForUsers = mkOption {
      type = types.raw;
      readOnly = true;
      description = "The manifest of `neededForUsers` secrets.";
    };

    manifestFile = mkOption {
      description = "The checked manifest file in the Nix store that `secretd.service` activates.";
    };

    manifestFileForUsers = mkOption {
      type = types.path;
      readOnly = true;
      description = "The checked manifest file of `neededForUsers` secrets.";
    };
  };

  config = mkMerge [
    {
      secretd = {
        manifest = mkManifest {
          inherit (cfg) secretsDir mountPoint;
          secrets = mainSecrets;
          inherit templates;
        };
        manifestForUsers = mkManifest {
          secretsDir = forUsersSecretsDir;
          mountPoint = forUsersMountPoint;
          secrets = userSecrets;
          templates = [ ];
        };
        manifestFile = manifestFileOf "secretd-manifest.json" cfg.manifest;
        manifestFileForUsers = manifestFileOf "secretd-manifest-for-users.json" cfg.manifestForUsers;
      };
    }

    (mkIf cfg.enable (mkMerge [
      {
        assertions = [
          {
            assertion = cfg.identityPaths != [ ] || cfg.gnupgHome != null;
            message = "secretd: secretd.identityPaths is empty, so nothing could decrypt the secrets. Enable services.openssh (its ed25519 and rsa host keys are the default) or set secretd.identityPaths.";
          }
        ]
        ++ secretAssertions
        ++ templateAssertions
        ++ pathAssertions
        ++ credentialAssertions;

        environment.systemPackages = [ cfg.package ];

        # A password file that only secretd.service writes is not there when users are created
        # at boot.
        warnings = lib.concatMap (
          s:
          lib.optional (!s.neededForUsers && lib.elem s.path passwordFiles)
            "secretd.secrets.\"${s.name}\" is a user's hashedPasswordFile but not neededForUsers: at boot users are created before secretd.service writes it. Set neededForUsers = true."
        ) allSecrets;

        # It always runs, even with nothing declared, so that removing the last secret also
        # removes it from /run/secrets.
        systemd.services.secretd = activationUnit {
          description = "Activate secrets";
          manifestFile = cfg.manifestFile;
          extraArgs = "";
          linkDirs = linkDirsOf mainSecrets templates;
          # Owners named in the manifest must exist.
          after = lib.optional sysusers "systemd-sysusers.service" ++ lib.optional userborn "userborn.service";
          before = consumerUnits;
        };

        # `nixos-rebuild dry-activate` shows what the switch would change.
        system.activationScripts.secretd = {
          supportsDryActivation = true;
          text = ''
            if [ "''${NIXOS_ACTION-}" = dry-activate ]; then
              ${secretdCommand} --dry-run --manifest ${cfg.manifestFile} || true
            fi
          '';
        };
      }

      (mkIf (userSecrets != [ ] && (sysusers || userborn)) {
        systemd.services.secretd-for-users = activationUnit {
          description = "Activate secrets needed to create users";
          manifestFile = cfg.manifestFileForUsers;
          extraArgs = " --for-users";
          linkDirs = linkDirsOf userSecrets [ ];
          before = lib.optional sysusers "systemd-sysusers.service" ++ lib.optional userborn "userborn.service";
          # In a shared directory only the first activation of a boot may hold just these
          # secrets; later ones are secretd.service's, with every secret.
          unitConfig = lib.optionalAttrs sharedForUsersDir { ConditionPathExists = "!${cfg.secretsDir}"; };
        };
      })

      # Without systemd-sysusers or userborn, users are created by the `users` activation
      # script, which runs before systemd starts any unit: the secrets it reads must be
      # activated in a snippet it depends on.
      (mkIf (userSecrets != [ ] && !sysusers && !userborn) {
        system.activationScripts.secretd-for-users = {
          deps = [ "specialfs" ] ++ cfg.activateAfter;
          supportsDryActivation = true;
          # --no-signal: during a switch this runs before systemd has loaded the new units;
          # secretd.service restarts the consumers afterwards. In a shared directory only a
          # boot activates these secrets alone (see secretd-for-users.service).
          text = ''
            if [ "''${NIXOS_ACTION-}" = dry-activate ]; then
              ${
                # In a shared directory the `secretd` snippet's dry run covers these secrets.
                if sharedForUsersDir then ":" else "${forUsersCommand} --dry-run || true"
              }
          ''
          + lib.optionalString sharedForUsersDir ''
            elif [ -e ${cfg.secretsDir} ]; then
              : secrets needed for users are already in ${cfg.secretsDir}
          ''
          + ''
            else
              echo "activating secrets needed to create users..."
              ${forUsersCommand} --no-signal
            fi
          '';
        };
        system.activationScripts.users.deps = [ "secretd-for-users" ];
      })

      {
        systemd.services = mkMerge (
          map (u: {
            ${u.unit} = {
              serviceConfig.LoadCredential = [ "${u.secret.credentialName}:${locationOf u.secret}" ];
            }
            // lib.optionalAttrs (!u.secret.neededForUsers) {
              # Not wants=: secretd.service is inactive once done, and starting it with every
              # consumer would rerun it.
              after = [ "secretd.service" ];
            };
          }) credentialUsers
        );
      }
    ]))
  ];
}
