#!/usr/bin/env bash
# Regenerates the sops files under enc/ and what the real sops CLI prints for them under want/,
# from the plaintexts under plain/ and the throwaway age keys under keys/, with the sops binary
# on PATH (v3.12.2). A plaintext is encrypted as the type its name ends with (.json, .env,
# .ini, else yaml). cases lists, per line: the plaintext's file name, the sops type it is
# decrypted as, the key secretd reads ("-" for the whole file) and the `sops --extract` path
# ("-" for the whole file), and "bare" where secretd deliberately leaves out the newline that
# sops' YAML store prints after a number, boolean or null.
# Files under sops-nix/ are not made here: they record what sops-nix's sops-install-secrets
# wrote for the same files (see README.md in this directory).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

recipient() { age-keygen -y "keys/$1.key"; }
a=$(recipient a) b=$(recipient b) c=$(recipient c)

tmp=$(mktemp -d)
trap 'gpgconf --homedir "$tmp/gnupg" --kill gpg-agent 2>/dev/null; rm -rf "$tmp"' EXIT

# OpenPGP recipients: the RSA host key as an OpenPGP key (made by pgpkey, as ssh-to-pgp makes
# it) and the key of a GnuPG home (keys/gnupg.asc, a throwaway secret key).
export GNUPGHOME="$tmp/gnupg"
mkdir -m 0700 "$GNUPGHOME"
(cd ../../.. && go run ./sops/testdata/compat/pgpkey sops/testdata/compat/keys/ssh_host_rsa_key) >"$tmp/rsa.asc"
gpg --batch --quiet --import "$tmp/rsa.asc" keys/gnupg.asc
fingerprint() { gpg --with-colons --list-keys "$1" | awk -F: '$1 == "fpr" { print $10; exit }'; }
rsa=$(fingerprint host@example.invalid) gnupg=$(fingerprint test@example.invalid)
# Key groups split the data key (Shamir): each group holds a share.
cat >"$tmp/.sops.yaml" <<YAML
creation_rules:
  - path_regex: shamir2of2
    key_groups:
      - age: [$a]
      - age: [$b]
  - path_regex: shamir2of3
    key_groups:
      - age: [$a]
      - age: [$b]
      - age: [$c]
  - path_regex: pgp-ssh
    age: $a
    pgp: $rsa
  - path_regex: pgp-gnupg
    age: $a
    pgp: $gnupg
  - age: $a,$b
YAML

export SOPS_AGE_KEY_FILE="$tmp/keys"
cat keys/a.key keys/b.key >"$SOPS_AGE_KEY_FILE"
rm -rf enc want
mkdir -p enc want

for plain in plain/*; do
	name=$(basename "$plain")
	case "$name" in
	*.json) type=json ;;
	*.env) type=dotenv ;;
	*.ini) type=ini ;;
	*) type=yaml ;;
	esac
	shamir=()
	case "$name" in shamir*) shamir=(--shamir-secret-sharing-threshold 2) ;; esac
	cp "$plain" "$tmp/$name"
	(cd "$tmp" && sops --encrypt "${shamir[@]}" --input-type "$type" --output-type "$type" "$name") >"enc/$name"
done

while read -r name type key extract _; do
	case "$name" in "" | "#"*) continue ;; esac
	out="want/$name.$type.$(printf '%s' "$key" | sed 's|/|_|g; s|^-$|whole|')"
	if [ "$extract" = - ]; then
		sops --decrypt --input-type "$type" --output-type "$type" "enc/$name" >"$out"
	else
		sops --decrypt --input-type "$type" --output-type "$type" --extract "$extract" "enc/$name" >"$out"
	fi
done <cases
