#!/usr/bin/env bash
# Runs every test of secretd on a Debian machine, as root: installs what the tests need, then
# unit, integration and CLI tests (`go test ./...`, mounting ramfs only inside private mount
# namespaces), bounded fuzzing of every parser, and the VM suite that boots a real kernel with
# systemd as PID 1. Set SECRETD_SKIP_VMTEST=1 to leave the VM suite out, FUZZ_EXECS=N to run
# every fuzz target N times instead of its usual count. Under CI=true a test that lacks a tool
# or a nixpkgs lib fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
	echo "test.sh: run as root (the tests mount ramfs in private mount namespaces)" >&2
	exit 1
fi

# What the tests use from Debian: unshare for private mount namespaces, dbus-daemon for the
# D-Bus tests, nix-instantiate to parse and evaluate the NixOS modules, systemd-analyze to
# verify the rendered units, python3 to parse the NixOS test script, GNU cpio to cross-check
# the initramfs writer, age and ssh-keygen for testdata/interop/make.sh and the VM suite
# (whose kernel, qemu and image builder vmtest/install-deps.sh adds), gpg for sops files opened
# with a GnuPG home.
packages="util-linux dbus nix-bin systemd python3 cpio age openssh-client time gnupg"
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

# The real sops CLI, which the sops tests check secretd against (several recipients,
# unencrypted_suffix, …).
if ! command -v sops >/dev/null; then
	GOBIN=/usr/local/bin go install github.com/getsops/sops/v3/cmd/sops@v3.12.2
fi

test -z "$(gofmt -l . | grep -v '^vendor/' || true)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
go vet ./...
for f in $(git ls-files '*.nix' 2>/dev/null || find . -name '*.nix'); do
	nix-instantiate --parse "$f" >/dev/null
done

go test -count=1 ./...

# Fuzzing: every Fuzz target there is, each for a number of executions, never a duration: Go
# 1.26's coordinator can fail a duration-bounded run at its deadline with no crasher
# (golang/go#75804). Minimising each new input is bounded by a count too; its default, 60s per
# input, spent on the first inputs found ate a whole 15s budget. A crasher fails the run and
# is saved in the package's testdata/fuzz/<target>/. Counts are sized to take ~10-15s each here:
# fuzz_default for every target, fuzz_execs for those much faster or slower than the rest.
fuzz_default=60000
declare -A fuzz_execs=([FuzzDecrypt]=120000 [FuzzDecode]=150000)
for file in $(grep -rlE '^func Fuzz' --include='*_test.go' . | sort); do
	pkg=./$(dirname "${file#./}")
	for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | cut -c6-); do
		execs=${FUZZ_EXECS:-${fuzz_execs[$target]:-$fuzz_default}}
		if ! out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "${execs}x" -fuzzminimizetime 1000x "$pkg" 2>&1); then
			echo "$out"
			exit 1
		fi
		printf 'fuzz %-36s %s\n' "$pkg $target" "$(grep -o 'elapsed: .*' <<<"$out" | tail -n 1)"
	done
done

if [ -z "${SECRETD_SKIP_VMTEST:-}" ]; then
	SECRETD_VMTEST=1 go test -count=1 -timeout 30m -v ./vmtest/... 2>&1 | grep -vE '^=== (RUN|PAUSE|CONT)'
fi
