package activation_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/manifest"
)

// Directories made for nested names belong to whoever the outputs below them belong to:
// app/db/password owned by app is readable by app, and no one else can look into app.
func TestNestedDirectoriesBelongToTheirOutputs(t *testing.T) {
	f := newFixture(t)
	const app, other = 4242, 4343
	m := f.manifest(
		manifest.Secret{Name: "app/db/password", File: f.encrypt("p", []byte("app-db-password")), Ownership: manifest.Ownership{UID: intp(app), GID: intp(0), Mode: "0400"}},
		manifest.Secret{Name: "app/api", File: f.encrypt("a", []byte("app-api")), Ownership: manifest.Ownership{UID: intp(app), GID: intp(0), Mode: "0400"}},
		manifest.Secret{Name: "team/x", File: f.encrypt("x", []byte("team-x")), Ownership: manifest.Ownership{UID: intp(0), GID: intp(other), Mode: "0440"}},
		manifest.Secret{Name: "shared/a", File: f.encrypt("sa", []byte("shared-a")), Ownership: manifest.Ownership{UID: intp(app), GID: intp(0), Mode: "0400"}},
		manifest.Secret{Name: "shared/b", File: f.encrypt("sb", []byte("shared-b")), Ownership: manifest.Ownership{UID: intp(other), GID: intp(0), Mode: "0400"}},
	)
	f.mustActivate(m, activation.Options{})
	for dir, want := range map[string][3]int{
		"app":    {app, 0, 0o500},
		"app/db": {app, 0, 0o500},
		"team":   {0, other, 0o550},
		"shared": {0, 0, 0o501}, // two owners: each gets through by search, no one lists it
	} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(f.secretsDir, dir), &st); err != nil {
			t.Fatal(err)
		}
		if got := [3]int{int(st.Uid), int(st.Gid), int(st.Mode & 0o7777)}; got != want {
			t.Errorf("%s: %d:%d %04o, want %d:%d %04o", dir, got[0], got[1], got[2], want[0], want[1], want[2])
		}
	}

	// What the modes mean, tried as the users themselves.
	// t.TempDir's two directories (/tmp/TestName/001) are private; open them, and only them,
	// to the users tried.
	if filepath.Dir(filepath.Dir(f.dir)) != filepath.Clean(os.TempDir()) {
		t.Fatalf("%s is not t.TempDir's", f.dir)
	}
	for _, p := range []string{f.dir, filepath.Dir(f.dir)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	as := func(uid int, args ...string) error {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: 65534}}
		return cmd.Run()
	}
	password := filepath.Join(f.secretsDir, "app", "db", "password")
	if err := as(app, "cat", password); err != nil {
		t.Errorf("app cannot read its nested secret: %v", err)
	}
	if err := as(other, "cat", password); err == nil {
		t.Error("another user read app's secret")
	}
	if err := as(other, "ls", filepath.Join(f.secretsDir, "app")); err == nil {
		t.Error("another user can look into app's directory")
	}
	if out, err := exec.Command("ls", filepath.Join(f.secretsDir, "app")).Output(); err != nil || !strings.Contains(string(out), "db") {
		t.Errorf("root lists app: %q, %v", out, err)
	}
}
