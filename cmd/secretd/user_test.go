package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/internal/testns"
	"github.com/secretd/secretd/ramfs"
	"github.com/secretd/secretd/units/fakesystemd"
)

// nobody is a user every Linux host has; the user-mode tests run secretd as it.
const nobody = 65534

// userHost is a machine in miniature for one unprivileged user: a private tmpfs as the user's
// runtime directory, a home, age keys, encrypted files and a copy of this binary that runs as
// `secretd`, all reachable by nobody.
type userHost struct {
	t                 *testing.T
	base, bin         string
	runtime, home     string
	keys, sopsKeyFile *age.X25519Identity
	sshRecipient      age.Recipient
	env               []string
}

func newUserHost(t *testing.T) *userHost {
	t.Helper()
	testns.Require(t)
	// Not t.TempDir: its parent is closed to other users.
	base, err := os.MkdirTemp("", "secretd-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	h := &userHost{t: t, base: base, runtime: filepath.Join(base, "run", "user", "65534"), home: filepath.Join(base, "home", "nobody")}
	for _, d := range []string{base, filepath.Join(base, "bin"), filepath.Join(base, "enc"), filepath.Join(base, "run", "user")} {
		os.MkdirAll(d, 0o755)
		os.Chmod(d, 0o755)
	}
	os.MkdirAll(h.runtime, 0o700)
	if err := unix.Mount("tmpfs", h.runtime, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700,uid=65534,gid=65534"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(h.runtime, unix.MNT_DETACH) })

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h.bin = filepath.Join(base, "bin", "secretd")
	copyFile(t, self, h.bin, 0o755)

	h.keys, _ = age.GenerateX25519Identity()
	h.sopsKeyFile, _ = age.GenerateX25519Identity()
	h.userFile(".config/sops/age/keys.txt", "# created: by a test\n"+h.keys.String()+"\n", 0o600)
	h.userFile("keys/other.txt", h.sopsKeyFile.String()+"\n", 0o600)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	h.userFile(".ssh/id_ed25519", string(pem.EncodeToMemory(block)), 0o600)
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if h.sshRecipient, err = agessh.NewEd25519Recipient(sshPub); err != nil {
		t.Fatal(err)
	}
	h.env = []string{
		"PATH=/usr/bin:/bin", "HOME=" + h.home, "XDG_RUNTIME_DIR=" + h.runtime,
		"SOPS_AGE_KEY_FILE=" + filepath.Join(h.home, "keys/other.txt"),
	}
	return h
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// userFile writes a file in the home, owned by nobody, with its directories.
func (h *userHost) userFile(rel, content string, mode os.FileMode) string {
	h.t.Helper()
	p := filepath.Join(h.home, rel)
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		os.MkdirAll(d, 0o755)
		os.Lchown(d, nobody, nobody)
		if d == h.home {
			break
		}
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		h.t.Fatal(err)
	}
	os.Chown(p, nobody, nobody)
	return p
}

// encrypt writes an age file under enc/ that nobody may read.
func (h *userHost) encrypt(name, content string, to *age.X25519Identity) string {
	return h.encryptTo(name, content, to.Recipient())
}

func (h *userHost) encryptTo(name, content string, to age.Recipient) string {
	h.t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, to)
	if err != nil {
		h.t.Fatal(err)
	}
	io.WriteString(w, content)
	w.Close()
	p := filepath.Join(h.base, "enc", name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *userHost) writeManifest(v any) string {
	h.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	p := filepath.Join(h.base, "manifest.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// secretd runs the binary as nobody and returns its output and exit code.
func (h *userHost) secretd(args ...string) (stdout, stderr string, code int) {
	h.t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env
	cmd.Dir = h.home
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), exit.ExitCode()
	} else if err != nil {
		h.t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}

func assertOwnedFile(t *testing.T, path string, mode uint32, content string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if st.Uid != nobody || st.Gid != nobody || st.Mode&0o7777 != mode {
		t.Errorf("%s is %d:%d %04o; want %d:%d %04o", path, st.Uid, st.Gid, st.Mode&0o7777, nobody, nobody, mode)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != content {
		t.Errorf("%s: content differs from the expected plaintext (%d bytes, %v)", path, len(got), err)
	}
}

const (
	userToken    = "ghp_userModeOAuthToken0123456789"
	userNpmToken = "npm_userModeToken9876543210"
)

// A home-manager user's secrets, activated as the user itself: a token in a gitconfig URL
// rewrite rendered from a template, an ~/.npmrc symlink, and a restarted user unit when a
// secret rotates.
func TestUserModeAsUnprivilegedUser(t *testing.T) {
	h := newUserHost(t)
	fake, address := fakesystemd.StartShared(t)
	fake.SetUnit("git-sync.service", "loaded", "active")
	// The user's systemd instance is found on the user bus in the runtime directory.
	socket, _, _ := strings.Cut(strings.TrimPrefix(address, "unix:path="), ",")
	if err := os.Symlink(socket, filepath.Join(h.runtime, "bus")); err != nil {
		t.Fatal(err)
	}

	docs := h.encrypt("secrets.yaml.age", "github:\n  oauth_token: "+userToken+"\nnpmrc: //registry.npmjs.org/:_authToken="+userNpmToken+"\n", h.keys)
	token := h.encrypt("token.age", "first", h.sopsKeyFile)
	sshFile := h.encryptTo("ssh.age", "via-ssh-key", h.sshRecipient)
	placeholder := "<SECRETD:0f1e:github/oauth_token>"
	gitconfig := "[url \"https://oauth2:" + placeholder + "@github.com/\"]\n\tinsteadOf = https://github.com/\n"
	manifestPath := h.writeManifest(map[string]any{
		"version": 1,
		"identities": []string{
			filepath.Join(h.home, ".config/sops/age/keys.txt"),
			filepath.Join(h.home, ".ssh/id_ed25519"),
			filepath.Join(h.home, ".ssh/id_rsa"),
		},
		"secrets": []map[string]any{
			{"name": "github/oauth_token", "file": docs, "format": "yaml", "key": "github/oauth_token"},
			{"name": "npmrc", "file": docs, "format": "yaml", "key": "npmrc", "mode": "0600", "path": filepath.Join(h.home, ".npmrc")},
			{"name": "sync-token", "file": token, "restartUnits": []string{"git-sync.service"}},
			{"name": "ssh-token", "file": sshFile},
		},
		"placeholders": map[string]string{"github/oauth_token": placeholder},
		"templates": []map[string]any{
			{"name": "gitconfig", "content": gitconfig, "mode": "0440", "path": filepath.Join(h.home, ".config/git/secrets.inc")},
		},
	})

	// ~/.config/git is the user's own link into a dotfiles checkout: followed, as it is theirs.
	h.userFile("dotfiles/git/config", "[include]\n", 0o644)
	if err := os.Symlink(filepath.Join(h.home, "dotfiles/git"), filepath.Join(h.home, ".config/git")); err != nil {
		t.Fatal(err)
	}
	os.Lchown(filepath.Join(h.home, ".config/git"), nobody, nobody)

	if _, stderr, code := h.secretd("check", "--user", "--manifest", manifestPath); code != 0 {
		t.Fatalf("check --user: exit %d\n%s", code, stderr)
	}
	_, stderr, code := h.secretd("activate", "--user", "--manifest", manifestPath)
	if code != 0 {
		t.Fatalf("activate --user: exit %d\n%s", code, stderr)
	}
	for _, secret := range []string{userToken, userNpmToken, "first", "via-ssh-key"} {
		if strings.Contains(stderr, secret) {
			t.Fatal("a plaintext appears in the log")
		}
	}
	t.Logf("activate --user as uid %d:\n%s", nobody, stderr)
	var memlock unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_MEMLOCK, &memlock)
	n := strings.Count(stderr, "memory not locked") + strings.Count(stderr, "cannot lock memory")
	if n > 1 || n == 0 && memlock.Cur != unix.RLIM_INFINITY {
		t.Errorf("%d warnings about locked memory under RLIMIT_MEMLOCK %d; want one:\n%s", n, memlock.Cur, stderr)
	}
	if !strings.Contains(stderr, "id_rsa") {
		t.Errorf("the missing ~/.ssh/id_rsa draws no warning:\n%s", stderr)
	}

	secrets := filepath.Join(h.runtime, "secrets")
	if target, err := os.Readlink(secrets); err != nil || target != filepath.Join(h.runtime, "secretd.d", "1") {
		t.Fatalf("%s -> %q (%v); want the first generation under $XDG_RUNTIME_DIR/secretd.d", secrets, target, err)
	}
	if m, _ := ramfs.MountAt(filepath.Join(h.runtime, "secretd.d")); m != nil {
		t.Errorf("a %s is mounted at the user's store; user mode mounts nothing", m.FSType)
	}
	assertOwnedFile(t, filepath.Join(secrets, "github/oauth_token"), 0o400, userToken)
	assertOwnedFile(t, filepath.Join(secrets, "ssh-token"), 0o400, "via-ssh-key")
	assertOwnedFile(t, filepath.Join(h.home, ".npmrc"), 0o600, "//registry.npmjs.org/:_authToken="+userNpmToken)
	assertOwnedFile(t, filepath.Join(h.home, "dotfiles/git/secrets.inc"), 0o440, strings.ReplaceAll(gitconfig, placeholder, userToken))
	if target, _ := os.Readlink(filepath.Join(h.home, ".npmrc")); target != filepath.Join(secrets, "npmrc") {
		t.Errorf("~/.npmrc -> %q; want a symlink into the secrets directory", target)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(h.runtime, "secretd.d"), &st); err != nil || st.Uid != nobody || st.Mode&0o777 != 0o700 {
		t.Errorf("the store is %d %04o (%v); want nobody's, mode 0700", st.Uid, st.Mode&0o777, err)
	}
	if len(fake.JobCalls()) != 0 {
		t.Errorf("the first activation signalled %v", fake.JobCalls())
	}

	// A rotated secret restarts the user unit that reads it.
	h.encrypt("token.age", "second", h.sopsKeyFile)
	if _, stderr, code := h.secretd("activate", "--user", "--manifest", manifestPath); code != 0 {
		t.Fatalf("second activate --user: exit %d\n%s", code, stderr)
	}
	assertOwnedFile(t, filepath.Join(secrets, "sync-token"), 0o400, "second")
	want := []fakesystemd.Call{{Method: "TryRestartUnit", Unit: "git-sync.service", Mode: "replace"}}
	if got := fake.JobCalls(); len(got) != 1 || got[0] != want[0] {
		t.Errorf("unit jobs %+v; want %+v on the user's manager", got, want)
	}

	stdout, stderr, code := h.secretd("status", "--user")
	if code != 0 || !strings.HasPrefix(stdout, "healthy") {
		t.Errorf("status --user: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "git-sync.service: try-restart -> restarted") {
		t.Errorf("status --user does not show the restarted unit:\n%s", stdout)
	}
}

// What user mode refuses, before anything is written: a runtime directory others may enter or
// that is on a disk, and owners in the manifest.
func TestUserModeRefuses(t *testing.T) {
	h := newUserHost(t)
	token := h.encrypt("token.age", "x", h.keys)
	keys := filepath.Join(h.home, ".config/sops/age/keys.txt")
	good := h.writeManifest(map[string]any{"version": 1, "identities": []string{keys}, "secrets": []map[string]any{{"name": "t", "file": token}}})

	os.Chmod(h.runtime, 0o755)
	_, stderr, code := h.secretd("activate", "--user", "--manifest", good)
	if code != 1 || !strings.Contains(stderr, "has mode 0755; it must be 0700") {
		t.Errorf("runtime dir of mode 0755: exit %d\n%s", code, stderr)
	}
	os.Chmod(h.runtime, 0o700)

	onDisk := filepath.Join(h.home, "run")
	os.Mkdir(onDisk, 0o700)
	os.Chown(onDisk, nobody, nobody)
	env := h.env
	h.env = append(append([]string{}, env...), "XDG_RUNTIME_DIR="+onDisk)
	_, stderr, code = h.secretd("activate", "--user", "--manifest", good)
	if code != 1 || !strings.Contains(stderr, "is not on a tmpfs or ramfs") {
		t.Errorf("runtime dir on a disk: exit %d\n%s", code, stderr)
	}
	h.env = env

	owned := h.writeManifest(map[string]any{"version": 1, "identities": []string{keys}, "secrets": []map[string]any{{"name": "t", "file": token, "owner": "root"}}})
	_, stderr, code = h.secretd("activate", "--user", "--manifest", owned)
	if code != 1 || !strings.Contains(stderr, `secrets[0] (t).owner: is set, but a user's secrets all belong to that user`) {
		t.Errorf("owner in a user's manifest: exit %d\n%s", code, stderr)
	}
	if entries, _ := os.ReadDir(h.runtime); len(entries) > 0 {
		t.Errorf("refused runs left %d entries in the runtime directory", len(entries))
	}
}

// TestUserModeSkipsPassphraseProtectedKey: a user's ~/.ssh/id_ed25519, among the default
// identities, usually has a passphrase that no unit can type. It is skipped with a warning
// while another identity is usable, and is an error when it is the only one.
func TestUserModeSkipsPassphraseProtectedKey(t *testing.T) {
	h := newUserHost(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	protected := h.userFile(".ssh/id_ed25519", string(pem.EncodeToMemory(block)), 0o600)
	token := h.encrypt("token.age", "via-keys-txt", h.keys)
	manifest := func(identities ...string) string {
		return h.writeManifest(map[string]any{
			"version":    1,
			"identities": identities,
			"secrets":    []map[string]any{{"name": "token", "file": token}},
		})
	}
	keysTxt := filepath.Join(h.home, ".config/sops/age/keys.txt")

	_, stderr, code := h.secretd("activate", "--user", "--no-signal", "--manifest", manifest(keysTxt, protected))
	if code != 0 {
		t.Fatalf("activate --user with a passphrase-protected ~/.ssh/id_ed25519 beside keys.txt: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "passphrase") || !strings.Contains(stderr, protected) {
		t.Errorf("the skipped key draws no warning naming it:\n%s", stderr)
	}
	assertOwnedFile(t, filepath.Join(h.runtime, "secrets", "token"), 0o400, "via-keys-txt")

	h.env = slices.DeleteFunc(h.env, func(e string) bool { return strings.HasPrefix(e, sopsAgeKeyFileEnv+"=") })
	_, stderr, code = h.secretd("activate", "--user", "--no-signal", "--manifest", manifest(protected))
	if code == 0 || !strings.Contains(stderr, "passphrase-protected") {
		t.Errorf("activate --user with only a passphrase-protected key: exit %d\n%s", code, stderr)
	}
}
