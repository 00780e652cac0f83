// Package nixos holds the NixOS side of secretd: module.nix, which turns secretd.secrets and
// secretd.templates into a version 1 manifest and the units that activate it, package.nix,
// and update-vendor-hash.sh. Its Go tests evaluate module.nix with nixpkgs' module system
// (tests/eval.nix), check the manifests it emits with the manifest package, keep the unit
// files rendered from it in vmtest/golden in step, compare the compatibility modules
// (compat/agenix.nix, compat/sops.nix) with what the upstream agenix and sops-nix modules
// produce for the same configurations (tests/golden/upstream.json), and check flake.nix's
// vendorHash.
package nixos
