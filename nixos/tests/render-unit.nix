# Renders an evaluated systemd.services.<name> definition into unit file text the way NixOS's
# systemd-lib does (serviceToUnit: attrsToSection, booleans as true/false, list values as one
# line each), with two differences for use outside NixOS: wantedBy and requiredBy become an
# [Install] section instead of .wants/.requires symlinks, and restartTriggers are written
# out instead of through a store file. NixOS's default Environment=PATH is left out: it is
# added by NixOS, not by the module.
{ lib }:

name: def:
let
  toOption =
    x:
    if x == true then
      "true"
    else if x == false then
      "false"
    else
      toString x;

  attrsToSection =
    as:
    lib.concatStrings (
      lib.concatLists (
        lib.mapAttrsToList (
          key: value: map (x: "${key}=${toOption x}\n") (if lib.isList value then value else [ value ])
        ) as
      )
    );

  unitSection =
    lib.optionalAttrs (def.requires != [ ]) { Requires = toString def.requires; }
    // lib.optionalAttrs (def.wants != [ ]) { Wants = toString def.wants; }
    // lib.optionalAttrs (def.after != [ ]) { After = toString def.after; }
    // lib.optionalAttrs (def.before != [ ]) { Before = toString def.before; }
    // lib.optionalAttrs (def.conflicts != [ ]) { Conflicts = toString def.conflicts; }
    // lib.optionalAttrs (def.restartTriggers != [ ]) {
      X-Restart-Triggers = toString def.restartTriggers;
    }
    // lib.optionalAttrs (def.description != "") { Description = def.description; }
    // def.unitConfig;

  environment = lib.concatMapStrings (n: "Environment=${builtins.toJSON "${n}=${def.environment.${n}}"}\n") (
    lib.attrNames def.environment
  );

  install =
    lib.optionalString (def.wantedBy != [ ]) "WantedBy=${lib.concatStringsSep " " def.wantedBy}\n"
    + lib.optionalString (def.requiredBy != [ ]) "RequiredBy=${lib.concatStringsSep " " def.requiredBy}\n";
in
''
  # ${name}.service: rendered from nixos/module.nix by nixos/tests/render-unit.nix; do not edit.
  [Unit]
  ${attrsToSection unitSection}
  [Service]
  ${environment}${attrsToSection def.serviceConfig}''
+ lib.optionalString (install != "") "\n[Install]\n${install}"
