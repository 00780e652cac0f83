# What a configuration of compat-configs.nix produces, in one shape for the upstream modules
# (agenix, sops-nix) and for secretd's compatibility modules, so that they can be compared:
# for each secret (by file name) and template, where it can be read and where its bytes are,
# owner, group, mode, which value of which file, the units told of changes, and whether it is
# in place before users are created; for each user with a password file, whether that file is
# ready when users are created; the activation snippets other modules can order against, and
# the units the activation unit is ordered after.
#
# Modes are reported as given; golden/regenerate.sh adds `modeOctal`, the mode that the real
# chmod gives a file that agenix creates (umask u=r,g=,o=) when passed it.
{ lib }:

let
  # A file's name without the Nix store prefix, so that facts do not depend on the machine.
  fileName =
    f:
    let
      base = baseNameOf (toString f);
      m = builtins.match "[0-9a-z]{32}-(.*)" base;
    in
    if m == null then base else builtins.head m;

  idOf = name: id: if name != null then name else toString id;

  # The snippets `users` waits for, directly or not.
  usersDeps =
    config:
    let
      scripts = config.system.activationScripts;
      depsOf = n: if scripts ? ${n} && builtins.isAttrs scripts.${n} then scripts.${n}.deps else [ ];
      closure =
        seen: todo:
        if todo == [ ] then
          seen
        else
          let
            next = lib.filter (d: !(lib.elem d seen)) (depsOf (builtins.head todo));
          in
          closure (seen ++ next) (builtins.tail todo ++ next);
    in
    closure [ ] [ "users" ];

  usersUnit =
    config:
    if config.systemd.sysusers.enable then
      "systemd-sysusers.service"
    else if config.services.userborn.enable then
      "userborn.service"
    else
      null;

  # Whether something that installs secrets runs before users are created: the snippet when
  # the activation script creates users, else the unit.
  beforeUsers =
    config:
    { snippet, unit }:
    let
      u = usersUnit config;
      services = config.systemd.services;
    in
    if u == null then
      lib.elem snippet (usersDeps config)
    else
      services ? ${unit}
      && (
        lib.elem u services.${unit}.before
        || lib.elem "${unit}.service" (services.${lib.removeSuffix ".service" u}.after or [ ])
      );

  extraSnippets =
    config:
    lib.subtractLists [
      "specialfs"
      "users"
      "groups"
    ] (lib.attrNames config.system.activationScripts);

  sorted = l: lib.sort lib.lessThan (lib.unique l);

  usersWithPasswordFiles =
    config: secretFacts:
    lib.mapAttrs (_: u: {
      file = u.hashedPasswordFile;
      readyBeforeUsers = lib.any (s: s.path == u.hashedPasswordFile && s.beforeUsers) (lib.attrValues secretFacts);
    }) (lib.filterAttrs (_: u: u.hashedPasswordFile != null) config.users.users);

  templateContent =
    config: t:
    let
      # The file's text, unless it is what sops-nix makes of `content` (a pkgs.writeText).
      text = if t.file ? text then t.file.text else builtins.readFile t.file;
      names = lib.attrNames config.sops.placeholder;
    in
    lib.replaceStrings (map (n: config.sops.placeholder.${n}) names) (map (n: "@{${n}}") names) text;

  common =
    config: secrets: templates: unitAfter: keys: {
      inherit secrets templates;
      # The keys that decrypt: private key files, and a GnuPG home.
      identities = sorted (map toString keys.files);
      gnupgHome = keys.gnupgHome or null;
      users = usersWithPasswordFiles config secrets;
      snippets = extraSnippets config;
      unitAfter = sorted unitAfter;
      inherit (config) warnings;
      # Every unit name others can order against: the activation unit's names.
      unitNames = lib.attrNames (lib.filterAttrs (n: _: lib.elem n [ "sops-install-secrets" "agenix-install-secrets" ]) config.systemd.services)
        ++ map (lib.removeSuffix ".service") (config.systemd.services.secretd.aliases or [ ]);
      usersBy = if usersUnit config == null then "activation script" else usersUnit config;
    };
