# The part of sops-nix's `sops.*` options that its NixOS and home-manager modules have alike,
# and how it maps onto `secretd.*`, imported by ../sops.nix and ../sops-home.nix. Where the two
# document or type an option differently, this declares its default and they add the rest;
# the module system merges the declarations into one option.
{ config, lib, ... }:

let
  inherit (lib) mkOption types;

  cfg = config.sops;

  secretType = types.submodule (
    { name, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
        };
        key = mkOption {
          type = types.str;
          default = if cfg.defaultSopsKey != null then cfg.defaultSopsKey else name;
          description = ''Key looked up in the sops file ("" for the whole file; ignored for binary).'';
        };
        path = mkOption {
          type = types.str;
          description = "Where the secret can be read; elsewhere than the default, a symlink.";
        };
        format = mkOption {
          default = cfg.defaultSopsFormat;
          description = "Format of the sops file.";
        };
        sopsFile = mkOption {
          type = types.path;
          default = cfg.defaultSopsFile;
          defaultText = lib.literalExpression "config.sops.defaultSopsFile";
          description = "Sops file the secret is read from.";
        };
      };
    }
  );

  templateType = types.submodule {
    options = {
      path = mkOption { description = "Where the rendered file can be read."; };
      content = mkOption {
        type = types.lines;
        default = "";
        description = "Text of the file, holding `config.sops.placeholder.<secret>` values.";
      };
      file = mkOption {
        type = types.nullOr types.path;
        default = null;
      };
    };
  };
in
{
  options.sops = {
    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
    };
    templates = mkOption {
      type = types.attrsOf templateType;
      default = { };
      description = "Templates, as sops-nix declares them, rendered by secretd.";
    };
    placeholder = mkOption {
      type = types.attrsOf types.str;
      readOnly = true;
      description = "The placeholder of each secret, for template contents.";
    };
    defaultSopsFile = mkOption {
      type = types.path;
      description = "Sops file that secrets come from by default.";
    };
    defaultSopsFormat = mkOption {
      default = "yaml";
      description = "Format of secrets that do not set one.";
    };
    defaultSopsKey = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Key of secrets that do not set one (null: the secret's name).";
    };
    validateSopsFiles = mkOption {
      type = types.bool;
      default = true;
    };
    keepGenerations = mkOption {
      type = types.ints.unsigned;
      default = 1;
    };
    log = mkOption {
      type = types.listOf (
        types.enum [
          "keyImport"
          "secretChanges"
        ]
      );
      default = [
        "keyImport"
        "secretChanges"
      ];
    };
    environment = mkOption {
      type = types.attrsOf (types.either types.str types.path);
      default = { };
    };
    # Paths given as Nix paths are kept as strings, never copied into the store.
    age.keyFile = mkOption {
      type = types.nullOr (types.either types.str types.path);
      default = null;
      description = "An age identity file that decrypts the secrets.";
    };
    age.sshKeyPaths = mkOption {
      type = types.listOf (types.either types.str types.path);
    };
    age.plugins = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    age.generateKey = mkOption {
      type = types.bool;
      default = false;
    };
    gnupg.home = mkOption {
      type = types.nullOr types.str;
      default = null;
    };
  };

  config = lib.mkMerge [
    { sops.placeholder = lib.mapAttrs (n: _: config.secretd.placeholder.${n}) cfg.secrets; }

    (lib.mkIf (cfg.secrets != { } || cfg.templates != { }) {
      secretd = {
        enable = true;
        checkManifest = lib.mkDefault cfg.validateSopsFiles;
        secrets = lib.mapAttrs (_: s: {
          inherit (s) name path format;
          file = s.sopsFile;
        }) cfg.secrets;
        templates = lib.mapAttrs (_: t: { inherit (t) name path; }) cfg.templates;
      };
    })
  ];
}
