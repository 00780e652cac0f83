#!/bin/sh
# Prepares the cached test image (run by mmdebstrap with the root directory as $1). Every
# change here changes the image's cache key.
set -eu
root=$1

# Units that only slow a test boot down: device management (the initramfs has already
# found the disk), logins, periodic jobs, first-boot setup and cache updates (every test
# boot would be a first boot, as the disk is thrown away after each run).
for unit in \
	systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
	systemd-udev-trigger.service systemd-udev-settle.service \
	getty.target getty@.service serial-getty@.service console-getty.service \
	apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
	e2scrub_reap.service fstrim.timer systemd-tmpfiles-clean.timer \
	systemd-firstboot.service systemd-machine-id-commit.service systemd-pstore.service \
	systemd-binfmt.service proc-sys-fs-binfmt_misc.automount systemd-repart.service \
	systemd-pcrphase.service systemd-pcrphase-sysinit.service \
	sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount \
	sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount \
	systemd-journal-flush.service systemd-modules-load.service systemd-update-utmp.service \
	systemd-update-utmp-runlevel.service \
	ldconfig.service systemd-journal-catalog-update.service systemd-update-done.service \
	systemd-hwdb-update.service systemd-sysctl.service modprobe@drm.service systemd-remount-fs.service \
	systemd-random-seed.service
do
	ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"

mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$root/etc/systemd/journald.conf.d/vmtest.conf"
echo vmtest >"$root/etc/hostname"

# A service account that owns test secrets, present before boot as users are on NixOS.
chroot "$root" groupadd --gid 1600 svcgrp
chroot "$root" useradd --uid 1500 --gid svcgrp --no-create-home --shell /usr/sbin/nologin svcuser
