# Stand-ins for the home-manager options that home-manager.nix and the home-manager compat
# modules read or set, declared with the types home-manager gives them where that matters:
# user units are free-form sections of settings, `home.activation` is a DAG whose entries are
# `{ data; after; before; }` (what lib.hm.dag.entryAfter returns) or plain strings, and
# `xdg.configHome` defaults to ~/.config.
{ lib, config, ... }:

let
  inherit (lib) mkOption types;

  primitive = types.oneOf [
    types.bool
    types.int
    types.str
    types.path
  ];

  unitType = types.submodule {
    freeformType = types.attrsOf (types.attrsOf (types.either primitive (types.listOf primitive)));
  };

  dagEntry = types.submodule {
    options = {
      data = mkOption { type = types.str; };
      after = mkOption { type = types.listOf types.str; };
      before = mkOption { type = types.listOf types.str; };
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
    home.username = mkOption { type = types.str; };
    home.homeDirectory = mkOption {
      type = types.path;
      apply = toString;
    };
    home.packages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    home.activation = mkOption {
      type = types.attrsOf (types.either types.str dagEntry);
      default = { };
    };
    xdg.configHome = mkOption {
      type = types.path;
      apply = toString;
      default = "${config.home.homeDirectory}/.config";
    };
    systemd.user.services = mkOption {
      type = types.attrsOf unitType;
      default = { };
    };
    systemd.user.systemctlPath = mkOption {
      type = types.str;
      default = "/run/current-system/sw/bin/systemctl";
    };
  };
}
