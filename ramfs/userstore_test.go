package ramfs_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/internal/testns"
	"github.com/secretd/secretd/ramfs"
)

const nobody = 65534

func TestCheckRuntimeDir(t *testing.T) {
	testns.Require(t)
	base := t.TempDir()
	runtime := filepath.Join(base, "run-user")
	os.Mkdir(runtime, 0o700)
	if err := unix.Mount("tmpfs", runtime, "tmpfs", 0, "mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(runtime, unix.MNT_DETACH) })
	if err := os.Chown(runtime, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := ramfs.CheckRuntimeDir(runtime, nobody); err != nil {
		t.Fatalf("a private tmpfs of the user was refused: %v", err)
	}
	expectErr(t, ramfs.CheckRuntimeDir(runtime, 1000), "is owned by uid 65534, not by uid 1000")
	os.Chmod(runtime, 0o755)
	expectErr(t, ramfs.CheckRuntimeDir(runtime, nobody), "has mode 0755; it must be 0700")
	os.Chmod(runtime, 0o700)

	onDisk := filepath.Join(base, "disk")
	os.Mkdir(onDisk, 0o700)
	os.Chown(onDisk, nobody, nobody)
	if ok, _ := statfsInMemory(onDisk); ok {
		t.Skip("the temporary directory is itself in memory; no disk to refuse")
	}
	expectErr(t, ramfs.CheckRuntimeDir(onDisk, nobody), "is not on a tmpfs or ramfs")
	link := filepath.Join(base, "link")
	os.Symlink(runtime, link)
	expectErr(t, ramfs.CheckRuntimeDir(link, nobody), "is not a directory")
}

func TestEnsureUserStore(t *testing.T) {
	testns.Require(t)
	runtime := filepath.Join(t.TempDir(), "run-user")
	os.Mkdir(runtime, 0o700)
	if err := unix.Mount("tmpfs", runtime, "tmpfs", 0, "mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(runtime, unix.MNT_DETACH) })
	store := filepath.Join(runtime, "secretd.d")
	if err := ramfs.EnsureUserStore(store); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(store); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("store: %v, %v; want a directory of mode 0700", fi, err)
	}
	if !ramfs.IsUserStore(store) {
		t.Error("IsUserStore refuses what EnsureUserStore made")
	}
	os.Chmod(store, 0o750)
	expectErr(t, ramfs.EnsureUserStore(store), "others may enter it")
	if ramfs.IsUserStore(store) {
		t.Error("IsUserStore accepts a store open to its group")
	}
}

func statfsInMemory(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, err
	}
	return st.Type == unix.TMPFS_MAGIC, nil
}
