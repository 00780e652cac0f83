package ramfs

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds symlink resolution, as the kernel's ELOOP does.
const maxSymlinks = 40

// openTrustedDir opens dir, following only symlinks owned by root or by the user running
// secretd: a directory another user controls must not redirect where root places a link (a
// user could point ~/.config at /etc), while a user's own secrets may go through their own
// links (~/.config into a dotfiles checkout). Such a symlink is followed only in a directory
// no one else may rename entries in (see checkLinkDir). With create, missing directories are made, owned
// by the caller, mode 0755. Every step is taken from the
// handle of the directory before it (openat with O_NOFOLLOW, mkdirat, fstatat, readlinkat), so
// no path is resolved twice and a symlink planted between two steps is seen, not followed. It
// returns the directory's handle and the path it was found at.
func openTrustedDir(dir string, create bool) (fd int, resolved string, err error) {
	if !filepath.IsAbs(dir) {
		return -1, "", fmt.Errorf("%s is not absolute", dir)
	}
	root, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", err
	}
	// stack holds the handles of the directories walked, the current one last; ".." pops.
	stack := []int{root}
	defer func() {
		for _, fd := range stack {
			unix.Close(fd)
		}
	}()
	pending := strings.Split(strings.TrimPrefix(filepath.Clean(dir), "/"), "/")
	resolved = "/"
	links := 0
	euid := unix.Geteuid()
	for len(pending) > 0 {
		seg := pending[0]
		pending = pending[1:]
		switch seg {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				unix.Close(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
				resolved = filepath.Dir(resolved)
			}
			continue
		}
		cur := stack[len(stack)-1]
		next := filepath.Join(resolved, seg)
		child, err := openDirAt(cur, seg)
		if err == unix.ENOENT && create {
			if err := unix.Mkdirat(cur, seg, 0o755); err != nil && err != unix.EEXIST {
				return -1, "", fmt.Errorf("creating %s: %w", next, err)
			}
			child, err = openDirAt(cur, seg)
		}
		if err == nil {
			stack = append(stack, child)
			resolved = next
			continue
		}
		if err != unix.ELOOP && err != unix.ENOTDIR {
			return -1, "", &pathError{next, err}
		}
		var st unix.Stat_t
		if err := unix.Fstatat(cur, seg, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return -1, "", &pathError{next, err}
		}
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			return -1, "", fmt.Errorf("%s changed while it was being resolved", next)
		case st.Mode&unix.S_IFMT != unix.S_IFLNK:
			return -1, "", fmt.Errorf("%s is not a directory", next)
		case st.Uid != 0 && int(st.Uid) != euid:
			return -1, "", fmt.Errorf("%s is a symlink owned by uid %d; secretd follows only its own and root's symlinks there", next, st.Uid)
		}
		if err := checkLinkDir(cur, euid); err != nil {
			return -1, "", fmt.Errorf("%s is a symlink in a directory %w", next, err)
		}
		if links++; links > maxSymlinks {
			return -1, "", &pathError{dir, unix.ELOOP}
		}
		target, err := readlinkAt(cur, seg, next)
		if err != nil {
			return -1, "", err
		}
		if filepath.IsAbs(target) {
			for _, fd := range stack[1:] {
				unix.Close(fd)
			}
			stack = stack[:1]
			resolved = "/"
		}
		pending = append(strings.Split(strings.Trim(target, "/"), "/"), pending...)
	}
	fd = stack[len(stack)-1]
	stack = stack[:len(stack)-1]
	return fd, resolved, nil
}

// checkLinkDir refuses a directory in which someone other than root and the user running
// secretd may rename entries: its owner, or a group or others allowed to write there without
// the sticky bit, could move any symlink already in it, root's too, to the name on the way.
func checkLinkDir(dirfd, euid int) error {
	var st unix.Stat_t
	if err := unix.Fstat(dirfd, &st); err != nil {
		return err
	}
	if st.Uid != 0 && int(st.Uid) != euid {
		return fmt.Errorf("owned by uid %d, who could have moved it there; secretd follows symlinks only where no one else can", st.Uid)
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Errorf("others may write (mode %04o), so they could have moved it there; secretd follows symlinks only where no one else can", st.Mode&0o7777)
	}
	return nil
}

