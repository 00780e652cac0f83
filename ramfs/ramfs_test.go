package ramfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/internal/testns"
	"github.com/secretd/secretd/ramfs"
)

func TestMain(m *testing.M) { testns.Main(m) }

func TestEnsureMountedMountsRamfsOnce(t *testing.T) {
	testns.Require(t)
	dir := filepath.Join(t.TempDir(), "secrets.d")
	if err := ramfs.EnsureMounted(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if ok, err := ramfs.IsRamfs(dir); !ok || err != nil {
		t.Fatalf("IsRamfs = %v, %v", ok, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o751 {
		t.Fatalf("mode %o", fi.Mode().Perm())
	}
	// A second call reuses the mount instead of stacking another.
	if err := os.WriteFile(filepath.Join(dir, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ramfs.EnsureMounted(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep")); err != nil {
		t.Fatal("second EnsureMounted hid the first mount:", err)
	}
}

func TestEnsureMountedRefuses(t *testing.T) {
	testns.Require(t)
	base := t.TempDir()

	tmpfs := filepath.Join(base, "tmpfs")
	os.Mkdir(tmpfs, 0o755)
	if err := unix.Mount("tmpfs", tmpfs, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(tmpfs, unix.MNT_DETACH) })
	expectErr(t, ramfs.EnsureMounted(tmpfs), "already holds a tmpfs filesystem")

	busy := filepath.Join(base, "busy")
	os.Mkdir(busy, 0o755)
	os.WriteFile(filepath.Join(busy, "unrelated"), []byte("x"), 0o600)
	expectErr(t, ramfs.EnsureMounted(busy), "holds 1 entries")

	link := filepath.Join(base, "link")
	os.Symlink(busy, link)
	expectErr(t, ramfs.EnsureMounted(link), "is a symlink")

	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	expectErr(t, ramfs.EnsureMounted(file), "not a directory")
}

func expectErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
}

func TestBuilderWritesOwnerModeAndContent(t *testing.T) {
	root := t.TempDir()
	store := ramfs.Store{Root: root}
	b, err := store.Begin(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFile("a/b/c", 65534, 65534, 0o440, []byte("value")); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFile("top", 0, 0, 0o400, nil); err != nil {
		t.Fatal(err)
	}
	if gens, _ := store.Generations(); len(gens) != 0 {
		t.Fatalf("unfinished generation listed: %v", gens)
	}
	// Directories are root's alone until given their final owner and mode.
	if fi, err := os.Lstat(filepath.Join(root, ".building-1", "a")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("unfinished a: %v %v", fi.Mode(), err)
	}
	if err := b.SetDir("a/b", 65534, 65534, 0o550); err != nil {
		t.Fatal(err)
	}
	if err := b.SetDir("nope", 0, 0, 0o500); err == nil {
		t.Fatal("SetDir of a directory never made")
	}
	dir, err := b.Commit()
	if err != nil {
		t.Fatal(err)
	}
	content, info, err := ramfs.ReadFile(dir, "a/b/c")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(content, []byte("value")) || info.UID != 65534 || info.GID != 65534 || info.Mode != 0o440 {
		t.Fatalf("got %+v (content ok: %v)", info, bytes.Equal(content, []byte("value")))
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "a", "b"), &st); err != nil || st.Uid != 65534 || st.Gid != 65534 || st.Mode&0o7777 != 0o550 {
		t.Fatalf("a/b: %d:%d %o %v", st.Uid, st.Gid, st.Mode, err)
	}
	if gens, _ := store.Generations(); len(gens) != 1 || gens[0] != 1 {
		t.Fatalf("generations %v", gens)
	}
}

func TestBuilderRefusesPlantedSymlinks(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	b, err := ramfs.Store{Root: root}.Begin(3)
	if err != nil {
		t.Fatal(err)
	}
	building := filepath.Join(root, ".building-3")
	// A symlink planted where a file or a directory is to be created is not followed.
	os.Symlink(filepath.Join(outside, "victim"), filepath.Join(building, "file"))
	os.Symlink(outside, filepath.Join(building, "dir"))
	if err := b.WriteFile("file", 0, 0, 0o400, []byte("x")); err == nil {
		t.Fatal("wrote through a planted symlink")
	}
	if err := b.WriteFile("dir/inner", 0, 0, 0o400, []byte("x")); err == nil {
		t.Fatal("descended through a planted directory symlink")
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Fatalf("files appeared outside the generation: %v", entries)
	}
	if err := b.Abort(); err != nil {
		t.Fatal(err)
	}
}

func TestReadFileRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "real"), []byte("x"), 0o600)
	os.Symlink("real", filepath.Join(dir, "link"))
	if _, _, err := ramfs.ReadFile(dir, "link"); !errors.Is(err, unix.ELOOP) {
		t.Fatalf("error %v, want ELOOP", err)
	}
}

