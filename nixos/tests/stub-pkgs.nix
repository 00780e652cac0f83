# The part of nixpkgs that the modules evaluated by the tests use, as stand-ins: derivations
# with a fixed out path, and builders that keep their text so facts can be read back.
# secretd is /usr/local (so ExecStart is /usr/local/bin/secretd) and a checked manifest named
# secretd-manifest*.json is /etc/secretd/manifest*.json, as the VM test installs them.
{ lib }:

let
  stub = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  buildPlatform = {
    system = "x86_64-linux";
  };
in
rec {
  inherit lib stub;
  secretd = {
    type = "derivation";
    name = "secretd";
    outPath = "/usr/local";
  };
  age = stub "age";
  rage = stub "rage";
  gnupg = stub "gnupg";
  mount = stub "mount";
  coreutils = stub "coreutils";
  age-plugin-yubikey = stub "age-plugin-yubikey";
  go = stub "go" // {
    version = "1.26.0";
  };
  buildGoModule = args: stub "${args.pname}-${args.version}";
  writeText = name: text: stub name // { inherit text; };
  writeTextFile = { name, text, ... }: writeText name text;
  writeShellScript = name: text: writeText name text;
  runCommand =
    name: env: buildCommand:
    {
      type = "derivation";
      inherit name env buildCommand;
      outPath = "/etc/secretd/${lib.removePrefix "secretd-" name}";
    };
  callPackage =
    fn: args:
    let
      f = if builtins.isFunction fn then fn else import fn;
      auto = builtins.intersectAttrs (builtins.functionArgs f) pkgs;
    in
    f (auto // args);
  pkgs = {
    inherit
      lib
      go
      buildGoModule
      callPackage
      writeText
      writeTextFile
      writeShellScript
      runCommand
      ;
  };
  stdenv = {
    inherit buildPlatform;
    hostPlatform = buildPlatform;
  };
  pkgsBuildHost = pkgs // {
    secretd = secretd // {
      outPath = "/usr/local/build";
    };
  };
}
