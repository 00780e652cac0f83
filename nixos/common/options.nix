# The `secretd.*` options that the NixOS and the home-manager module have alike, imported by
# both: their types and defaults, and those of `secretd.secrets.<name>` and
# `secretd.templates.<name>`. Each module declares these options again with its own
# documentation (`description`, `example`, `defaultText`), which the module system merges into
# one option.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    mkOption
    mkPackageOption
    types
    literalExpression
    literalMD
    ;
  inherit (import ../lib/manifest.nix { inherit lib; }) formats formatOfFileName placeholderOf;

  cfg = config.secretd;

  secret =
    { name, config, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          defaultText = literalMD "the attribute name";
        };
        file = mkOption {
          type = types.nullOr types.path;
          default = cfg.defaultFile;
          defaultText = literalExpression "config.secretd.defaultFile";
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
        };
        key = mkOption {
          type = types.str;
          default = if config.format == "binary" then "" else config.name;
          defaultText = literalMD ''the secret's `name` for structured formats, `""` for `binary`'';
        };
      };
    };

  template =
    { name, config, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          defaultText = literalMD "the attribute name";
          description = "Name of the rendered file: it appears as `<secretsDir>/rendered/<name>`.";
        };
        path = mkOption {
          type = types.str;
          default = "${cfg.secretsDir}/rendered/${config.name}";
          defaultText = literalExpression ''"''${config.secretd.secretsDir}/rendered/''${name}"'';
        };
      };
    };
in
{
  options.secretd = {
    package = mkPackageOption pkgs "secretd" { };
    defaultFile = mkOption {
      type = types.nullOr types.path;
      default = null;
    };
    defaultFormat = mkOption {
      type = types.nullOr (types.enum formats);
      default = null;
    };
    checkManifest = mkOption {
      type = types.bool;
      default = true;
    };
    secrets = mkOption {
      type = types.attrsOf (types.submodule secret);
      default = { };
    };
    templates = mkOption {
      type = types.attrsOf (types.submodule template);
      default = { };
    };
    placeholder = mkOption {
      type = types.attrsOf types.str;
      readOnly = true;
    };
    manifest = mkOption {
      type = types.raw;
      readOnly = true;
    };
    manifestFile = mkOption {
      type = types.path;
      readOnly = true;
    };
  };

  config.secretd.placeholder = lib.mapAttrs (_: s: placeholderOf s.name) cfg.secrets;
}
