# Evaluates every configuration of compat-configs.nix through the upstream module it is
# written for, with the stand-ins of nixos-stubs.nix, and reports compat-facts.nix's facts.
# golden/regenerate.sh runs it on checkouts of Mic92/sops-nix and ryantm/agenix; their code is
# read from there, never kept here.
{
  nixpkgsLib,
  sopsNix,
  agenix,
}:

let
  lib =
    if builtins.pathExists (nixpkgsLib + "/lib/default.nix") then
      import (nixpkgsLib + "/lib")
    else
      import nixpkgsLib;
  pkgs = import ./stub-pkgs.nix { inherit lib; };
  facts = import ./compat-facts.nix { inherit lib; };

  modules = {
    sops = [
      (sopsNix + "/modules/sops")
      # The package is built from sops-nix's own tree, which evaluation does not need.
      { sops.package = pkgs.stub "sops-install-secrets"; }
    ];
    agenix = [ (agenix + "/modules/age.nix") ];
  };

  evaluate =
    c:
    (lib.evalModules {
      modules = [
        ./nixos-stubs.nix
        c.config
        { _module.args.pkgs = pkgs; }
      ]
      ++ modules.${c.tool};
    }).config;

  report =
    c:
    let
      config = evaluate c;
      failed = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
    in
    if failed != [ ] then
      throw "upstream assertions failed:\n${lib.concatStringsSep "\n" failed}"
    else
      {
        inherit (c) tool;
      }
      // (if c.tool == "sops" then facts.upstreamSops config else facts.upstreamAgenix config);
in
lib.mapAttrs (_: report) (import ./compat-configs.nix)
