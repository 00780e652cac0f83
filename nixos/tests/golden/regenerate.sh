#!/usr/bin/env bash
# Rewrites upstream.json: what the upstream agenix and sops-nix modules produce for each
# configuration of ../compat-configs.nix (see ../compat-facts.nix), from checkouts of
# Mic92/sops-nix and ryantm/agenix. Their code is only read, never copied here.
#
#   nixos/tests/golden/regenerate.sh /path/to/sops-nix /path/to/agenix [/path/to/nixpkgs-lib]
#
# Modes are also passed to the real chmod on a file made as agenix makes it (umask u=r,g=,o=),
# and the resulting bits are recorded as modeOctal.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sops_nix=$(realpath "${1:?path of a sops-nix checkout}")
agenix=$(realpath "${2:?path of an agenix checkout}")
lib=$(realpath "${3:-${NIXPKGS_LIB:-$here/../../../../shared/nixpkgs-lib}}")

raw=$(nix-instantiate --eval --strict --json --readonly-mode "$here/../upstream.nix" \
  --argstr nixpkgsLib "$lib" --argstr sopsNix "$sops_nix" --argstr agenix "$agenix")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
octal='{}'
while IFS= read -r mode; do
  f="$tmp/f"
  rm -f "$f"
  (umask u=r,g=,o= && : >"$f")
  chmod "$mode" "$f"
  octal=$(jq --arg m "$mode" --arg o "$(stat -c %04a "$f")" '. + {($m): $o}' <<<"$octal")
done < <(jq -r '[.. | objects | .mode? // empty] | unique[]' <<<"$raw")

sops_rev=${SOPS_NIX_REV:-$(git -C "$sops_nix" rev-parse HEAD 2>/dev/null || echo unknown)}
agenix_rev=${AGENIX_REV:-$(git -C "$agenix" rev-parse HEAD 2>/dev/null || echo unknown)}
jq --sort-keys --argjson octal "$octal" --arg sops "$sops_rev" --arg agenix "$agenix_rev" '
  { source: { "Mic92/sops-nix": $sops, "ryantm/agenix": $agenix },
    configurations: (walk(if type == "object" and has("mode") then . + {modeOctal: $octal[.mode]} else . end)) }
' <<<"$raw" >"$here/upstream.json"
echo "wrote $here/upstream.json"
