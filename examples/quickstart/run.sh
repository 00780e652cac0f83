#!/usr/bin/env bash
# Runs secretd's main job on this example, as root, in a private mount namespace on a temp dir:
# a throwaway host key, agenix-style age files, a structured age file and a template go into a
# fresh ramfs generation, then `secretd status` shows what is live. Nothing outside the temp dir
# is touched. Needs Go >= 1.25 and root (for the ramfs mount and chown).
set -euo pipefail
example=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$example/../.." && pwd)
if [ "$(id -u)" != 0 ]; then
	echo "run as root: secretd mounts a ramfs and sets owners" >&2
	exit 1
fi
root=$(mktemp -d /tmp/secretd-quickstart.XXXXXX)
echo "building secretd into $root/bin"
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$root/bin/secretd" ./cmd/secretd)

# A host's key is root-only; git does not keep that mode.
install -D -m 0600 "$example/keys/ssh_host_ed25519_key" "$root/etc/ssh/ssh_host_ed25519_key"
sed -e "s|@ROOT@|$root|g" -e "s|@EXAMPLE@|$example|g" "$example/manifest.json.in" >"$root/manifest.json"

export PATH="$root/bin:$PATH" ROOT="$root"
exec unshare --mount --propagation private bash -euo pipefail -c '
	echo "== secretd check"
	secretd check --manifest "$ROOT/manifest.json"
	echo "== secretd activate --dry-run"
	secretd activate --manifest "$ROOT/manifest.json" --dry-run --no-signal
	echo "== secretd activate"
	secretd activate --manifest "$ROOT/manifest.json" --no-signal
	echo "== secretd status"
	secretd status --mount-point "$ROOT/run/secrets.d"
	echo "== what services see"
	ls -lR "$ROOT/run/secrets/"
	ls -l "$ROOT/home/alice/.config/gh/token"
	echo "== activating the same manifest again changes nothing"
	secretd activate --manifest "$ROOT/manifest.json" --no-signal
	readlink "$ROOT/run/secrets"
'
