# What the options of `secretd.secrets.<name>` and `secretd.templates.<name>` mean in both the
# NixOS and the home-manager module: their types and defaults, as submodules. Each module
# declares the same options again with its own documentation (`description`, `example`,
# `defaultText`), which the module system merges into one option.
{ lib, cfg }:

let
  inherit (lib)
    mkOption
    types
    literalExpression
    literalMD
    ;
  inherit (import ./manifest.nix { inherit lib; }) formats formatOfFileName;
in
{
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
}
