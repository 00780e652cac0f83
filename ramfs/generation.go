package ramfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// DirMode is the mode of generation directories.
const DirMode = 0o751

// buildingDirMode is the mode of a directory made for nested names until SetDir.
const buildingDirMode = 0o700

// buildingPrefix names a generation still being written; such a directory is never live and is
// removed by the next run if a run dies before it is complete.
const buildingPrefix = ".building-"

// tmpLinkPrefix names a symlink about to be renamed over its final name.
const tmpLinkPrefix = ".secretd-tmp-"

// Store is the set of generations under a mount point.
type Store struct {
	Root string
	// User keeps the generations of the calling user's own secrets in a private directory on
	// their runtime tmpfs instead of a ramfs mounted at Root.
	User bool
}

// Generations lists the complete generations, oldest first.
func (s Store) Generations() ([]int, error) {
	entries, err := os.ReadDir(s.Root)
	if err != nil {
		return nil, err
	}
	var gens []int
	for _, e := range entries {
		if n, ok := generationNumber(e.Name()); ok && e.IsDir() {
			gens = append(gens, n)
		}
	}
	sort.Ints(gens)
	return gens, nil
}

func generationNumber(name string) (int, bool) {
	n, err := strconv.Atoi(name)
	if err != nil || n <= 0 || strconv.Itoa(n) != name {
		return 0, false
	}
	return n, true
}

// Dir is the directory of generation n.
func (s Store) Dir(n int) string { return filepath.Join(s.Root, strconv.Itoa(n)) }

// Live returns the generation that link points at, if it points at one of this store's.
func (s Store) Live(link string) (int, bool, error) {
	target, err := os.Readlink(link)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) && errors.Is(pathErr.Err, unix.EINVAL) {
		return 0, false, nil // not a symlink
	}
	if err != nil {
		return 0, false, err
	}
	if filepath.Dir(target) != s.Root {
		return 0, false, nil
	}
	n, ok := generationNumber(filepath.Base(target))
	return n, ok, nil
}

// Next is the number after every generation present, finished or not.
func (s Store) Next() (int, error) {
	entries, err := os.ReadDir(s.Root)
	if err != nil {
		return 0, err
	}
	next := 1
	for _, e := range entries {
		name := strings.TrimPrefix(e.Name(), buildingPrefix)
		if n, ok := generationNumber(name); ok && n >= next {
			next = n + 1
		}
	}
	return next, nil
}

// CleanLeftovers removes what an interrupted run left: generations never completed and
// temporary symlinks.
func (s Store) CleanLeftovers() ([]string, error) {
	entries, err := os.ReadDir(s.Root)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), buildingPrefix) || strings.HasPrefix(e.Name(), tmpLinkPrefix) {
			p := filepath.Join(s.Root, e.Name())
			if err := os.RemoveAll(p); err != nil {
				return removed, err
			}
			removed = append(removed, p)
		}
	}
	return removed, nil
}

// Prune removes complete generations other than the newest keep and the live one; keep 0
// keeps every generation.
func (s Store) Prune(keep, live int) ([]int, error) {
	if keep == 0 {
		return nil, nil
	}
	gens, err := s.Generations()
	if err != nil {
		return nil, err
	}
	var pruned []int
	for i, n := range gens {
		newest := i >= len(gens)-keep
		if newest || n == live {
			continue
		}
		if err := os.RemoveAll(s.Dir(n)); err != nil {
			return pruned, fmt.Errorf("pruning generation %d: %w", n, err)
		}
		pruned = append(pruned, n)
	}
	return pruned, nil
}

// Builder writes one new generation. Nothing it writes is visible under the final generation
// name until Commit.
type Builder struct {
	store Store
	n     int
	tmp   string
	root  int
	// mu guards dirs and Written: files may be written from several goroutines.
	mu   sync.Mutex
	dirs map[string]int
	// uid and gid own a file as created: the process's, in directories without the setgid bit.
	uid, gid int
	umask    int
	// Written describes every file written, as it was once complete. Read it only once the
	// writes are done.
	Written map[string]FileInfo
}

// Begin starts generation n in a temporary directory.
func (s Store) Begin(n int) (*Builder, error) {
	tmp := filepath.Join(s.Root, buildingPrefix+strconv.Itoa(n))
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	if err := unix.Mkdir(tmp, DirMode); err != nil {
		return nil, fmt.Errorf("creating generation %d: %w", n, err)
	}
	// Mkdir is subject to the umask; the mode must be exact.
	if err := unix.Chmod(tmp, DirMode); err != nil {
		return nil, err
	}
	fd, err := unix.Open(tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening generation %d: %w", n, err)
	}
	return &Builder{store: s, n: n, tmp: tmp, root: fd, dirs: map[string]int{".": fd}, uid: unix.Geteuid(), gid: unix.Getegid(), umask: processUmask(), Written: map[string]FileInfo{}}, nil
}

// Generation is the number being built.
func (b *Builder) Generation() int { return b.n }

