#!/bin/sh
# Installs what the VM tests need on a Debian 12 host (run as root; safe to rerun: it does
# nothing when everything is present). Used by CI before SECRETD_VMTEST=1 go test ./vmtest/...
set -eu

packages="qemu-system-x86 qemu-utils mmdebstrap busybox-static linux-image-cloud-amd64 e2fsprogs cpio age openssh-client systemd-container"

missing=""
for p in $packages; do
	if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	echo "vmtest dependencies already installed"
	exit 0
fi

echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Another apt run may hold the lock; wait for it instead of failing.
apt_opts="-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3"
# shellcheck disable=SC2086
apt-get $apt_opts update -q
# shellcheck disable=SC2086
apt-get $apt_opts install -y -q --no-install-recommends $missing
