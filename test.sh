#!/usr/bin/env bash
# Runs every test of secretd on a Debian machine, as root: installs what the tests need, then
# unit, integration and CLI tests (`go test ./...`, mounting ramfs only inside private mount
# namespaces), bounded fuzzing of every parser, and the VM suite that boots a real kernel with
# systemd as PID 1. Set SECRETD_SKIP_VMTEST=1 to leave the VM suite out, FUZZTIME to change
# the time given to each fuzz target (default 15s).
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
	echo "test.sh: run as root (the tests mount ramfs in private mount namespaces)" >&2
	exit 1
fi

# What the tests use from Debian: age and ssh-keygen to make fresh interop files, dbus-daemon
# for the D-Bus tests, nix-instantiate to parse and evaluate the NixOS module, and the VM
# suite's kernel, qemu and image builder.
packages="age openssh-client dbus nix-bin util-linux time"
missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
if [ -z "${SECRETD_SKIP_VMTEST:-}" ]; then
	bash vmtest/install-deps.sh
fi

# The real sops CLI makes fresh interop cases (several recipients, unencrypted_suffix, …).
if ! command -v sops >/dev/null; then
	GOBIN=/usr/local/bin go install github.com/getsops/sops/v3/cmd/sops@v3.12.2
fi

test -z "$(gofmt -l . | grep -v '^vendor/' || true)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
go vet ./...
for f in $(git ls-files '*.nix' 2>/dev/null || find . -name '*.nix'); do
	nix-instantiate --parse "$f" >/dev/null
done

go test -count=1 ./...

fuzztime=${FUZZTIME:-15s}
grep -rlE '^func Fuzz' --include='*_test.go' . | sort | while read -r file; do
	for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | cut -c6-); do
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./$(dirname "${file#./}")"
	done
done

if [ -z "${SECRETD_SKIP_VMTEST:-}" ]; then
	SECRETD_VMTEST=1 go test -count=1 -timeout 30m -v ./vmtest/... 2>&1 | grep -vE '^=== (RUN|PAUSE|CONT)'
fi