// openDirAt opens the directory name in dirfd without following a symlink.
func openDirAt(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string { return e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

func readlinkAt(dirfd int, name, path string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", &pathError{path, err}
	}
	return string(buf[:n]), nil
}

// PlaceSymlink points link at target atomically, making missing parent directories. Only
// root-owned symlinks are followed on the way to link's directory, and once there every step
// is relative to that directory's handle. Whatever stood at link is exchanged for the new
// symlink, and put back if it was neither a symlink nor a regular file: secretd replaces a
// symlink, or a copy such as agenix's symlink = false leaves (replacedFile), never a directory.
// Renaming over a name never writes to the file it named, so a hard link a user planted there
// cannot make root write elsewhere.
func PlaceSymlink(link, target string) (replacedFile bool, err error) {
	dirfd, parent, err := openTrustedDir(filepath.Dir(link), true)
	if err != nil {
		return false, fmt.Errorf("%s: %w", link, err)
	}
	defer unix.Close(dirfd)
	base := filepath.Base(link)
	tmp := tmpLinkPrefix + base
	if err := unix.Unlinkat(dirfd, tmp, 0); err != nil && err != unix.ENOENT {
		return false, fmt.Errorf("removing stale %s: %w", tmp, err)
	}
	if err := unix.Symlinkat(target, dirfd, tmp); err != nil {
		return false, fmt.Errorf("%s: %w", link, err)
	}
	err = unix.Renameat2(dirfd, tmp, dirfd, base, unix.RENAME_NOREPLACE)
	if err == nil {
		return false, nil
	}
	if err != unix.EEXIST {
		unix.Unlinkat(dirfd, tmp, 0)
		return false, fmt.Errorf("%s: %w", link, err)
	}
	if err := unix.Renameat2(dirfd, tmp, dirfd, base, unix.RENAME_EXCHANGE); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return false, fmt.Errorf("%s: %w", link, err)
	}
	// What was at link is now at tmp.
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, tmp, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false, fmt.Errorf("%s: %w", link, err)
	}
	if kind := st.Mode & unix.S_IFMT; kind != unix.S_IFLNK && kind != unix.S_IFREG {
		if err := unix.Renameat2(dirfd, tmp, dirfd, base, unix.RENAME_EXCHANGE); err != nil {
			return false, fmt.Errorf("%s: a file appeared there and could not be put back (it is at %s): %w", link, filepath.Join(parent, tmp), err)
		}
		unix.Unlinkat(dirfd, tmp, 0)
		return false, fmt.Errorf("%s is neither a symlink nor a file; secretd replaces only those there", link)
	}
	if err := unix.Unlinkat(dirfd, tmp, 0); err != nil {
		return false, fmt.Errorf("%s: removing what it replaced: %w", link, err)
	}
	return st.Mode&unix.S_IFMT == unix.S_IFREG, nil
}

// RemoveSymlink removes link if it is a symlink whose target ours accepts, following no
// untrusted symlink on the way. A link that is missing or not ours is left alone.
func RemoveSymlink(link string, ours func(target string) bool) error {
	dirfd, _, err := openTrustedDir(filepath.Dir(link), false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	base := filepath.Base(link)
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dirfd, base, buf)
	if err != nil {
		return nil // missing, or not a symlink: not ours
	}
	if !ours(string(buf[:n])) {
		return nil
	}
	return unix.Unlinkat(dirfd, base, 0)
}

// RemoveStaleTmpLink removes the temporary symlink an interrupted swap of link left.
func RemoveStaleTmpLink(link string) error {
	tmpLink := filepath.Join(filepath.Dir(link), tmpLinkPrefix+filepath.Base(link))
	return RemoveSymlink(tmpLink, func(string) bool { return true })
}
