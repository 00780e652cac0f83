#!/usr/bin/env bash
# Regenerates the interop corpus in this directory with the real tools: age and age-keygen
# (Debian's age package), the sops CLI (v3.12.2: go install
# github.com/getsops/sops/v3/cmd/sops@v3.12.2), ssh-keygen, and bench/cmd/recipient for the
# age1… recipient ssh-to-age derives from the ed25519 host key. The keys are made only when
# keys/ is absent: regenerating the files keeps them, so data encrypted to them elsewhere
# (bench/testdata) stays valid. Run from anywhere; then commit the result.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
for tool in age age-keygen sops ssh-keygen perl go; do
	command -v "$tool" >/dev/null || { echo "make.sh: $tool not found" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$repo" && go build -o "$tmp/recipient" ./bench/cmd/recipient)
# No user configuration (.sops.yaml, keys in $HOME) may reach the tools.
export HOME=$tmp
unset SOPS_AGE_KEY SOPS_AGE_KEY_FILE SOPS_AGE_RECIPIENTS SOPS_AGE_SSH_PRIVATE_KEY_FILE
cd "$here"

keys=$here/keys
if [ ! -d "$keys" ]; then
	mkdir "$keys"
	ssh-keygen -q -t ed25519 -N '' -C secretd-interop -f "$keys/ssh_host_ed25519_key"
	ssh-keygen -q -t rsa -b 3072 -N '' -C secretd-interop -f "$keys/ssh_host_rsa_key"
	age-keygen -o "$keys/age.key" 2>/dev/null
	"$tmp/recipient" "$keys/ssh_host_ed25519_key" >"$keys/ssh_host_ed25519_key.age-recipient"
fi
host_recipient=$(tr -d '[:space:]' <"$keys/ssh_host_ed25519_key.age-recipient")
[ "$host_recipient" = "$("$tmp/recipient" "$keys/ssh_host_ed25519_key")" ]
native_recipient=$(age-keygen -y "$keys/age.key")

rm -rf enc expected expected.sha256
mkdir -p enc expected/many "$tmp/plain"

# agenix-style files: the plaintext is written straight to expected/, then encrypted.
token() { printf '%s%s' "$1" "$(head -c 30 /dev/urandom | base64 | tr -d '+/=' | cut -c1-"$2")"; }
token ghp_ 36 >expected/token
printf 'line one\nline two with \xc3\xbcmlaut\n\ttabbed\n' >expected/multiline
head -c 4096 /dev/urandom >expected/binary
: >expected/empty
token multi- 14 >expected/multi
token agekey- 16 >expected/native-identity
age -R "$keys/ssh_host_ed25519_key.pub" -o enc/token.age expected/token
age -a -R "$keys/ssh_host_ed25519_key.pub" -o enc/multiline.armored.age expected/multiline
age -R "$keys/ssh_host_rsa_key.pub" -o enc/binary.rsa.age expected/binary
age -R "$keys/ssh_host_ed25519_key.pub" -o enc/empty.age expected/empty
age-keygen -o "$tmp/other.key" 2>/dev/null
age -R "$keys/ssh_host_ed25519_key.pub" -r "$native_recipient" -r "$(age-keygen -y "$tmp/other.key")" \
	-o enc/multi-recipient.age expected/multi
age -r "$native_recipient" -o enc/native-identity.age expected/native-identity
ssh-keygen -q -t ed25519 -N '' -C other-host -f "$tmp/other_ed25519"
age -R "$tmp/other_ed25519.pub" -o enc/wrong-recipient.age expected/token

# sops files, to the ssh-to-age recipient of the host key.
password=$(token pw- 30)
cat >"$tmp/plain/secrets.yaml" <<YAML
github:
    oauth_token: $(token ghp_ 30)
gitlab:
    oauth_token: glpat-$password
tailscale:
    authkey: $(token tskey-auth- 30)
guest_accounts.json: |
    [
      {"id": "some-id", "token": "some-token"}
    ]
npmrc: |
    //registry.example.org/:_authToken=$(token npm_ 30)
number: 42
flag: true
YAML
cat >"$tmp/plain/secrets.json" <<JSON
{
	"db": {
		"password": "$password",
		"user": "app"
	},
	"api_key": "$(token k- 30)"
}
JSON
printf 'DB_PASSWORD=%s\nAPI_KEY=%s\n' "$password" "$(token k- 30)" >"$tmp/plain/app.env"
printf '[database]\npassword = %s\n' "$password" >"$tmp/plain/app.ini"
head -c 512 /dev/urandom >"$tmp/plain/blob"
for ((i = 1; i <= 300; i++)); do
	printf 'k%d: %s\n' "$i" "$(token "v$i-" 12)"
done >"$tmp/plain/many.yaml"

encrypt() { # input-type output-type plaintext encrypted
	(cd "$tmp" && SOPS_AGE_RECIPIENTS=$host_recipient sops encrypt --input-type "$1" --output-type "$2" "$3") >"$4"
}
encrypt yaml yaml "$tmp/plain/secrets.yaml" enc/secrets.sops.yaml
encrypt json json "$tmp/plain/secrets.json" enc/secrets.sops.json
encrypt dotenv dotenv "$tmp/plain/app.env" enc/app.sops.env
encrypt ini ini "$tmp/plain/app.ini" enc/app.sops.ini
encrypt binary json "$tmp/plain/blob" enc/blob.sops.json
encrypt yaml yaml "$tmp/plain/many.yaml" enc/many.sops.yaml
# Tampered copies: an edited lastmodified breaks the MAC; two values swapped between keys fail
# authentication, since sops binds each value to its key path.
perl -pe 's/"lastmodified": "[^"]*"/"lastmodified": "2020-01-01T00:00:00Z"/' enc/secrets.sops.json >enc/tampered-mac.sops.json
perl -0pe 's/("user": )("ENC\[[^"]*\]")(.*?"api_key": )("ENC\[[^"]*\]")/$1$4$3$2/s' enc/secrets.sops.json >enc/tampered-swap.sops.json
cmp -s enc/secrets.sops.json enc/tampered-mac.sops.json && { echo "make.sh: lastmodified not edited" >&2; exit 1; }
cmp -s enc/secrets.sops.json enc/tampered-swap.sops.json && { echo "make.sh: values not swapped" >&2; exit 1; }

# The expected plaintext of a sops file is what sops itself decrypts it to, with the age
# identity of the host key (what `ssh-to-age -private-key` prints, and sops-nix uses).
"$tmp/recipient" -identity "$keys/ssh_host_ed25519_key" >"$tmp/host.agekey"
export SOPS_AGE_KEY_FILE=$tmp/host.agekey
extract() { # file path expected-name
	(cd "$tmp" && sops decrypt --extract "$2" "$here/enc/$1") >"expected/$3"
}
extract secrets.sops.yaml '["github"]["oauth_token"]' yaml.github.oauth_token
extract secrets.sops.yaml '["gitlab"]["oauth_token"]' yaml.gitlab.oauth_token
extract secrets.sops.yaml '["tailscale"]["authkey"]' yaml.tailscale.authkey
extract secrets.sops.yaml '["guest_accounts.json"]' yaml.guest_accounts.json
extract secrets.sops.yaml '["npmrc"]' yaml.npmrc
extract secrets.sops.yaml '["number"]' yaml.number
extract secrets.sops.yaml '["flag"]' yaml.flag
# sops ends a non-string scalar with a newline; its text alone is what secretd writes.
perl -pi -e 'chomp if eof' expected/yaml.number expected/yaml.flag
extract secrets.sops.json '["api_key"]' json.api_key
extract secrets.sops.json '["db"]["password"]' json.db.password
extract app.sops.env '["DB_PASSWORD"]' dotenv.DB_PASSWORD
(cd "$tmp" && sops decrypt "$here/enc/app.sops.ini") >expected/ini.whole
(cd "$tmp" && sops decrypt --output-type binary "$here/enc/blob.sops.json") >expected/sops-binary.blob
(cd "$tmp" && sops decrypt "$here/enc/many.sops.yaml") >"$tmp/many.decrypted"
cmp "$tmp/plain/many.yaml" "$tmp/many.decrypted"
while IFS=': ' read -r key value; do
	printf '%s' "$value" >"expected/many/$key"
done <"$tmp/plain/many.yaml"
for f in tampered-mac tampered-swap; do
	if (cd "$tmp" && sops decrypt "$here/enc/$f.sops.json") >/dev/null 2>&1; then
		echo "make.sh: sops decrypts enc/$f.sops.json" >&2
		exit 1
	fi
done

# The age files decrypt with age itself to what was encrypted.
for pair in token:ssh_host_ed25519_key multiline.armored:ssh_host_ed25519_key binary.rsa:ssh_host_rsa_key \
	empty:ssh_host_ed25519_key multi-recipient:age.key native-identity:age.key; do
	file=${pair%%:*} key=${pair#*:}
	want=expected/${file%%.*}
	[ "$file" = multi-recipient ] && want=expected/multi
	age -d -i "$keys/$key" enc/$file.age | cmp - "$want"
done
if age -d -i "$keys/ssh_host_ed25519_key" enc/wrong-recipient.age >/dev/null 2>&1; then
	echo "make.sh: enc/wrong-recipient.age decrypts with the host key" >&2
	exit 1
fi

(cd expected && find . -type f | LC_ALL=C sort | xargs sha256sum) >expected.sha256
echo "make.sh: corpus written to $here" >&2
