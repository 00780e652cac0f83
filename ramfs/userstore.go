package ramfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// A user cannot mount a ramfs. Their secrets go to their runtime directory instead, the tmpfs
// that systemd-logind makes private to them (/run/user/UID): memory, never a disk, though tmpfs
// pages can reach swap.

// inMemory reports whether the file system holding dir keeps its files in memory only.
func inMemory(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, err
	}
	return st.Type == unix.TMPFS_MAGIC || uint32(st.Type) == Magic, nil
}

// checkPrivateDir requires dir to be a directory (not a symlink) owned by uid, that nobody else
// may enter, on a file system in memory. exactMode, when not zero, is the mode it must have.
func checkPrivateDir(what, dir string, uid int, exactMode fs.FileMode) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	mode := fs.FileMode(st.Mode & 0o7777)
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s %s is not a directory", what, dir)
	case int(st.Uid) != uid:
		return fmt.Errorf("%s %s is owned by uid %d, not by uid %d who runs secretd", what, dir, st.Uid, uid)
	case exactMode != 0 && mode != exactMode:
		return fmt.Errorf("%s %s has mode %04o; it must be %04o", what, dir, mode, exactMode)
	case mode&0o077 != 0:
		return fmt.Errorf("%s %s has mode %04o; others may enter it", what, dir, mode)
	}
	ok, err := inMemory(dir)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	if !ok {
		return fmt.Errorf("%s %s is not on a tmpfs or ramfs; secrets would reach a disk", what, dir)
	}
	return nil
}

// CheckRuntimeDir verifies a user's runtime directory ($XDG_RUNTIME_DIR) as the XDG Base
// Directory specification describes it: owned by the user, mode 0700, and here also on a tmpfs
// or ramfs.
func CheckRuntimeDir(dir string, uid int) error {
	return checkPrivateDir("runtime directory", dir, uid, 0o700)
}

// EnsureUserStore makes dir ready to hold a user's generations, the user's counterpart of
// EnsureMounted: it is created mode 0700 when missing, and must be a directory of the calling
// user, closed to others, on a tmpfs or ramfs.
func EnsureUserStore(dir string) error {
	if err := unix.Mkdir(dir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	return checkPrivateDir("mount point", dir, os.Geteuid(), 0)
}

// IsUserStore reports whether dir is fit to hold the calling user's generations.
func IsUserStore(dir string) bool {
	return checkPrivateDir("mount point", dir, os.Geteuid(), 0) == nil
}

// Ensure makes Root ready to hold generations: EnsureMounted, or EnsureUserStore for a user.
func (s Store) Ensure() error {
	if s.User {
		return EnsureUserStore(s.Root)
	}
	return EnsureMounted(s.Root)
}

// Ready reports whether Root already is what Ensure makes it.
func (s Store) Ready() bool {
	if s.User {
		return IsUserStore(s.Root)
	}
	ok, _ := IsRamfs(s.Root)
	return ok
}
