// Package vmtest proves secretd on a real kernel with systemd as PID 1: its tests boot a
// Debian image under QEMU (and, as a quicker tier, in a systemd-nspawn container) with a
// freshly built secretd, the units rendered from the NixOS module and test consumers, and
// check boot-time activation, early-boot consumers, rotation with restarts and reloads, a switch
// that rereads changed files with an unchanged manifest, failure handling, reboots,
// `secretd status`, secrets needed for users (agenix's password files among them), and the
// units' sandboxing.
//
// The tests run only when SECRETD_VMTEST=1 (as root, with the tools that install-deps.sh
// installs); otherwise they skip. See README.md in this directory.
package vmtest
