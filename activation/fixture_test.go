package activation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/internal/interop"
	"github.com/secretd/secretd/internal/testns"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
)

func TestMain(m *testing.M) { testns.Main(m) }

// fixture is a host in miniature: a secretsDir and a mount point in a temp dir, identities from
// the interop corpus, and a recorded log.
type fixture struct {
	t          *testing.T
	dir        string
	secretsDir string
	mountPoint string
	logs       *observer.ObservedLogs
	log        *zap.Logger
	recipient  age.Recipient
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	testns.Require(t)
	dir := t.TempDir()
	core, logs := observer.New(zap.DebugLevel)
	f := &fixture{
		t: t, dir: dir,
		secretsDir: filepath.Join(dir, "run", "secrets"),
		mountPoint: filepath.Join(dir, "run", "secrets.d"),
		logs:       logs, log: zap.New(core),
	}
	t.Cleanup(func() { unix.Unmount(f.mountPoint, unix.MNT_DETACH) })
	keyData, err := os.ReadFile(interop.Key(t, "age.key"))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(keyData))
	if err != nil {
		t.Fatal(err)
	}
	f.recipient = ids[0].(*age.X25519Identity).Recipient()
	return f
}

// manifest returns a manifest over the fixture's directories with the interop identities.
func (f *fixture) manifest(secrets ...manifest.Secret) *manifest.Manifest {
	return &manifest.Manifest{
		Version: 1, SecretsDir: f.secretsDir, MountPoint: f.mountPoint, KeepGenerations: 2,
		Identities: []string{
			interop.Key(f.t, "ssh_host_ed25519_key"),
			interop.Key(f.t, "ssh_host_rsa_key"),
			interop.Key(f.t, "age.key"),
		},
		Secrets: secrets,
	}
}

// encrypt writes an age file holding content, encrypted to the corpus' native identity.
func (f *fixture) encrypt(name string, content []byte) string {
	f.t.Helper()
	p := filepath.Join(f.dir, "enc", name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, f.recipient)
	if err != nil {
		f.t.Fatal(err)
	}
	w.Write(content)
	w.Close()
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// normalize round-trips m through JSON so defaults apply and validation runs, as when loaded.
func (f *fixture) normalize(m *manifest.Manifest) *manifest.Manifest {
	f.t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		f.t.Fatal(err)
	}
	out, err := manifest.Decode(data)
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) activate(m *manifest.Manifest, opts activation.Options) (*activation.Plan, error) {
	f.t.Helper()
	if opts.Log == nil {
		opts.Log = f.log
	}
	opts.ManifestPath = "test-manifest.json"
	return activation.Activate(context.Background(), f.normalize(m), opts)
}

func (f *fixture) mustActivate(m *manifest.Manifest, opts activation.Options) *activation.Plan {
	f.t.Helper()
	plan, err := f.activate(m, opts)
	if err != nil {
		f.t.Fatalf("activate: %v", err)
	}
	return plan
}

func (f *fixture) live() int {
	f.t.Helper()
	n, ok, err := ramfs.Store{Root: f.mountPoint}.Live(f.secretsDir)
	if err != nil || !ok {
		f.t.Fatalf("no live generation: %v", err)
	}
	return n
}

// expectFile checks a file under secretsDir without ever printing its content.
func (f *fixture) expectFile(name string, want []byte, uid, gid int, mode uint32) {
	f.t.Helper()
	got, info, err := ramfs.ReadFile(f.secretsDir+"/", name)
	if err != nil {
		f.t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		f.t.Errorf("%s: content mismatch (%d bytes, want %d)", name, len(got), len(want))
	}
	if info.UID != uid || info.GID != gid || info.Mode != mode {
		f.t.Errorf("%s: owner %d:%d mode %04o, want %d:%d %04o", name, info.UID, info.GID, info.Mode, uid, gid, mode)
	}
}

// noPlaintextIn fails if any of the secrets appears in any log entry or in text.
func (f *fixture) noPlaintextIn(secrets [][]byte, texts ...string) {
	f.t.Helper()
	var all strings.Builder
	for _, e := range f.logs.All() {
		all.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			all.WriteString(" " + k + "=")
			b, _ := json.Marshal(v)
			all.Write(b)
		}
		all.WriteString("\n")
	}
	for _, t := range texts {
		all.WriteString(t + "\n")
	}
	for i, s := range secrets {
		if len(bytes.TrimSpace(s)) < 4 {
			continue // too short to tell a leak from a coincidence
		}
		if strings.Contains(all.String(), strings.TrimSpace(string(s))) {
			f.t.Errorf("plaintext of secret #%d appears in logs or errors", i)
		}
	}
}

func intp(i int) *int { return &i }
