package ramfs

import (
	"bytes"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// PlaceFile makes path a regular file holding content with owner uid:gid and mode, replacing
// atomically whatever symlink or file stood there (a directory is refused), as agenix's
// symlink = false does. Missing parent directories are made and only root-owned symlinks are
// followed on the way, as for PlaceSymlink. The new file is written complete, with its final
// owner and mode before any byte, under a temporary name beside path, then renamed over it;
// a file that already holds exactly this is left alone. inMemory reports whether path's file
// system is a tmpfs or ramfs; elsewhere a plaintext copy of the secret is on disk.
func PlaceFile(path string, uid, gid int, mode uint32, content []byte) (changed, inMemory bool, err error) {
	dirfd, _, err := openTrustedDir(filepath.Dir(path), true)
	if err != nil {
		return false, false, fmt.Errorf("%s: %w", path, err)
	}
	defer unix.Close(dirfd)
	var fs unix.Statfs_t
	if err := unix.Fstatfs(dirfd, &fs); err != nil {
		return false, false, fmt.Errorf("%s: %w", path, err)
	}
	inMemory = fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC
	base := filepath.Base(path)
	if same(dirfd, base, uid, gid, mode, content) {
		return false, inMemory, nil
	}
	tmp := tmpLinkPrefix + base
	if err := unix.Unlinkat(dirfd, tmp, 0); err != nil && err != unix.ENOENT {
		return false, inMemory, fmt.Errorf("removing stale %s: %w", tmp, err)
	}
	if err := writeNew(dirfd, tmp, uid, gid, mode, content); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return false, inMemory, fmt.Errorf("%s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		unix.Unlinkat(dirfd, tmp, 0)
		return false, inMemory, fmt.Errorf("%s is a directory; secretd replaces only symlinks and files there", path)
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, base); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return false, inMemory, fmt.Errorf("%s: %w", path, err)
	}
	return true, inMemory, nil
}

// same reports whether name is already a regular file with exactly this owner, mode and content.
func same(dirfd int, name string, uid, gid int, mode uint32, content []byte) bool {
	var st unix.Stat_t
	// Stat before opening: opening a device or FIFO someone put there could block or act.
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG ||
		int(st.Uid) != uid || int(st.Gid) != gid || st.Mode&0o7777 != mode || st.Size != int64(len(content)) {
		return false
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	have, after, err := ReadWhole(fd, name)
	defer clear(have)
	return err == nil && after.Uid == st.Uid && after.Gid == st.Gid && after.Mode == st.Mode && bytes.Equal(have, content)
}

// writeNew creates name with mode 0, gives it its owner and mode, writes content and syncs it,
// so no one but root can open it before it is final and a crash leaves it whole or absent.
func writeNew(dirfd int, name string, uid, gid int, mode uint32, content []byte) error {
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	for len(content) > 0 {
		n, err := unix.Write(fd, content)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		content = content[n:]
	}
	return unix.Fsync(fd)
}
