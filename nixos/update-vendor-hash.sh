#!/usr/bin/env bash
# Rewrites vendorHash in flake.nix for the current go.mod and go.sum: the NAR hash of what
# `go mod vendor` produces, which is what buildGoModule fixes the vendored dependencies to
# (null when there is nothing to vendor). Needs go and nix (Debian: nix-bin).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$root" && go mod vendor -o "$tmp/vendor")

if [ -n "$(ls -A "$tmp/vendor" 2>/dev/null)" ]; then
	hash=\"$(nix hash path --extra-experimental-features nix-command "$tmp/vendor")\"
else
	hash=null
fi

if ! grep -qE 'vendorHash = (null|"[^"]*");' "$root/flake.nix"; then
	echo "update-vendor-hash: no 'vendorHash = ...;' line in flake.nix" >&2
	exit 1
fi
sed -i -E "s|vendorHash = (null\|\"[^\"]*\");|vendorHash = ${hash};|" "$root/flake.nix"
echo "vendorHash = ${hash};"