func TestSwapPruneAndLeftovers(t *testing.T) {
	root := t.TempDir()
	store := ramfs.Store{Root: root}
	link := filepath.Join(t.TempDir(), "secrets")
	for i := 1; i <= 4; i++ {
		b, err := store.Begin(i)
		if err != nil {
			t.Fatal(err)
		}
		dir, err := b.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if err := ramfs.SwapSymlink(link, dir); err != nil {
			t.Fatal(err)
		}
	}
	live, ok, err := store.Live(link)
	if err != nil || !ok || live != 4 {
		t.Fatalf("live %d %v %v", live, ok, err)
	}
	os.Mkdir(filepath.Join(root, ".building-5"), 0o700)
	if next, _ := store.Next(); next != 6 {
		t.Fatalf("next %d, want 6 (past the unfinished one)", next)
	}
	removed, err := store.CleanLeftovers()
	if err != nil || len(removed) != 1 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	pruned, err := store.Prune(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if gens, _ := store.Generations(); len(gens) != 2 || gens[0] != 3 || gens[1] != 4 || len(pruned) != 2 {
		t.Fatalf("after prune: %v (pruned %v)", gens, pruned)
	}
	// The live generation survives even when it is not among the newest.
	if _, err := store.Prune(1, 3); err != nil {
		t.Fatal(err)
	}
	if gens, _ := store.Generations(); len(gens) != 2 {
		t.Fatalf("pruned the live generation: %v", gens)
	}
}

func TestSwapRefusesDirectory(t *testing.T) {
	link := filepath.Join(t.TempDir(), "secrets")
	os.Mkdir(link, 0o755)
	os.WriteFile(filepath.Join(link, "old"), nil, 0o600)
	if err := ramfs.SwapSymlink(link, "/nowhere"); err == nil {
		t.Fatal("replaced a directory")
	}
	if _, err := os.Stat(filepath.Join(link, "old")); err != nil {
		t.Fatal(err)
	}
}

func TestMountinfoEscapes(t *testing.T) {
	testns.Require(t)
	dir := filepath.Join(t.TempDir(), "with space")
	if err := ramfs.EnsureMounted(dir); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	m, err := ramfs.MountAt(dir)
	if err != nil || m == nil || m.FSType != "ramfs" {
		t.Fatalf("MountAt = %+v, %v", m, err)
	}
}

func TestStatTree(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o751)
	os.WriteFile(filepath.Join(dir, "top"), []byte("1"), 0o400)
	os.WriteFile(filepath.Join(dir, "a", "b", "deep"), []byte("22"), 0o440)
	files, err := ramfs.StatTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files["top"].Size != 1 || files["a/b/deep"].Size != 2 || files["a/b/deep"].Mode != 0o440 || !files["top"].Regular {
		t.Fatalf("files %v", files)
	}
	// Anything but files and directories was not written by secretd: refuse, never follow.
	os.Symlink("/etc/hostname", filepath.Join(dir, "a", "planted"))
	if _, err := ramfs.StatTree(dir); err == nil || !strings.Contains(err.Error(), "planted") {
		t.Fatalf("error %v, want one naming the planted symlink", err)
	}
}

func TestTreeReader(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o751)
	os.WriteFile(filepath.Join(dir, "top"), []byte("1"), 0o400)
	os.WriteFile(filepath.Join(dir, "a", "b", "deep"), []byte("22"), 0o440)
	os.WriteFile(filepath.Join(dir, "a", "b", "empty"), nil, 0o400)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "victim"), []byte("outside"), 0o644)
	os.Symlink(filepath.Join(outside, "victim"), filepath.Join(dir, "a", "file-link"))
	os.Symlink(outside, filepath.Join(dir, "dir-link"))

	r := ramfs.NewTreeReader(dir)
	defer r.Close()
	for name, want := range map[string]string{"top": "1", "a/b/deep": "22", "a/b/empty": ""} {
		got, info, err := r.ReadFile(name)
		if err != nil || string(got) != want || info.Size != int64(len(want)) || !info.Regular {
			t.Errorf("%s: %q %+v %v, want %q", name, got, info, err, want)
		}
	}
	for _, name := range []string{"a/file-link", "dir-link/victim", "missing", "a"} {
		if got, _, err := r.ReadFile(name); err == nil || len(got) > 0 {
			t.Errorf("%s: read %d bytes, err %v; want a refusal", name, len(got), err)
		}
	}
}

