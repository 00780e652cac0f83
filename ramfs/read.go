package ramfs

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// FileInfo is what status and change detection need to know of an output file.
type FileInfo struct {
	UID, GID int
	Mode     uint32
	Size     int64
	Regular  bool
	// Ino and Ctime identify this version of the file: rewriting or chmod/chown changes them.
	Ino   uint64
	Ctime int64
}

// OpenBeneath opens rel inside dir for reading, refusing to follow a symlink at any segment.
func OpenBeneath(dir, rel string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	segs := strings.Split(rel, "/")
	for i, seg := range segs {
		flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i < len(segs)-1 {
			flags |= unix.O_DIRECTORY
		}
		next, err := unix.Openat(fd, seg, flags, 0)
		unix.Close(fd)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: dir + "/" + rel, Err: err}
		}
		fd = next
	}
	return os.NewFile(uintptr(fd), dir+"/"+rel), nil
}

// Stat describes rel inside dir without following symlinks and without opening it: the
// directories on the way are opened as O_PATH handles and rel itself is described by fstatat, so
// describing a FIFO or a device never blocks on it or reads it.
func Stat(dir, rel string) (FileInfo, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return FileInfo{}, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	parent, name := filepath.Split(rel)
	for _, seg := range strings.Split(strings.TrimSuffix(parent, "/"), "/") {
		if seg == "" {
			continue
		}
		next, err := unix.Openat(fd, seg, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return FileInfo{}, &os.PathError{Op: "open", Path: dir + "/" + rel, Err: err}
		}
		fd = next
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return FileInfo{}, &os.PathError{Op: "stat", Path: dir + "/" + rel, Err: err}
	}
	return infoOf(&st), nil
}

func infoOf(st *unix.Stat_t) FileInfo {
	return FileInfo{
		UID: int(st.Uid), GID: int(st.Gid), Mode: st.Mode & 0o7777, Size: st.Size,
		Regular: st.Mode&unix.S_IFMT == unix.S_IFREG,
		Ino:     st.Ino, Ctime: st.Ctim.Nano(),
	}
}

// ReadWhole reads the regular file open as fd to its end and says what fstat said of it; path
// names it in errors. With the open and the close that is four syscalls a file where
// os.ReadFile spends six, which shows when there are thousands: a short read of a regular file
// is its end.
func ReadWhole(fd int, path string) ([]byte, *unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &st, fmt.Errorf("%s is not a regular file", path)
	}
	// One byte more than the size, so that a file that grew since is still read whole.
	buf := make([]byte, max(st.Size+1, 512))
	total := 0
	for {
		n, err := unix.Read(fd, buf[total:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &st, &os.PathError{Op: "read", Path: path, Err: err}
		}
		total += n
		if n == 0 || total < len(buf) {
			return buf[:total], &st, nil
		}
		buf = append(buf, make([]byte, len(buf))...)
	}
}

// ReadFile returns the content and description of the regular file rel inside dir, following no
// symlink.
func ReadFile(dir, rel string) ([]byte, FileInfo, error) {
	r := NewTreeReader(dir)
	defer r.Close()
	return r.ReadFile(rel)
}

// TreeReader reads regular files below one directory, opening each directory on the way once
// and following no symlink: reading back a generation of a thousand files costs four syscalls
// a file.
type TreeReader struct {
	root string
	dirs map[string]int
}

// NewTreeReader reads below root; Close releases the directories it opened.
func NewTreeReader(root string) *TreeReader {
	return &TreeReader{root: root, dirs: map[string]int{}}
}

// ReadFile returns the content and description of the regular file rel.
func (r *TreeReader) ReadFile(rel string) ([]byte, FileInfo, error) {
	path := r.root + "/" + rel
	dirfd, err := r.dir(filepath.Dir(rel))
	if err != nil {
		return nil, FileInfo{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	// O_NONBLOCK: a FIFO put in place of the file (by a user owning a nested directory) must
	// be refused by ReadWhole, not opened waiting for a writer.
	fd, err := unix.Openat(dirfd, filepath.Base(rel), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, FileInfo{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	data, st, err := ReadWhole(fd, path)
	if st == nil {
		return nil, FileInfo{}, err
	}
	return data, infoOf(st), err
}

// dir opens rel, a directory below the root, one segment at a time without following symlinks.
func (r *TreeReader) dir(rel string) (int, error) {
	if fd, ok := r.dirs[rel]; ok {
		return fd, nil
	}
	var fd int
	var err error
	if rel == "." {
		fd, err = unix.Open(r.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		parent, perr := r.dir(filepath.Dir(rel))
		if perr != nil {
			return -1, perr
		}
		fd, err = unix.Openat(parent, filepath.Base(rel), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return -1, err
	}
	r.dirs[rel] = fd
	return fd, nil
}

// Close releases the directories opened.
func (r *TreeReader) Close() {
	for _, fd := range r.dirs {
		unix.Close(fd)
	}
	clear(r.dirs)
}

// StatTree describes every regular file below dir, keyed by its path relative to dir, without
// reading any: a re-activation needs a file's content only where it is copied or compared.
// Each directory is opened once and every entry is looked at relative to it without following
// a symlink; an entry that is neither a regular file nor a directory is an error, since secretd
// writes nothing else.
func StatTree(dir string) (map[string]FileInfo, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	files := map[string]FileInfo{}
	err = statTree(fd, dir, "", files)
	return files, err
}

func statTree(dirfd int, dir, prefix string, files map[string]FileInfo) error {
	d := os.NewFile(uintptr(dirfd), dir)
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return err
	}
	var regular []string
	for _, e := range entries {
		switch {
		case e.IsDir():
			sub, err := unix.Openat(dirfd, e.Name(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return &os.PathError{Op: "open", Path: dir + "/" + e.Name(), Err: err}
			}
			if err := statTree(sub, dir+"/"+e.Name(), prefix+e.Name()+"/", files); err != nil {
				return err
			}
		case e.Type().IsRegular():
			regular = append(regular, e.Name())
		default:
			return fmt.Errorf("%s/%s is neither a regular file nor a directory", dir, e.Name())
		}
	}
	infos, err := statAll(dirfd, dir, regular)
	if err != nil {
		return err
	}
	for i, name := range regular {
		files[prefix+name] = infos[i]
	}
	return nil
}

// statAll describes the regular files names in dirfd, spread over the cores when there are many:
// a generation's directory may hold thousands, and a stat costs microseconds in the kernel.
func statAll(dirfd int, dir string, names []string) ([]FileInfo, error) {
	infos := make([]FileInfo, len(names))
	errs := make([]error, len(names))
	stat := func(i int) {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, names[i], &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			errs[i] = &os.PathError{Op: "stat", Path: dir + "/" + names[i], Err: err}
			return
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			errs[i] = fmt.Errorf("%s/%s is not a regular file", dir, names[i])
			return
		}
		infos[i] = infoOf(&st)
	}
	const perWorker = 256
	workers := min(runtime.NumCPU(), (len(names)+perWorker-1)/perWorker)
	if workers <= 1 {
		for i := range names {
			stat(i)
		}
	} else {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(names); i += workers {
					stat(i)
				}
			})
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return infos, nil
}