// WriteFile creates name (a relative path of plain segments) with its final owner, group and
// mode, and only then writes content. Intermediate directories are created as root, mode 0751.
// No symlink is followed at any step.
//
// A file that needs another owner than the kernel gives it is created with mode 0, chowned,
// then chmodded: no one but root can open it before its owner is final, and so keep it open to
// read what is written later. A file the kernel already gives its final owner is created with
// its final mode when the umask leaves that whole, saving two syscalls a file, which shows on a
// host with a thousand secrets. The fstat taken after writing checks the result either way.
//
// WriteFile may be called from several goroutines at once.
func (b *Builder) WriteFile(name string, uid, gid int, mode uint32, content []byte) error {
	b.mu.Lock()
	dirfd, err := b.dir(filepath.Dir(name))
	b.mu.Unlock()
	if err != nil {
		return err
	}
	base := filepath.Base(name)
	chown := uid != b.uid || gid != b.gid
	exact := !chown && b.umask >= 0 && mode&^0o777 == 0 && mode&uint32(b.umask) == 0
	createMode := uint32(0)
	if exact {
		createMode = mode
	}
	fd, err := unix.Openat(dirfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, createMode)
	if err != nil {
		return fmt.Errorf("creating %s: %w", name, err)
	}
	defer unix.Close(fd)
	if chown {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("chown %s to %d:%d: %w", name, uid, gid, err)
		}
	}
	if !exact {
		if err := unix.Fchmod(fd, mode); err != nil {
			return fmt.Errorf("chmod %s: %w", name, err)
		}
	}
	for len(content) > 0 {
		n, err := unix.Write(fd, content)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		content = content[n:]
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", name, err)
	}
	if int(st.Uid) != uid || int(st.Gid) != gid || st.Mode&0o7777 != mode {
		return fmt.Errorf("%s was written as %d:%d %04o, not %d:%d %04o", name, st.Uid, st.Gid, st.Mode&0o7777, uid, gid, mode)
	}
	b.mu.Lock()
	b.Written[name] = infoOf(&st)
	b.mu.Unlock()
	return nil
}

// processUmask reads the umask without changing it, which unix.Umask cannot do without a
// window where another thread would create files under a wrong one. -1 means unknown.
func processUmask() int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return int(n)
			}
		}
	}
	return -1
}

// dir opens (creating as needed) the directory rel inside the generation.
func (b *Builder) dir(rel string) (int, error) {
	if fd, ok := b.dirs[rel]; ok {
		return fd, nil
	}
	parent, err := b.dir(filepath.Dir(rel))
	if err != nil {
		return -1, err
	}
	base := filepath.Base(rel)
	if err := unix.Mkdirat(parent, base, buildingDirMode); err != nil && err != unix.EEXIST {
		return -1, fmt.Errorf("creating directory %s: %w", rel, err)
	}
	fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening directory %s: %w", rel, err)
	}
	if err := unix.Fchmod(fd, buildingDirMode); err != nil {
		unix.Close(fd)
		return -1, err
	}
	b.dirs[rel] = fd
	return fd, nil
}

func (b *Builder) closeDirs() {
	for _, fd := range b.dirs {
		unix.Close(fd)
	}
	b.dirs = nil
}

// SetDir gives the directory rel of the generation, made by WriteFile, its final owner, group
// and mode. Call it once the files below it are written.
func (b *Builder) SetDir(rel string, uid, gid int, mode uint32) error {
	b.mu.Lock()
	fd, ok := b.dirs[rel]
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("directory %s was not made", rel)
	}
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("chown directory %s to %d:%d: %w", rel, uid, gid, err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod directory %s: %w", rel, err)
	}
	return nil
}

// Commit gives the generation its final name and returns its directory.
func (b *Builder) Commit() (string, error) {
	b.closeDirs()
	final := b.store.Dir(b.n)
	if err := unix.Rename(b.tmp, final); err != nil {
		return "", fmt.Errorf("completing generation %d: %w", b.n, err)
	}
	return final, nil
}

// Abort removes the unfinished generation.
func (b *Builder) Abort() error {
	b.closeDirs()
	return os.RemoveAll(b.tmp)
}

// SwapSymlink points link at target atomically: a symlink made under a temporary name in the
// same directory is renamed over link, so a reader sees the old target or the new, never
// neither. A directory at link is refused; the caller decides what a real directory means.
func SwapSymlink(link, target string) error {
	dir, base := filepath.Split(link)
	tmp := filepath.Join(dir, tmpLinkPrefix+base)
	if err := unix.Unlink(tmp); err != nil && err != unix.ENOENT {
		return fmt.Errorf("removing stale %s: %w", tmp, err)
	}
	if err := unix.Symlink(target, tmp); err != nil {
		return fmt.Errorf("symlink %s: %w", tmp, err)
	}
	if err := unix.Rename(tmp, link); err != nil {
		unix.Unlink(tmp)
		return fmt.Errorf("replacing %s: %w", link, err)
	}
	return nil
}
