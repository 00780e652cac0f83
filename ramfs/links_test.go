package ramfs_test

import (
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/internal/testns"
	"github.com/secretd/secretd/ramfs"
)

// asUser runs fn on an OS thread whose filesystem uid and gid are uid's, so what fn creates is
// the user's and what it may touch is what the user may touch. The thread is discarded after.
func asUser(uid int, fn func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		unix.Setfsgid(uid)
		unix.Setfsuid(uid)
		fn()
	}()
	wg.Wait()
}

// TestPlaceSymlinkRacingASymlinkFlipper: a user who owns a directory on the way to a `path`
// keeps swapping the directory root creates there for a symlink of theirs to a directory they
// cannot write. Root must never create anything in that directory.
func TestPlaceSymlinkRacingASymlinkFlipper(t *testing.T) {
	testns.Require(t)
	const uid = 64123
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir's parent is 0700: let the user through
	os.Chmod(dir, 0o755)
	home := filepath.Join(dir, "home")
	protected := filepath.Join(dir, "protected")
	for _, d := range []string{home, protected} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(home, uid, uid); err != nil {
		t.Fatal(err)
	}
	step := filepath.Join(home, "a")
	link := filepath.Join(step, "b", "secret")

	stop := make(chan struct{})
	flipped := make(chan int)
	go asUser(uid, func() {
		n := 0
		for {
			select {
			case <-stop:
				flipped <- n
				return
			default:
			}
			// A symlink to the protected directory appears at ~/a and goes again (taking
			// root's fresh directory with it while it is empty).
			if unix.Symlink(protected, step) == nil {
				n++
			}
			unix.Unlink(step)
			unix.Rmdir(step)
		}
	})

	const tries = 5000
	escaped, placed := 0, 0
	for range tries {
		if fi, err := os.Lstat(step); err == nil && fi.IsDir() {
			os.RemoveAll(step) // the previous try's, which the user cannot empty
		}
		if _, err := ramfs.PlaceSymlink(link, "/run/secrets/x"); err == nil {
			placed++
		}
		if entries, _ := os.ReadDir(protected); len(entries) > 0 {
			escaped++
			for _, e := range entries {
				os.RemoveAll(filepath.Join(protected, e.Name()))
			}
		}
	}
	close(stop)
	n := <-flipped
	t.Logf("%d tries, %d links placed, %d symlinks planted", tries, placed, n)
	if escaped > 0 {
		t.Fatalf("root created entries in a directory the user cannot write %d times in %d tries", escaped, tries)
	}
	if n == 0 {
		t.Fatal("the flipper never planted a symlink, so the test proves nothing")
	}
}

// A root-owned symlink is followed only where no other user could have put it: the owner of a
// directory can rename into place any symlink already in it, root's too, and so aim root's
// copy or symlink at a directory they cannot write.
func TestRootSymlinkInUserDirectoryNotFollowed(t *testing.T) {
	const uid = 64123
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	protected := filepath.Join(dir, "protected")
	for _, d := range []string{home, protected} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(home, uid, uid); err != nil {
		t.Fatal(err)
	}
	// Root's symlink, which the user renamed to the name on the way to path.
	if err := os.Symlink(protected, filepath.Join(home, "cfg")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ramfs.PlaceFile(filepath.Join(home, "cfg", "secret"), 0, 0, 0o400, []byte("value")); err == nil {
		t.Error("PlaceFile followed a symlink in a directory another user owns")
	}
	if _, err := ramfs.PlaceSymlink(filepath.Join(home, "cfg", "secret"), "/run/secrets/x"); err == nil {
		t.Error("PlaceSymlink followed a symlink in a directory another user owns")
	}
	if entries, _ := os.ReadDir(protected); len(entries) > 0 {
		t.Fatalf("root wrote %d entries into a directory the user cannot write", len(entries))
	}

	// The same symlink in a directory only root may change is followed.
	trusted := filepath.Join(dir, "etc")
	os.Mkdir(trusted, 0o755)
	if err := os.Symlink(protected, filepath.Join(trusted, "cfg")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ramfs.PlaceFile(filepath.Join(trusted, "cfg", "secret"), 0, 0, 0o400, []byte("value")); err != nil {
		t.Fatal(err)
	}
}
