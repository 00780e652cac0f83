# The version 1 manifest (see manifest/manifest.go, the contract with the daemon) as the NixOS
# and home-manager modules write it: from their evaluated secrets and templates to a checked
# file in the Nix store.
{ lib }:

rec {
  formats = [
    "binary"
    "yaml"
    "json"
    "dotenv"
    "ini"
  ];

  # The format sops itself gives a file from its name when encrypting it; anything else (such
  # as an agenix `.age` file) is a whole-file secret.
  formatOfFileName =
    file:
    let
      name = baseNameOf (toString file);
    in
    if lib.hasSuffix ".yaml" name || lib.hasSuffix ".yml" name then
      "yaml"
    else if lib.hasSuffix ".json" name then
      "json"
    else if lib.hasSuffix ".env" name then
      "dotenv"
    else if lib.hasSuffix ".ini" name then
      "ini"
    else
      "binary";

  # The token a template's content uses to stand for a secret; the hash keeps it from
  # colliding with text that happens to mention the name.
  placeholderOf = name: "<SECRETD:${builtins.hashString "sha256" name}:${name}>";

  # Owners and modes that are set; a user's secrets have a mode only, they always belong to
  # the user.
  ownershipEntry =
    o:
    lib.filterAttrs (_: v: v != null) {
      owner = o.owner or null;
      group = o.group or null;
      uid = o.uid or null;
      gid = o.gid or null;
      inherit (o) mode;
    };

  consumersEntry =
    restartUnits: reloadUnits:
    lib.optionalAttrs (restartUnits != [ ]) { restartUnits = lib.unique restartUnits; }
    // lib.optionalAttrs (reloadUnits != [ ]) { reloadUnits = lib.unique reloadUnits; };

  # The manifest's `path` is the extra symlink only: it is left out when the output stays where
  # secretd puts it anyway.
  linkEntry =
    path: location: symlink:
    lib.optionalAttrs (path != location) ({ inherit path; } // lib.optionalAttrs (!symlink) { symlink = false; });

  # A system secret's `services` are restarted with its restartUnits.
  secretEntry =
    secretsDir: s:
    {
      inherit (s) name format;
      # Interpolation copies a path from the configuration into the store; a string (a file
      # outside the store) is kept as it is.
      file =
        if s.file == null then
          throw "secretd.secrets.\"${s.name}\": no file (set file or secretd.defaultFile)"
        else
          "${s.file}";
    }
    // lib.optionalAttrs (s.key != "") { inherit (s) key; }
    // ownershipEntry s
    // linkEntry s.path "${secretsDir}/${s.name}" (s.symlink or true)
    // consumersEntry (
      s.restartUnits ++ map (svc: "${lib.removeSuffix ".service" svc}.service") (s.services or [ ])
    ) s.reloadUnits;

  templateEntry =
    secretsDir: t:
    {
      inherit (t) name content;
    }
    // lib.optionalAttrs ((t.file or null) != null) { file = "${t.file}"; }
    // ownershipEntry t
    // linkEntry t.path "${secretsDir}/rendered/${t.name}" true
    // consumersEntry t.restartUnits t.reloadUnits;

  mkManifest =
    {
      secretsDir,
      mountPoint,
      keepGenerations,
      identities,
      gnupgHome ? null,
      secrets,
      templates,
    }:
    let
      # Which placeholders a template file holds is not known without building it: then
      # every secret's is declared.
      used =
        if lib.any (t: (t.file or null) != null) templates then
          secrets
        else
          lib.filter (s: lib.any (t: lib.hasInfix (placeholderOf s.name) t.content) templates) secrets;
      placeholders = lib.listToAttrs (map (s: lib.nameValuePair s.name (placeholderOf s.name)) used);
    in
    {
      version = 1;
      inherit
        secretsDir
        mountPoint
        keepGenerations
        identities
        ;
    }
    // lib.optionalAttrs (gnupgHome != null) { inherit gnupgHome; }
    // {
      secrets = map (secretEntry secretsDir) secrets;
      templates = map (templateEntry secretsDir) templates;
    }
    // lib.optionalAttrs (placeholders != { }) { inherit placeholders; };

  # The manifest as a store file, checked by `check` (a `secretd check` command line, given the
  # manifest after it) so that a mistake fails the build, not the activation.
  manifestFileOf =
    {
      pkgs,
      check,
      name,
      manifest,
    }:
    let
      unchecked = pkgs.writeText name (builtins.toJSON manifest);
    in
    if check == null then
      unchecked
    else
      pkgs.runCommand name
        {
          preferLocalBuild = true;
          allowSubstitutes = false;
        }
        ''
          ${check} ${unchecked}
          cp ${unchecked} "$out"
        '';
}
