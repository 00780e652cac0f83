#!/bin/sh
# The steps of NixOS's activation script that create users, for an agenixCompat
# configuration in which users.users.bob.hashedPasswordFile is age.secrets.bob-password.path
# (/run/agenix/bob-password) and users are created by the `users` snippet (neither
# systemd-sysusers nor userborn). They run in the order the snippets' deps give:
#   secretd-for-users (nixos/module.nix) -> agenixInstall (empty) -> users
# The Debian guest has no NixOS activation script; this emulates it at the same place in the
# boot (before systemd starts the units under test) with the same secretd command.
set -eu
. /var/lib/vmtest/config
manifest=/var/lib/vmtest/manifests/agenix-for-users.json

# secretd-for-users, as nixos/module.nix writes it for a shared directory (agenix's
# /run/agenix holds the password files and all other secrets).
if [ -e /run/agenix ]; then
	: secrets needed for users are already in /run/agenix
else
	echo "activating secrets needed to create users..."
	"$SECRETD" activate --for-users --manifest "$manifest" --no-signal
fi

# users: update-users-groups.pl reads hashedPasswordFile and sets the hash on every
# activation (users.mutableUsers = false).
hash=$(cat /run/agenix/bob-password)
if getent passwd bob >/dev/null; then
	usermod -p "$hash" bob
else
	useradd --no-create-home --shell /bin/sh -p "$hash" bob
fi
# For the runner: what the users step saw.
mkdir -p /run/vmtest
readlink -f /run/agenix >/run/vmtest/agenix-at-users
