# Stand-ins for the NixOS options that secretd's modules (and, for the golden comparison, the
# upstream agenix and sops-nix modules) read or set, declared with the types, defaults and
# assertions of nixpkgs where they matter to secrets (nixos/modules/config/users-groups.nix,
# system/activation/activation-script.nix, system/boot/systemd.nix, system/boot/systemd/sysusers.nix,
# services/system/userborn.nix), so that the modules can be evaluated with nothing but
# nixpkgs' lib.
{ lib, config, ... }:

let
  inherit (lib) mkOption types;

  # NixOS's unitOption: lists from several definitions are concatenated (several secrets may
  # add LoadCredential= to one service), other values must agree.
  unitOption = lib.mkOptionType {
    name = "unitOption";
    merge =
      loc: defs:
      let
        values = map (d: d.value) defs;
      in
      if lib.all lib.isList values then lib.concatLists values else lib.mergeEqualOption loc defs;
  };

  # systemd-lib.nix's unitNameType: dependencies name whole units.
  unitNameType = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";

  listOfUnits = mkOption {
    type = types.listOf unitNameType;
    default = [ ];
  };

  serviceType = types.submodule {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      description = mkOption {
        type = types.str;
        default = "";
      };
      aliases = listOfUnits;
      wantedBy = listOfUnits;
      requiredBy = listOfUnits;
      wants = listOfUnits;
      requires = listOfUnits;
      after = listOfUnits;
      before = listOfUnits;
      conflicts = listOfUnits;
      restartTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      reloadTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      restartIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
      path = mkOption {
        type = types.listOf (types.either types.package types.str);
        default = [ ];
      };
      environment = mkOption {
        type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]));
        default = { };
      };
      script = mkOption {
        type = types.lines;
        default = "";
      };
      unitConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      serviceConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
    };
  };

  # NixOS's activation script type: a string, or `text` (no default: setting only `deps` of a
  # script that does not exist fails, as it does on NixOS) with `deps`.
  scriptType = types.either types.str (
    types.submodule {
      options = {
        deps = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        text = mkOption { type = types.lines; };
        supportsDryActivation = mkOption {
          type = types.bool;
          default = false;
        };
      };
    }
  );

  # users.users.<name>, with the options of users-groups.nix that configurations set next to
  # secrets (an undeclared one is an error, as on NixOS).
  userType = types.submodule (
    { name, config, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
        };
        name = mkOption {
          type = types.str;
          default = name;
        };
        uid = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        group = mkOption {
          type = types.str;
          default = "";
        };
        extraGroups = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        description = mkOption {
          type = types.str;
          default = "";
        };
        isSystemUser = mkOption {
          type = types.bool;
          default = false;
        };
        isNormalUser = mkOption {
          type = types.bool;
          default = false;
        };
        home = mkOption {
          type = types.str;
          default = "/var/empty";
        };
        createHome = mkOption {
          type = types.bool;
          default = false;
        };
        shell = mkOption {
          type = types.nullOr (types.either types.package types.str);
          default = null;
        };
        hashedPassword = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        hashedPasswordFile = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        password = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        initialPassword = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        initialHashedPassword = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        openssh.authorizedKeys.keys = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
      };
      config = lib.mkIf config.isNormalUser {
        group = lib.mkDefault "users";
        home = lib.mkDefault "/home/${name}";
        createHome = lib.mkDefault true;
      };
    }
  );

  groupType = types.submodule (
    { name, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
        };
        gid = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        members = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
      };
    }
  );

  sysusers = config.systemd.sysusers.enable;
  userborn = config.services.userborn.enable;

  scripts = lib.mapAttrs (
    _: s:
    if builtins.isString s then
      {
        deps = [ ];
        text = s;
        supportsDryActivation = false;
      }
    else
      s
  ) config.system.activationScripts;

  # activation-script.nix orders the snippets with lib.textClosureMap, which fails on a
  # dependency that does not exist.
  missingDeps = lib.concatLists (
    lib.mapAttrsToList (n: s: map (d: "${n} -> ${d}") (lib.filter (d: !(scripts ? ${d})) s.deps)) scripts
  );
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    i18n.defaultLocale = mkOption {
      type = types.str;
      default = "en_US.UTF-8";
    };
    users.mutableUsers = mkOption {
      type = types.bool;
      default = true;
    };
    users.allowNoPasswordLogin = mkOption {
      type = types.bool;
      default = false;
    };
    users.users = mkOption {
      type = types.attrsOf userType;
      default = { };
    };
    users.groups = mkOption {
      type = types.attrsOf groupType;
      default = { };
    };
    services.openssh.enable = mkOption {
      type = types.bool;
      default = false;
    };
    services.openssh.hostKeys = mkOption {
      type = types.listOf (types.attrsOf types.anything);
      # NixOS's default.
      default = [
        {
          type = "rsa";
          bits = 4096;
          path = "/etc/ssh/ssh_host_rsa_key";
        }
        {
          type = "ed25519";
          path = "/etc/ssh/ssh_host_ed25519_key";
        }
      ];
    };
    services.userborn.enable = mkOption {
      type = types.bool;
      default = false;
    };
    systemd.sysusers.enable = mkOption {
      type = types.bool;
      default = false;
    };
    systemd.services = mkOption {
      type = types.attrsOf serviceType;
      default = { };
    };
    # networking/systemd-networkd: .netdev sections as unit settings.
    systemd.network.netdevs = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            netdevConfig = mkOption {
              type = types.attrsOf unitOption;
              default = { };
            };
            wireguardConfig = mkOption {
              type = types.attrsOf unitOption;
              default = { };
            };
            wireguardPeers = mkOption {
              type = types.listOf (types.attrsOf unitOption);
              default = [ ];
            };
          };
        }
      );
      default = { };
    };
    system.activationScripts = mkOption {
      type = types.attrsOf scriptType;
      default = { };
    };
    # Built from the snippets with supportsDryActivation by activation-script.nix.
    system.dryActivationScript = mkOption {
      type = types.str;
      internal = true;
    };
    system.build = mkOption {
      type = types.lazyAttrsOf types.unspecified;
      default = { };
    };
  };

  config = {
    # What NixOS itself declares.
    users.users.root = {
      uid = 0;
      group = "root";
      home = "/root";
    };
    users.groups.root.gid = 0;
    users.groups.users.gid = 100;
    users.groups.keys.gid = 96;
    system.activationScripts.specialfs.text = "# mounts /run and the other special file systems";
    # users-groups.nix: the users script is empty when systemd-sysusers or userborn create
    # users, which then forbids giving it deps.
    system.activationScripts.users =
      if !sysusers && !userborn then
        {
          deps = [ "specialfs" ];
          text = "# creates users and groups";
          supportsDryActivation = true;
        }
      else
        "";
    system.activationScripts.groups = lib.stringAfter [ "users" ] "";
    system.dryActivationScript = lib.concatStringsSep "\n" (
      lib.mapAttrsToList (_: s: s.text) (lib.filterAttrs (_: s: s.supportsDryActivation) scripts)
    );

    assertions = [
      {
        assertion = missingDeps == [ ];
        message = "activation scripts depend on snippets that do not exist: ${toString missingDeps}";
      }
      # sysusers.nix
      {
        assertion = !sysusers || config.system.activationScripts.users == "";
        message = "system.activationScripts.users has to be empty to use systemd-sysusers";
      }
      # userborn.nix
      {
        assertion = !(sysusers && userborn);
        message = "You cannot use systemd-sysusers and Userborn at the same time";
      }
      {
        assertion = !userborn || config.system.activationScripts.users == "";
        message = "system.activationScripts.users has to be empty to use userborn";
      }
    ]
    ++ lib.optionals sysusers (
      lib.mapAttrsToList (username: opts: {
        assertion = opts.enable -> !opts.isNormalUser;
        message = "${username} is a normal user. systemd-sysusers doesn't create normal users, only system users.";
      }) config.users.users
    )
    # users-groups.nix
    ++ lib.concatLists (
      lib.mapAttrsToList (_: user: [
        {
          assertion =
            let
              xor = a: b: a && !b || b && !a;
              isEffectivelySystemUser = user.isSystemUser || (user.uid != null && user.uid < 1000);
            in
            xor isEffectivelySystemUser user.isNormalUser;
          message = "Exactly one of users.users.${user.name}.isSystemUser and users.users.${user.name}.isNormalUser must be set.";
        }
        {
          assertion = user.group != "";
          message = "users.users.${user.name}.group is unset.";
        }
      ]) config.users.users
    );
  };
}
