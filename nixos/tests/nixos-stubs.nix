# Stand-ins for the NixOS options that module.nix reads or sets, declared with the same types
# and merge behaviour as NixOS where that matters (list-valued unit settings concatenate;
# an activation script must have a text), so that the module can be evaluated with nothing
# but nixpkgs' lib.
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

  listOfUnits = mkOption {
    type = types.listOf types.str;
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
      environment = mkOption {
        type = types.attrsOf types.str;
        default = { };
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

  # NixOS's activation script type: `text` has no default, so setting only `deps` of a script
  # that does not exist fails, as it does on NixOS.
  scriptType = types.submodule {
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
  };
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
    users.mutableUsers = mkOption {
      type = types.bool;
      default = true;
    };
    users.users = mkOption {
      type = types.attrsOf (types.attrsOf types.anything);
      default = { };
    };
    users.groups = mkOption {
      type = types.attrsOf (types.attrsOf types.anything);
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
    system.activationScripts = mkOption {
      type = types.attrsOf scriptType;
      default = { };
    };
  };

  config = {
    # What NixOS itself declares.
    users.users.root = {
      uid = 0;
      group = "root";
    };
    users.groups.root.gid = 0;
    users.groups.users.gid = 100;
    system.activationScripts.specialfs.text = "# mounts /run and the other special file systems";
    system.activationScripts.users =
      lib.mkIf (!config.systemd.sysusers.enable && !config.services.userborn.enable)
        {
          deps = [ "specialfs" ];
          text = "# creates users and groups";
        };
  };
}
