// Package nixos holds the NixOS side of secretd: module.nix, which turns secretd.secrets and
// secretd.templates into a version 1 manifest and the units that activate it, home-manager.nix,
// its counterpart for a user's own secrets, the agenix and sops-nix compatibility modules for
// both (compat/), package.nix, and update-vendor-hash.sh. Its Go tests evaluate the modules
// with nixpkgs' module system (tests/eval.nix, tests/eval-home.nix), check the manifests they
// emit with the manifest package, keep the unit files rendered from them in vmtest/golden in
// step, compare the compatibility modules with what the upstream agenix, sops-nix and
// home-manager modules produce for the same configurations (tests/golden/), and check
// flake.nix's vendorHash.
package nixos
