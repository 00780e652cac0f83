#!/usr/bin/env bash
# Installs what bench/run.sh needs, skipping whatever is already there (safe to run again):
#   - Debian packages: age (the baseline's decryptor and the encryptor of the test files),
#     openssh-client (ssh-keygen), util-linux (unshare);
#   - sops v3.12.2, built from source with `go install` into $SECRETD_BENCH_TOOLS/bin
#     (default /var/cache/secretd-bench/bin; a couple of minutes on two cores). It is only used to
#     write the sops test file; set SECRETD_BENCH_NO_SOPS=1 to skip it, and run.sh then skips the
#     sops case.
# Needs root for apt-get. Prints the sops path on its last line when sops is available.
set -euo pipefail

sops_version=v3.12.2
tools=${SECRETD_BENCH_TOOLS:-/var/cache/secretd-bench}

missing=()
command -v age >/dev/null || missing+=(age)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v unshare >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${SECRETD_BENCH_NO_SOPS:-}" = 1 ]; then
	exit 0
fi
sops_bin=$tools/bin/sops
if [ -x "$sops_bin" ] && "$sops_bin" --version --disable-version-check 2>/dev/null | grep -q "${sops_version#v}"; then
	echo "$sops_bin"
	exit 0
fi
echo "building sops $sops_version into $tools/bin (takes a few minutes)" >&2
mkdir -p "$tools/bin"
# Outside the repository, so the build neither reads nor touches secretd's go.mod.
(cd / && GOBIN=$tools/bin GOFLAGS=-mod=mod go install "github.com/getsops/sops/v3/cmd/sops@$sops_version")
echo "$sops_bin"
