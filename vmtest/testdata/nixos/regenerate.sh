#!/bin/sh
# Regenerates the throwaway fixtures of vmtest/nixos-test.nix: a test host key, age files
# encrypted to it (and one to a key whose private half is discarded), and expected.json with
# the SHA-256 of each plaintext. Nothing here protects anything real.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rm -f ssh_host_ed25519_key ssh_host_ed25519_key.pub ./*.age expected.json
ssh-keygen -q -t ed25519 -N "" -C "secretd-vmtest" -f ssh_host_ed25519_key
ssh-keygen -q -t ed25519 -N "" -C "discarded" -f "$tmp/other"

value() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
shadow() {
	salt=$(head -c 12 /dev/urandom | base64 | tr '+' '.' | cut -c1-16)
	rest=$(head -c 66 /dev/urandom | base64 | tr -d '\n' | tr '+' '.' | cut -c1-86)
	printf '$6$%s$%s' "$salt" "$rest"
}

echo "{" >expected.json
sep=""
for label in db-password-1 db-password-2 api-token-1 api-token-2 static-key owned-cert tls-server-key alice-password wg-key-1 wg-key-2 bob-password undecryptable; do
	case $label in
	alice-password | bob-password) shadow >"$tmp/$label" ;;
	*) value >"$tmp/$label" ;;
	esac
	recipient=ssh_host_ed25519_key.pub
	[ $label = undecryptable ] && recipient=$tmp/other.pub
	age -R $recipient -o "$label.age" "$tmp/$label"
	printf '%s  "%s": "%s"' "$sep" "$label" "$(sha256sum <"$tmp/$label" | cut -d' ' -f1)" >>expected.json
	sep=",
"
done
printf '\n}\n' >>expected.json
