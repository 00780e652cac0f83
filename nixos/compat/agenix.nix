# Lets a configuration written for agenix run on secretd unchanged: it declares agenix's
# `age.*` options and maps them onto `secretd.*`. Import it instead of agenix's module, not
# beside it.
#
# Secrets that a user's hashedPasswordFile points at are activated before users are created,
# as agenix does, in every user mode (agenix's own unit for systemd-sysusers and userborn runs
# after them).
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

  # chmod's symbolic modes ("u=r,g=r", "a+r", "go-w") applied as agenix applies them: to a file
  # created with umask u=r,g=,o=, so mode 0400 before chmod. Octal modes are taken as they are.
  chmodMode =
    mode:
    if builtins.match "[0-7]{1,4}" mode != null then
      let
        digits = lib.stringToCharacters mode;
        padded = lib.replicate (4 - lib.length digits) "0" ++ digits;
      in
      lib.concatStrings padded
    else
      let
        bitsOf = {
          r = 4;
          w = 2;
          x = 1;
        };
        classes = {
          u = [ 0 ];
          g = [ 1 ];
          o = [ 2 ];
          a = [
            0
            1
            2
          ];
        };
        # One clause: who, operator, permissions, such as "ug+rw".
        apply =
          perms: clause:
          let
            m = builtins.match "([ugoa]*)([-+=])([rwx]*)" clause;
            who = if m == null || builtins.elemAt m 0 == "" then "a" else builtins.elemAt m 0;
            op = builtins.elemAt m 1;
            bits = lib.foldl' (acc: c: lib.bitOr acc bitsOf.${c}) 0 (lib.stringToCharacters (builtins.elemAt m 2));
            targets = lib.unique (lib.concatMap (c: classes.${c}) (lib.stringToCharacters who));
            change =
              old:
              if op == "=" then
                bits
              else if op == "+" then
                lib.bitOr old bits
              else
                lib.bitAnd old (lib.bitXor 7 bits);
          in
          if m == null then
            null
          else if perms == null then
            null
          else
            lib.imap0 (i: p: if lib.elem i targets then change p else p) perms;
        result = lib.foldl' apply [
          4
          0
          0
        ] (lib.splitString "," mode);
      in
      if result == null then null else "0" + lib.concatMapStrings toString result;

  secretType = types.submodule (
    { config, ... }:
    {
      options = {
        path = mkOption { description = "Where the secret can be read."; };
        mode = mkOption {
          description = ''Permission bits of the decrypted file, as chmod takes them ("0440", "770", "u=r,g=r").'';
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
          description = ''
            Whether `path`, when not the default, is a symlink into `age.secretsDir`; false puts
            a copy there, with the secret's owner and mode, replaced atomically.
          '';
        };
      };
    }
  );

  # agenix takes "0" and other numbers for ids.
  ownerOf = s: if isNumber s.owner then { uid = lib.toInt s.owner; } else { owner = s.owner; };
  groupOf = s: if isNumber s.group then { gid = lib.toInt s.group; } else { group = s.group; };

  isRoot = id: id == "0" || id == "root";

  # The files users' passwords are read from.
  passwordFiles = lib.filter (f: f != null) (lib.mapAttrsToList (_: u: u.hashedPasswordFile or null) users);
  neededForUsers = s: lib.elem s.path passwordFiles && isRoot s.owner && isRoot s.group;

  classic = !config.systemd.sysusers.enable && !config.services.userborn.enable;
in
{
  imports = [
    ../module.nix
    # The options and mapping it has in common with the home-manager module.
    ./common/agenix.nix
    (lib.mkRenamedOptionModule [ "age" "sshKeyPaths" ] [ "age" "identityPaths" ])
  ];

  options.age = {
    secrets = mkOption {
      type = types.attrsOf secretType;
      description = "Secrets, as agenix declares them, activated by secretd.";
    };
    secretsDir = mkOption { default = "/run/agenix"; };
    secretsMountPoint = mkOption {
      default = "/run/agenix.d";
      description = "Where the ramfs holding the generations of secrets is mounted.";
    };
    identityPaths = mkOption {
      default = lib.optionals config.services.openssh.enable (
        map (k: k.path) (lib.filter (k: lib.elem (k.type or null) [ "ed25519" "rsa" ]) config.services.openssh.hostKeys)
      );
      defaultText = lib.literalMD "the ed25519 and rsa host keys of `services.openssh`, when it is enabled";
    };
    ageBin = mkOption {
      type = types.str;
      default = "age";
      description = ''
        The age program agenix would run. secretd decrypts by itself; when this names a
        program in a store package (such as rage, or age with plugins), that package's `bin`
        is put on the units' PATH (`secretd.plugins`), so the plugins beside it are found.
      '';
    };
  };

  config = lib.mkIf (cfg.secrets != { }) {
    secretd = {
      forUsersSecretsDir = lib.mkDefault cfg.secretsDir;
      # The package of a store ageBin (rage, age with plugins): its plugins are found beside it.
      plugins = lib.optional (lib.hasPrefix "${builtins.storeDir}/" cfg.ageBin) (dirOf (dirOf cfg.ageBin));
      secrets = lib.mapAttrs (
        _: s:
        {
          inherit (s) symlink;
          neededForUsers = neededForUsers s;
        }
        // lib.optionalAttrs (chmodMode s.mode != null) { mode = chmodMode s.mode; }
        // ownerOf s
        // groupOf s
      ) cfg.secrets;
    };

    # The unit name agenix has with systemd-sysusers or userborn, which units order against.
    systemd.services.secretd.aliases = lib.mkIf (!classic) [ "agenix-install-secrets.service" ];

    # The snippet names agenix gives other modules to order against: agenixInstall (secrets
    # needed for users decrypted) and agenix (all done). With secretd the other secrets are
    # activated by secretd.service, which starts before sysinit.target.
    system.activationScripts = lib.mkIf classic {
      agenixInstall = {
        deps = [ "specialfs" ] ++ lib.optional (config.secretd.manifestForUsers.secrets != [ ]) "secretd-for-users";
        text = "";
      };
      agenix = {
        deps = [
          "agenixInstall"
          "users"
          "groups"
        ];
        text = "";
      };
      users.deps = [ "agenixInstall" ];
    };

    assertions = lib.mapAttrsToList (n: s: {
      assertion = chmodMode s.mode != null;
      message = "age.secrets.\"${n}\".mode = \"${s.mode}\" is not a mode chmod takes (octal such as \"0440\", or symbolic such as \"u=r,g=r\").";
    }) cfg.secrets;

    warnings = lib.concatLists (
      lib.mapAttrsToList (
        n: s:
        lib.optional (lib.elem s.path passwordFiles && !(isRoot s.owner && isRoot s.group))
          "age.secrets.\"${n}\" is a user's hashedPasswordFile but owned by ${s.owner}:${s.group}: it can only be ready before users are created when owned by root, so that user gets its password at the next activation."
      ) cfg.secrets
    );
  };
}
