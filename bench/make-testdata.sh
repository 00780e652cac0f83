#!/usr/bin/env bash
# Writes bench/testdata/k1000.sops.yaml, the input of BenchmarkSops1000Keys in activation/: one
# sops YAML file whose keys k1…k1000 hold "value-NNNN-of-a-thousand-keys", encrypted by the sops
# CLI to the ssh-to-age recipient of the interop corpus' throwaway host key (testdata/interop).
# Run it again only to regenerate the file (needs sops on PATH, see install-deps.sh).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
corpus=$repo/testdata/interop
export PATH=$PATH:${SECRETD_BENCH_TOOLS:-/var/cache/secretd-bench}/bin
recipient=$(tr -d '[:space:]' <"$corpus/keys/ssh_host_ed25519_key.age-recipient")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((i = 1; i <= 1000; i++)); do
	printf 'k%d: value-%04d-of-a-thousand-keys\n' "$i" "$i"
done >"$tmp/k1000.yaml"
mkdir -p "$repo/bench/testdata"
(cd "$tmp" && SOPS_AGE_RECIPIENTS=$recipient sops encrypt --input-type yaml --output-type yaml k1000.yaml) \
	>"$repo/bench/testdata/k1000.sops.yaml"
echo "wrote $repo/bench/testdata/k1000.sops.yaml" >&2