in
{
  # sops-nix, from the manifests it builds (system.build.sops-nix-manifest and
  # sops-nix-users-manifest; templates from the options it serialises there, whose `file` is
  # still the configuration's path) and its units and snippets.
  upstreamSops =
    config:
    let
      manifest = builtins.fromJSON (builtins.unsafeDiscardStringContext config.system.build.sops-nix-manifest.text);
      forUsers = builtins.fromJSON (builtins.unsafeDiscardStringContext config.system.build.sops-nix-users-manifest.text);
      readyBeforeUsers = beforeUsers config {
        snippet = "setupSecretsForUsers";
        unit = "sops-install-secrets-for-users";
      };
      secretFacts =
        m: early:
        map (s: {
          inherit (s) name;
          value = {
            inherit (s) path mode format;
            location = "${m.symlinkPath}/${s.name}";
            linked = s.path != "${m.symlinkPath}/${s.name}";
            file = fileName s.sopsFile;
            # sops-install-secrets writes the whole file for these formats, whatever the key.
            key = if lib.elem s.format [ "binary" "dotenv" "ini" ] then "" else s.key;
            user = idOf s.owner s.uid;
            group = idOf s.group s.gid;
            restartUnits = sorted s.restartUnits;
            reloadUnits = sorted s.reloadUnits;
            beforeUsers = early && readyBeforeUsers;
          };
        }) m.secrets;
      secrets = lib.listToAttrs (secretFacts manifest false ++ secretFacts forUsers true);
      templates = lib.listToAttrs (
        map (t: {
          inherit (t) name;
          value = {
            inherit (t) path mode;
            user = idOf t.owner t.uid;
            group = idOf t.group t.gid;
            content = templateContent config t;
            restartUnits = sorted t.restartUnits;
            reloadUnits = sorted t.reloadUnits;
          };
        }) (lib.attrValues config.sops.templates)
      );
    in
    common config secrets templates (config.systemd.services.sops-install-secrets.after or [ ]) {
      files = manifest.ageSshKeyPaths ++ lib.optional (manifest.ageKeyFile != null) manifest.ageKeyFile ++ manifest.sshKeyPaths;
      inherit (manifest) gnupgHome;
    };

  # agenix, from its evaluated options (which its activation script and unit interpolate).
  upstreamAgenix =
    config:
    let
      cfg = config.age;
      early = beforeUsers config {
        snippet = "agenixInstall";
        unit = "agenix-install-secrets";
      };
      secrets = lib.listToAttrs (
        map (s: {
          inherit (s) name;
          value = {
            inherit (s) path mode;
            location = if s.symlink then "${cfg.secretsDir}/${s.name}" else s.path;
            linked = s.symlink && s.path != "${cfg.secretsDir}/${s.name}";
            file = fileName s.file;
            format = "binary";
            key = "";
            user = s.owner;
            group = s.group;
            restartUnits = [ ];
            reloadUnits = [ ];
            beforeUsers = early;
          };
        }) (lib.attrValues cfg.secrets)
      );
    in
    common config secrets { } (config.systemd.services.agenix-install-secrets.after or [ ]) {
      files = cfg.identityPaths;
    };

  # secretd, from its manifests, units and snippets.
  secretd =
    config:
    let
      cfg = config.secretd;
      readyBeforeUsers = beforeUsers config {
        snippet = "secretd-for-users";
        unit = "secretd-for-users";
      };
      declared = lib.listToAttrs (map (s: lib.nameValuePair s.name s) (lib.attrValues cfg.secrets));
      secretFacts =
        m: early:
        map (
          e:
          let
            s = declared.${e.name};
            location = "${m.secretsDir}/${e.name}";
          in
          {
            inherit (e) name;
            value = {
              inherit (s) path;
              inherit (e) mode format;
              location = if (e.symlink or true) then location else s.path;
              linked = e ? path && (e.symlink or true);
              file = fileName e.file;
              key = e.key or "";
              user = idOf (e.owner or null) (e.uid or 0);
              group = idOf (e.group or null) (e.gid or 0);
              restartUnits = sorted (e.restartUnits or [ ]);
              reloadUnits = sorted (e.reloadUnits or [ ]);
              beforeUsers = early && readyBeforeUsers;
            };
          }
        ) m.secrets;
      # A secret in both manifests (agenix's password files) is ready before users.
      secrets = lib.listToAttrs (secretFacts cfg.manifestForUsers true ++ secretFacts cfg.manifest false);
      templates = lib.listToAttrs (
        map (
          t:
          let
            names = lib.attrNames cfg.manifest.placeholders or { };
          in
          {
            inherit (t) name;
            value = {
              path = t.path or "${cfg.secretsDir}/rendered/${t.name}";
              inherit (t) mode;
              user = idOf (t.owner or null) (t.uid or 0);
              group = idOf (t.group or null) (t.gid or 0);
              content = lib.replaceStrings (map (n: cfg.manifest.placeholders.${n}) names) (
                map (n: "@{${n}}") names
              ) t.content;
              restartUnits = sorted (t.restartUnits or [ ]);
              reloadUnits = sorted (t.reloadUnits or [ ]);
            };
          }
        ) cfg.manifest.templates
      );
    in
    common config secrets templates (config.systemd.services.secretd.after or [ ]) {
      files = cfg.manifest.identities;
      gnupgHome = cfg.manifest.gnupgHome or null;
    };
}
