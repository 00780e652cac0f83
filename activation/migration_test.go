package activation_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/manifest"
)

// symlink = false (agenix) puts a file of its own at path, with the output's owner and mode,
// replacing what agenix left there; it is rewritten, by rename, only when it differs, and a
// copy that lands on a disk rather than a tmpfs or ramfs is warned about.
func TestCopyAtPath(t *testing.T) {
	f := newFixture(t)
	mem := filepath.Join(f.dir, "mem")
	os.MkdirAll(mem, 0o755)
	if err := unix.Mount("tmpfs", mem, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mem, unix.MNT_DETACH) })
	disk := filepath.Join(f.dir, "etc", "wg.key") // on a disk unless the temporary directory is a tmpfs
	inMemory := filepath.Join(mem, "agenix", "token")
	os.MkdirAll(filepath.Dir(inMemory), 0o755)
	if err := os.WriteFile(inMemory, []byte("left by agenix"), 0o400); err != nil {
		t.Fatal(err)
	}
	no := false
	owner := manifest.Ownership{UID: intp(4242), GID: intp(4343), Mode: "0440"}
	secrets := func(token string) []manifest.Secret {
		return []manifest.Secret{
			{Name: "wg", File: f.encrypt("wg", []byte("wg-private-key")), Ownership: owner, Path: disk, Symlink: &no},
			{Name: "token", File: f.encrypt("token", []byte(token)), Ownership: owner, Path: inMemory, Symlink: &no},
		}
	}
	f.mustActivate(f.manifest(secrets("token-1")...), activation.Options{Log: f.log})
	expect := func(path string, want []byte) uint64 {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != 4242 || st.Gid != 4343 || st.Mode&0o7777 != 0o440 || !bytes.Equal(data, want) {
			t.Errorf("%s: mode %o, %d:%d, %d bytes; want a regular file 4242:4343 0440 with its secret", path, st.Mode, st.Uid, st.Gid, len(data))
		}
		return st.Ino
	}
	diskIno := expect(disk, []byte("wg-private-key"))
	memIno := expect(inMemory, []byte("token-1"))
	warned := func() map[string]bool {
		paths := map[string]bool{}
		for _, e := range f.logs.FilterLevelExact(zapcore.WarnLevel).All() {
			if p, ok := e.ContextMap()["path"].(string); ok {
				paths[p] = true
			}
		}
		return paths
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(f.dir, &fs); err != nil {
		t.Fatal(err)
	}
	onDisk := fs.Type != unix.TMPFS_MAGIC && fs.Type != unix.RAMFS_MAGIC
	if w := warned(); w[disk] != onDisk || w[inMemory] {
		t.Errorf("warnings for %v; want one for the copy on disk only (%s on disk: %v)", w, disk, onDisk)
	}
	// The generation keeps the file too.
	f.expectFile("token", []byte("token-1"), 4242, 4343, 0o440)

	// Unchanged: left alone. Changed: replaced by a new file.
	f.logs.TakeAll()
	f.mustActivate(f.manifest(secrets("token-2")...), activation.Options{Log: f.log})
	if expect(disk, []byte("wg-private-key")) != diskIno {
		t.Error("an unchanged copy was rewritten")
	}
	if expect(inMemory, []byte("token-2")) == memIno {
		t.Error("a changed copy was written in place, not replaced")
	}
	// status checks the copies; a copy that was tampered with is reported, and put back by the
	// next activation even when nothing else changed.
	if st := activation.ReadStatus(f.mountPoint); !st.Healthy {
		t.Errorf("status: %v", st.Problems)
	}
	os.WriteFile(disk, []byte("tampered"), 0o666)
	if st := activation.ReadStatus(f.mountPoint); st.Healthy {
		t.Error("status is healthy with a tampered copy")
	}
	f.mustActivate(f.manifest(secrets("token-2")...), activation.Options{Log: f.log})
	expect(disk, []byte("wg-private-key"))
}

// keepGenerations 0 keeps every generation, as in sops-nix.
func TestKeepEveryGeneration(t *testing.T) {
	f := newFixture(t)
	for i := range 4 {
		m := f.manifest(manifest.Secret{Name: "s", File: f.encrypt("s", []byte{'v', byte('0' + i)})})
		m.KeepGenerations = 0
		f.mustActivate(m, activation.Options{})
	}
	for n := 1; n <= 4; n++ {
		if _, err := os.Stat(filepath.Join(f.mountPoint, strconv.Itoa(n))); err != nil {
			t.Errorf("generation %d: %v", n, err)
		}
	}
}

// sops files encrypted to OpenPGP keys activate with an RSA host key among the identities (as
// sops-nix's sops.gnupg.sshKeyPaths) and with a GnuPG home (sops.gnupg.home).
func TestPGPEncryptedSopsFiles(t *testing.T) {
	f := newFixture(t)
	compat := filepath.Join("..", "sops", "testdata", "compat")
	abs := func(p string) string {
		a, err := filepath.Abs(filepath.Join(compat, p))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	m := f.manifest(manifest.Secret{Name: "db", File: abs("enc/pgp-ssh.yaml"), Format: manifest.FormatYAML, Key: "db/password"})
	m.Identities = []string{abs("keys/ssh_host_rsa_key")}
	f.mustActivate(m, activation.Options{Log: f.log})
	want, _ := os.ReadFile(abs("want/pgp-ssh.yaml.yaml.db_password"))
	f.expectFile("db", want, 0, 0, 0o400)

	if _, err := exec.LookPath("gpg"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gpg is not on PATH")
		}
		t.Skip("gpg is not on PATH (Debian: gnupg)")
	}
	home := filepath.Join(f.dir, "gnupg")
	os.Mkdir(home, 0o700)
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() })
	if out, err := exec.Command("gpg", "--homedir", home, "--batch", "--quiet", "--import", abs("keys/gnupg.asc")).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v: %s", err, out)
	}
	m = f.manifest(manifest.Secret{Name: "db", File: abs("enc/pgp-gnupg.yaml"), Format: manifest.FormatYAML, Key: "db/password"})
	m.Identities = []string{abs("keys/ssh_host_rsa_key")}
	m.GnuPGHome = home
	f.mustActivate(m, activation.Options{Log: f.log})
	want, _ = os.ReadFile(abs("want/pgp-gnupg.yaml.yaml.db_password"))
	f.expectFile("db", want, 0, 0, 0o400)
}
