// Package ramfs keeps secrets in memory that never reaches swap or disk: it mounts a ramfs,
// lays out numbered generations on it, creates files with their final owner and mode before any
// content through *at calls that never follow a symlink, and swaps symlinks atomically.
package ramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Magic is the statfs filesystem type of a ramfs.
const Magic = 0x858458f6

// MountMode is the mode of the ramfs root: other users may traverse to a file they are allowed
// to read, but not list what is there.
const MountMode = 0o751

// Mount describes a line of /proc/self/mountinfo.
type Mount struct {
	Point  string
	FSType string
}

// MountAt returns the topmost mount whose mount point is exactly dir, if any.
func MountAt(dir string) (*Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var found *Mount
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		m, ok := parseMountinfo(scanner.Text())
		if ok && m.Point == dir {
			found = &m // later lines are mounted on top
		}
	}
	return found, scanner.Err()
}

// parseMountinfo reads "id parent maj:min root mountpoint opts [optional...] - fstype src superopts".
func parseMountinfo(line string) (Mount, bool) {
	fields := strings.Fields(line)
	if len(fields) < 7 {
		return Mount{}, false
	}
	for i := 6; i < len(fields)-1; i++ {
		if fields[i] == "-" {
			return Mount{Point: unescapeOctal(fields[4]), FSType: fields[i+1]}, true
		}
	}
	return Mount{}, false
}

// unescapeOctal undoes the kernel's \NNN escaping of spaces, tabs, newlines and backslashes.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// IsRamfs reports whether dir is the root of a mounted ramfs, by the mount table and by statfs.
func IsRamfs(dir string) (bool, error) {
	m, err := MountAt(dir)
	if err != nil || m == nil || m.FSType != "ramfs" {
		return false, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, err
	}
	return uint32(st.Type) == Magic, nil
}

// EnsureMounted makes dir the root of a ramfs (mode 0751, nodev, nosuid, noexec). An existing
// ramfs there is reused, keeping its generations, once it is made so (see adopt). It refuses a directory that is a symlink,
// holds another filesystem, or holds files of its own, since mounting over them would hide them.
func EnsureMounted(dir string) error {
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, MountMode); err != nil {
			return fmt.Errorf("mount point %s: %w", dir, err)
		}
	case err != nil:
		return fmt.Errorf("mount point %s: %w", dir, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("mount point %s is a symlink; refusing to mount through it", dir)
	case !fi.IsDir():
		return fmt.Errorf("mount point %s exists and is not a directory", dir)
	}
	m, err := MountAt(dir)
	if err != nil {
		return fmt.Errorf("mount point %s: reading the mount table: %w", dir, err)
	}
	if m != nil {
		if m.FSType != "ramfs" {
			return fmt.Errorf("mount point %s already holds a %s filesystem, not a ramfs; unmount it or choose another mountPoint", dir, m.FSType)
		}
		if ok, err := IsRamfs(dir); err != nil || !ok {
			return fmt.Errorf("mount point %s: the mount table says ramfs but statfs disagrees (%v)", dir, err)
		}
		return adopt(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("mount point %s is not a mount and holds %d entries (such as %q); a ramfs mounted there would hide them: move them away", dir, len(entries), entries[0].Name())
	}
	opts := fmt.Sprintf("mode=%04o", MountMode)
	if err := unix.Mount("ramfs", dir, "ramfs", unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mounting a ramfs at %s: %w", dir, err)
	}
	return nil
}

// adopt makes a ramfs found mounted at dir what EnsureMounted would have mounted: root's, mode
// 0751, remounted nodev, nosuid, noexec. It refuses one owned by another user, or holding an
// entry another user owns (which a wider mode let them plant), since such a user could rename
// generations or prepare a ".building-N" directory.
func adopt(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	if st.Uid != 0 {
		return fmt.Errorf("mount point %s is a ramfs owned by uid %d, not root; secretd does not reuse it: unmount it", dir, st.Uid)
	}
	// Close the door before looking at what came in.
	if err := unix.Fchmod(fd, MountMode); err != nil {
		return fmt.Errorf("mount point %s: setting mode %04o: %w", dir, MountMode, err)
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	for _, name := range names {
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("mount point %s: %s: %w", dir, name, err)
		}
		if st.Uid != 0 {
			return fmt.Errorf("mount point %s holds %s, owned by uid %d: the ramfs was writable by others; secretd does not reuse it: unmount it", dir, name, st.Uid)
		}
	}
	const flags = unix.MS_NODEV | unix.MS_NOSUID | unix.MS_NOEXEC
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|flags, ""); err != nil {
		return fmt.Errorf("mount point %s: remounting nodev,nosuid,noexec: %w", dir, err)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	if want := int64(unix.ST_NODEV | unix.ST_NOSUID | unix.ST_NOEXEC); fs.Flags&want != want {
		return fmt.Errorf("mount point %s: still not nodev,nosuid,noexec after a remount", dir)
	}
	return nil
}