// A directory large enough to be described by several workers is described whole, and a
// symlink among its files is refused however the files are split.
func TestStatTreeLargeDirectory(t *testing.T) {
	dir := t.TempDir()
	for i := range 1000 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("s%d", i)), make([]byte, i), 0o400)
	}
	files, err := ramfs.StatTree(dir)
	if err != nil || len(files) != 1000 {
		t.Fatalf("%d files, %v", len(files), err)
	}
	for i := range 1000 {
		if f := files[fmt.Sprintf("s%d", i)]; f.Size != int64(i) || !f.Regular || f.Mode != 0o400 {
			t.Fatalf("s%d: %+v", i, f)
		}
	}
	os.Remove(filepath.Join(dir, "s777"))
	os.Symlink("/etc/hostname", filepath.Join(dir, "s777"))
	if _, err := ramfs.StatTree(dir); err == nil || !strings.Contains(err.Error(), "s777") {
		t.Fatalf("error %v, want one naming the symlink", err)
	}
}

// A generation written from several goroutines at once holds every file, as declared.
func TestBuilderConcurrentWrites(t *testing.T) {
	root := t.TempDir()
	b, err := ramfs.Store{Root: root}.Begin(1)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 400)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(errs); i += 4 {
				errs[i] = b.WriteFile(fmt.Sprintf("d%d/s%d", i%5, i), 65534, 65534, 0o440, fmt.Appendf(nil, "value-%d", i))
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
	}
	if len(b.Written) != len(errs) {
		t.Fatalf("%d files recorded, want %d", len(b.Written), len(errs))
	}
	dir, err := b.Commit()
	if err != nil {
		t.Fatal(err)
	}
	for i := range errs {
		name := fmt.Sprintf("d%d/s%d", i%5, i)
		got, info, err := ramfs.ReadFile(dir, name)
		if err != nil || string(got) != fmt.Sprintf("value-%d", i) || info.UID != 65534 || info.Mode != 0o440 || b.Written[name].Ino != info.Ino {
			t.Fatalf("%s: %q %+v %v", name, got, info, err)
		}
	}
}

// TestEnsureMountedHardensAFoundRamfs: a ramfs someone mounted at the mount point before
// secretd (world-writable, without nosuid, nodev, noexec) is made root's 0751 and remounted with
// those flags before it is used; one not owned by root, or holding entries of another user, is
// refused.
func TestEnsureMountedHardensAFoundRamfs(t *testing.T) {
	testns.Require(t)
	base := t.TempDir()
	premount := func(name string) string {
		dir := filepath.Join(base, name)
		os.Mkdir(dir, 0o755)
		if err := unix.Mount("ramfs", dir, "ramfs", 0, "mode=1777"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
		return dir
	}

	open := premount("open")
	if err := ramfs.EnsureMounted(open); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(open, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != ramfs.MountMode || st.Uid != 0 {
		t.Errorf("found ramfs left with mode %04o, uid %d", st.Mode&0o7777, st.Uid)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(open, &fs); err != nil {
		t.Fatal(err)
	}
	if want := int64(unix.ST_NOSUID | unix.ST_NODEV | unix.ST_NOEXEC); fs.Flags&want != want {
		t.Errorf("found ramfs not remounted nosuid,nodev,noexec (flags %#x)", fs.Flags)
	}

	userOwned := premount("user-owned")
	os.Chown(userOwned, 1000, 1000)
	expectErr(t, ramfs.EnsureMounted(userOwned), "owned by uid 1000")

	planted := premount("planted")
	os.Mkdir(filepath.Join(planted, ".building-7"), 0o755)
	os.Chown(filepath.Join(planted, ".building-7"), 1000, 1000)
	expectErr(t, ramfs.EnsureMounted(planted), ".building-7")
}

// A live file swapped for a FIFO (the owner of a nested directory of a generation can do so) is
// refused, never opened waiting for a writer who may never come: that would hang activation.
func TestTreeReaderDoesNotWaitOnAFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "secret")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tid := make(chan int)
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		tid <- unix.Gettid()
		r := ramfs.NewTreeReader(dir)
		defer r.Close()
		_, _, err := r.ReadFile("secret")
		done <- err
	}()
	wchan := fmt.Sprintf("/proc/self/task/%d/wchan", <-tid)
	for {
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("a FIFO was read as a file")
			}
			return
		default:
		}
		// The kernel names where a thread sleeps; this is a FIFO's open waiting for a writer.
		if b, _ := os.ReadFile(wchan); string(b) == "wait_for_partner" {
			if fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
				unix.Close(fd)
			}
			<-done
			t.Fatal("reading the live file blocked opening a FIFO")
		}
		runtime.Gosched()
	}
}
