#!/usr/bin/env bash
# Baseline for bench/run.sh: the steps agenix's activation script takes, in plain bash with the
# age CLI, so secretd is compared with the usual way of doing this job rather than with nothing.
#
#   agenix-style.sh MOUNT_POINT SECRETS_DIR IDENTITY LIST
#
# LIST has one secret a line: "name encrypted-file owner group mode". Like agenix it takes the
# next generation number from the secretsDir symlink, mounts a ramfs if none is there, then for
# every secret starts `age -d` into a temporary file under a restrictive umask, chmods it and
# moves it into place; then swaps the symlink, removes the previous generations and, in a
# second pass, chowns every secret (agenix does that once users exist). One age process per
# secret, each parsing the host key again, is what the comparison measures.
set -euo pipefail

if [ $# -ne 4 ]; then
	echo "usage: $0 MOUNT_POINT SECRETS_DIR IDENTITY LIST" >&2
	exit 2
fi
mount_point=$1 secrets_dir=$2 identity=$3 list=$4

generation=$(basename "$(readlink "$secrets_dir" 2>/dev/null || echo 0)")
generation=$((generation + 1))

mkdir -p "$mount_point"
chmod 0751 "$mount_point"
if ! grep -q " $mount_point ramfs " /proc/mounts; then
	mount -t ramfs none "$mount_point" -o nodev,nosuid,mode=0751
fi
mkdir -p "$mount_point/$generation"
chmod 0751 "$mount_point/$generation"

while read -r name file owner group mode; do
	path="$mount_point/$generation/$name"
	tmp="$path.tmp"
	mkdir -p "$(dirname "$path")"
	(
		umask u=r,g=,o=
		test -f "$file" || echo "warning: encrypted file $file does not exist" >&2
		LANG=C age --decrypt -i "$identity" -o "$tmp" "$file"
	)
	chmod "$mode" "$tmp"
	mv -f "$tmp" "$path"
done <"$list"

mkdir -p "$(dirname "$secrets_dir")"
ln -sfT "$mount_point/$generation" "$secrets_dir"

for old in "$mount_point"/*; do
	[ -d "$old" ] || continue
	[ "$(basename "$old")" = "$generation" ] && continue
	rm -rf "$old"
done

while read -r name file owner group mode; do
	chown "$owner:$group" "$secrets_dir/$name"
done <"$list"
