# The part of agenix's `age.*` options that its NixOS and home-manager modules have alike, and
# how it maps onto `secretd.*`, imported by ../agenix.nix and ../agenix-home.nix. Where the two
# document an option differently or default it elsewhere, this declares its type and they add
# the rest; the module system merges the declarations into one option.
{ config, lib, ... }:

let
  inherit (lib) mkOption types;

  cfg = config.age;

  secretType = types.submodule (
    { name, config, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          description = "Name of the file under `age.secretsDir`.";
        };
        file = mkOption {
          type = types.path;
          description = "Age file the secret is decrypted from.";
        };
        path = mkOption {
          type = types.str;
          default = "${cfg.secretsDir}/${config.name}";
        };
        mode = mkOption {
          type = types.str;
          default = "0400";
        };
        symlink = mkOption {
          type = types.bool;
          default = true;
        };
      };
    }
  );
in
{
  options.age = {
    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
    };
    secretsDir = mkOption {
      type = types.str;
      description = "Where the secrets appear.";
    };
    secretsMountPoint = mkOption { type = types.str; };
    # Paths given as Nix paths are kept as strings, never copied into the store.
    identityPaths = mkOption {
      type = types.listOf (types.either types.str types.path);
      description = "Keys that decrypt the secrets.";
    };
  };

  config = lib.mkIf (cfg.secrets != { }) {
    secretd = {
      enable = true;
      secretsDir = lib.mkDefault cfg.secretsDir;
      mountPoint = lib.mkDefault cfg.secretsMountPoint;
      identityPaths = lib.mkDefault (map toString cfg.identityPaths);
      secrets = lib.mapAttrs (_: s: {
        inherit (s) name file path;
        format = "binary";
      }) cfg.secrets;
    };
  };
}
