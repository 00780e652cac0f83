// Package vmtest proves secretd on a real kernel with systemd as PID 1: its tests boot a
// Debian image under QEMU (and, as a quicker tier, in a systemd-nspawn container) with a
// freshly built secretd, the units rendered from the NixOS module and test consumers, and
// check boot-time activation, rotation with restarts and reloads, failure handling, reboots,
// `secretd status`, secrets needed for users, and the units' sandboxing.
//
// The tests run only when SECRETD_VMTEST=1 (as root, with the tools that install-deps.sh
// installs); otherwise they skip. See README.md in this directory.
package vmtest
