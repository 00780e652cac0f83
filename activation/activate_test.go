package activation_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/internal/interop"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
)

// ageCases are the corpus' agenix-style files: each secret's file and expected plaintext.
var ageCases = []struct{ name, file, expected string }{
	{"token", "token.age", "token"},
	{"binary", "binary.rsa.age", "binary"},
	{"empty", "empty.age", "empty"},
	{"multi", "multi-recipient.age", "multi"},
	{"nested/multiline", "multiline.armored.age", "multiline"},
	{"native", "native-identity.age", "native-identity"},
}

func TestInteropAgeFilesThroughActivate(t *testing.T) {
	f := newFixture(t)
	var secrets []manifest.Secret
	var plaintexts [][]byte
	for _, c := range ageCases {
		secrets = append(secrets, manifest.Secret{Name: c.name, File: interop.Enc(t, c.file),
			Ownership: manifest.Ownership{Owner: "nobody", Group: "nogroup", Mode: "0440"}})
		plaintexts = append(plaintexts, interop.Expected(t, c.expected))
	}
	plan := f.mustActivate(f.manifest(secrets...), activation.Options{})
	if !plan.FirstActivation || !plan.NewGeneration || len(plan.Restart) != 0 {
		t.Fatalf("first activation plan: %+v", plan)
	}
	for i, c := range ageCases {
		f.expectFile(c.name, plaintexts[i], 65534, 65534, 0o440)
	}
	if ok, err := ramfs.IsRamfs(f.mountPoint); !ok || err != nil {
		t.Fatalf("mount point is not a ramfs: %v", err)
	}
	st := activation.ReadStatus(f.mountPoint)
	if !st.Healthy {
		t.Fatalf("status unhealthy: %v", st.Problems)
	}
	if len(st.State.Identities) != 3 {
		t.Errorf("identities used: %v, want ssh-ed25519, ssh-rsa and age", st.State.Identities)
	}
	f.noPlaintextIn(plaintexts)
}

func TestWrongRecipientFailsAndLiveStays(t *testing.T) {
	f := newFixture(t)
	token := manifest.Secret{Name: "token", File: interop.Enc(t, "token.age")}
	f.mustActivate(f.manifest(token), activation.Options{})
	before := f.live()

	bad := manifest.Secret{Name: "db/password", File: interop.Enc(t, "wrong-recipient.age")}
	changed := manifest.Secret{Name: "token", File: interop.Enc(t, "multi-recipient.age")}
	_, err := f.activate(f.manifest(changed, bad), activation.Options{})
	if err == nil {
		t.Fatal("activation with an undecryptable secret succeeded")
	}
	for _, want := range []string{`secret "db/password"`, "wrong-recipient.age", "encrypted to other recipients"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if f.live() != before {
		t.Fatalf("live generation moved from %d to %d", before, f.live())
	}
	f.expectFile("token", interop.Expected(t, "token"), 0, 0, 0o400)
	if gens, _ := (ramfs.Store{Root: f.mountPoint}).Generations(); len(gens) != 1 {
		t.Fatalf("generations after failure: %v", gens)
	}
	f.noPlaintextIn([][]byte{interop.Expected(t, "token"), interop.Expected(t, "multi")}, err.Error())
}

func TestCorruptedAndTruncatedFilesFail(t *testing.T) {
	f := newFixture(t)
	data, err := os.ReadFile(interop.Enc(t, "token.age"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(f.dir, "truncated.age")
	os.WriteFile(truncated, data[:len(data)-10], 0o644)
	corrupted := filepath.Join(f.dir, "corrupted.age")
	flipped := append([]byte{}, data...)
	flipped[len(flipped)-5] ^= 0x40
	os.WriteFile(corrupted, flipped, 0o644)
	notAge := filepath.Join(f.dir, "plain.txt")
	os.WriteFile(notAge, []byte("hello"), 0o644)
	for name, file := range map[string]string{"truncated": truncated, "corrupted": corrupted, "plain": notAge} {
		_, err := f.activate(f.manifest(manifest.Secret{Name: name, File: file}), activation.Options{})
		if err == nil || !strings.Contains(err.Error(), `secret "`+name+`"`) || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: error %v, want one naming the secret and %s", name, err, file)
		}
	}
	if _, err := os.Lstat(f.secretsDir); !os.IsNotExist(err) {
		t.Fatalf("secretsDir appeared after failures: %v", err)
	}
}

func TestChangeDetectionAndNoOp(t *testing.T) {
	f := newFixture(t)
	a := manifest.Secret{Name: "a", File: f.encrypt("a", []byte("alpha")), Consumers: manifest.Consumers{RestartUnits: []string{"a.service"}}}
	b := manifest.Secret{Name: "b", File: f.encrypt("b", []byte("bravo")), Consumers: manifest.Consumers{ReloadUnits: []string{"b.service"}}}
	c := manifest.Secret{Name: "c", File: f.encrypt("c", []byte("charlie")), Consumers: manifest.Consumers{RestartUnits: []string{"c.service"}}}
	d := manifest.Secret{Name: "d", File: f.encrypt("d", []byte("delta")), Consumers: manifest.Consumers{RestartUnits: []string{"d.service", "shared.service"}}}
	f.mustActivate(f.manifest(a, b, c, d), activation.Options{})
	gen := f.live()

	// Same manifest again: no new generation, nothing to signal.
	plan := f.mustActivate(f.manifest(a, b, c, d), activation.Options{})
	if plan.NewGeneration || len(plan.Changes) != 0 || f.live() != gen {
		t.Fatalf("no-op made a change: %+v", plan.Changes)
	}

	// a: content; b: mode; c: removed; d: owner; e: added.
	a.File = f.encrypt("a2", []byte("alpha-2"))
	b.Mode = "0440"
	d.Owner = "nobody"
	e := manifest.Secret{Name: "e", File: f.encrypt("e", []byte("echo")), Consumers: manifest.Consumers{RestartUnits: []string{"shared.service"}, ReloadUnits: []string{"e.service"}}}
	plan = f.mustActivate(f.manifest(a, b, d, e), activation.Options{})
	got := map[string]activation.Change{}
	for _, ch := range plan.Changes {
		got[ch.Name] = ch
	}
	want := map[string]activation.Change{
		"a": {Action: activation.ActionChange, Content: true},
		"b": {Action: activation.ActionChange, Mode: true},
		"c": {Action: activation.ActionRemove},
		"d": {Action: activation.ActionChange, Owner: true},
		"e": {Action: activation.ActionAdd},
	}
	if len(got) != len(want) {
		t.Fatalf("changes %+v", plan.Changes)
	}
	for name, w := range want {
		g := got[name]
		if g.Action != w.Action || g.Content != w.Content || g.Owner != w.Owner || g.Mode != w.Mode {
			t.Errorf("%s: %+v, want %+v", name, g, w)
		}
	}
	if strings.Join(plan.Restart, " ") != "a.service c.service d.service shared.service" {
		t.Errorf("restart %v", plan.Restart)
	}
	if strings.Join(plan.Reload, " ") != "b.service e.service" {
		t.Errorf("reload %v", plan.Reload)
	}
	if f.live() != gen+1 {
		t.Fatalf("live %d, want %d", f.live(), gen+1)
	}
	f.expectFile("a", []byte("alpha-2"), 0, 0, 0o400)
	f.expectFile("d", []byte("delta"), 65534, 0, 0o400)
	if _, err := os.Lstat(filepath.Join(f.secretsDir, "c")); !os.IsNotExist(err) {
		t.Fatalf("removed secret still there: %v", err)
	}
	// keepGenerations 2: the third activation prunes the first.
	f.mustActivate(f.manifest(a, b), activation.Options{})
	if gens, _ := (ramfs.Store{Root: f.mountPoint}).Generations(); len(gens) != 2 {
		t.Fatalf("generations %v, want 2 kept", gens)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	f := newFixture(t)
	s := manifest.Secret{Name: "token", File: interop.Enc(t, "token.age"), Path: filepath.Join(f.dir, "home", "token")}
	plan, err := f.activate(f.manifest(s), activation.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Changes) != 1 || plan.Changes[0].Action != activation.ActionAdd {
		t.Fatalf("plan %+v", plan.Changes)
	}
	entries, _ := os.ReadDir(f.dir)
	for _, e := range entries {
		if e.Name() != "enc" {
			t.Errorf("dry run left %s behind", e.Name())
		}
	}
	if m, _ := ramfs.MountAt(f.mountPoint); m != nil {
		t.Error("dry run mounted a ramfs")
	}

	// Against a live generation, a dry run reports the change and leaves everything as it was.
	f.mustActivate(f.manifest(s), activation.Options{})
	gen := f.live()
	before, _ := os.ReadFile(filepath.Join(f.mountPoint, activation.StateFile))
	s.Mode = "0440"
	plan, err = f.activate(f.manifest(s), activation.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Changes) != 1 || !plan.Changes[0].Mode {
		t.Fatalf("plan %+v", plan.Changes)
	}
	after, _ := os.ReadFile(filepath.Join(f.mountPoint, activation.StateFile))
	if f.live() != gen || string(before) != string(after) {
		t.Fatal("dry run changed the live generation or the state")
	}
	f.expectFile("token", interop.Expected(t, "token"), 0, 0, 0o400)
}

func TestPathSymlinks(t *testing.T) {
	f := newFixture(t)
	link := filepath.Join(f.dir, "home", "alice", ".config", "gh", "token")
	s := manifest.Secret{Name: "gh/token", File: interop.Enc(t, "token.age"), Path: link}
	f.mustActivate(f.manifest(s), activation.Options{})
	target, err := os.Readlink(link)
	if err != nil || target != filepath.Join(f.secretsDir, "gh/token") {
		t.Fatalf("link -> %q, %v", target, err)
	}
	// Dropping the path removes the symlink secretd made.
	s.Path = ""
	f.mustActivate(f.manifest(s), activation.Options{})
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("stale link remains: %v", err)
	}

	// A directory at path stops the run before the swap.
	gen := f.live()
	dir := filepath.Join(f.dir, "occupied-dir")
	os.Mkdir(dir, 0o755)
	bad := manifest.Secret{Name: "other", File: interop.Enc(t, "multi-recipient.age"), Path: dir}
	_, err = f.activate(f.manifest(s, bad), activation.Options{})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("directory at path: error %v", err)
	}
	if f.live() != gen {
		t.Fatal("live generation moved")
	}
	// A regular file at path, as agenix leaves with symlink = false, is replaced by the symlink.
	file := filepath.Join(f.dir, "occupied-file")
	os.WriteFile(file, []byte("left by agenix"), 0o400)
	other := manifest.Secret{Name: "other", File: interop.Enc(t, "multi-recipient.age"), Path: file}
	f.mustActivate(f.manifest(s, other), activation.Options{})
	if target, err := os.Readlink(file); err != nil || target != filepath.Join(f.secretsDir, "other") {
		t.Fatalf("the regular file at path was not replaced by the symlink: %q, %v", target, err)
	}
}

func TestSecretsDirRealDirectory(t *testing.T) {
	f := newFixture(t)
	s := manifest.Secret{Name: "token", File: interop.Enc(t, "token.age")}
	os.MkdirAll(f.secretsDir, 0o755)
	os.WriteFile(filepath.Join(f.secretsDir, "left-by-another-tool"), []byte("x"), 0o600)
	_, err := f.activate(f.manifest(s), activation.Options{})
	if err == nil || !strings.Contains(err.Error(), "real directory holding 1 entries") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.secretsDir, "left-by-another-tool")); err != nil {
		t.Fatal("the other tool's file was removed")
	}
	os.Remove(filepath.Join(f.secretsDir, "left-by-another-tool"))
	f.mustActivate(f.manifest(s), activation.Options{})
	f.expectFile("token", interop.Expected(t, "token"), 0, 0, 0o400)
}

func TestForUsersNeedsNoUserDatabase(t *testing.T) {
	f := newFixture(t)
	s := manifest.Secret{Name: "alice-password", File: interop.Enc(t, "token.age")}
	f.mustActivate(f.manifest(s), activation.Options{ForUsers: true, Accounts: failingAccounts{t}})
	f.expectFile("alice-password", interop.Expected(t, "token"), 0, 0, 0o400)

	s.Owner = "alice"
	_, err := f.activate(f.manifest(s), activation.Options{ForUsers: true})
	if err == nil || !strings.Contains(err.Error(), "owned by root") {
		t.Fatalf("error %v", err)
	}
	s.Owner, s.UID = "", intp(1000)
	if _, err := f.activate(f.manifest(s), activation.Options{ForUsers: true}); err == nil {
		t.Fatal("a non-root uid was accepted for a secret needed before users exist")
	}
}

type failingAccounts struct{ t *testing.T }

func (a failingAccounts) UserID(name string) (int, error) {
	a.t.Errorf("user database read for %q", name)
	return 0, nil
}

func (a failingAccounts) GroupID(name string) (int, error) {
	a.t.Errorf("group database read for %q", name)
	return 0, nil
}

func TestUnknownOwnerIsAnError(t *testing.T) {
	f := newFixture(t)
	s := manifest.Secret{Name: "token", File: interop.Enc(t, "token.age"), Ownership: manifest.Ownership{Owner: "no-such-user-here", Group: "no-such-group-here"}}
	_, err := f.activate(f.manifest(s), activation.Options{})
	if err == nil || !strings.Contains(err.Error(), `unknown user "no-such-user-here"`) {
		t.Fatalf("error %v", err)
	}
	s.Owner, s.UID, s.GID, s.Group = "", intp(4242), intp(4343), ""
	f.mustActivate(f.manifest(s), activation.Options{})
	f.expectFile("token", interop.Expected(t, "token"), 4242, 4343, 0o400)
}

func TestTemplates(t *testing.T) {
	f := newFixture(t)
	m := f.manifest(
		manifest.Secret{Name: "github/oauth_token", File: f.encrypt("gh", []byte("ghp_abc"))},
		manifest.Secret{Name: "db", File: f.encrypt("db", []byte("s3cret"))},
	)
	m.Placeholders = map[string]string{"github/oauth_token": "<SECRETD:1:github/oauth_token>", "db": "<SECRETD:2:db>"}
	link := filepath.Join(f.dir, "etc", "app.conf")
	m.Templates = []manifest.Template{{
		Name: "app.conf", Content: "token = <SECRETD:1:github/oauth_token>\ndb = <SECRETD:2:db>\nagain = <SECRETD:2:db>\n",
		Ownership: manifest.Ownership{Owner: "nobody", Mode: "0440"}, Path: link,
	}}
	f.mustActivate(m, activation.Options{})
	f.expectFile("rendered/app.conf", []byte("token = ghp_abc\ndb = s3cret\nagain = s3cret\n"), 65534, 0, 0o440)
	if data, err := os.ReadFile(link); err != nil || !strings.HasPrefix(string(data), "token = ") {
		t.Fatalf("path symlink to the template does not resolve: %v", err)
	}
	st := activation.ReadStatus(f.mountPoint)
	if !st.Healthy {
		t.Fatal(st.Problems)
	}
}

func TestStatusNoticesTampering(t *testing.T) {
	f := newFixture(t)
	link := filepath.Join(f.dir, "link")
	f.mustActivate(f.manifest(manifest.Secret{Name: "token", File: interop.Enc(t, "token.age"), Path: link}), activation.Options{})
	if st := activation.ReadStatus(f.mountPoint); !st.Healthy {
		t.Fatal(st.Problems)
	}
	os.Chmod(filepath.Join(f.secretsDir, "token"), 0o644)
	st := activation.ReadStatus(f.mountPoint)
	if st.Healthy || len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "mode 0644, expected 0400") || !strings.Contains(st.Problems[0], "token") {
		t.Fatalf("problems %v", st.Problems)
	}
	os.Chmod(filepath.Join(f.secretsDir, "token"), 0o400)
	os.Remove(link)
	if st := activation.ReadStatus(f.mountPoint); st.Healthy {
		t.Fatal("a missing path symlink went unnoticed")
	}
}

// A failure after the swap says the new generation is live, and the next activation, once the
// cause is gone, finishes the job.
func TestFailureAfterSwapIsReportedAsLive(t *testing.T) {
	f := newFixture(t)
	s := manifest.Secret{Name: "token", File: f.encrypt("a", []byte("alpha"))}
	f.mustActivate(f.manifest(s), activation.Options{})
	before := f.live()

	// A user's symlink on the way to path passes the early checks but is not followed.
	real := filepath.Join(f.dir, "home", "alice", "real")
	os.MkdirAll(real, 0o755)
	cfg := filepath.Join(f.dir, "home", "alice", "cfg")
	os.Symlink(real, cfg)
	if err := os.Lchown(cfg, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	s.File = f.encrypt("b", []byte("bravo"))
	s.Path = filepath.Join(cfg, "token")
	_, err := f.activate(f.manifest(s), activation.Options{})
	var live *activation.LiveError
	if !errors.As(err, &live) || live.Generation != before+1 || !strings.Contains(err.Error(), "owned by uid 1000") {
		t.Fatalf("error %v, want a LiveError for generation %d naming the untrusted symlink", err, before+1)
	}
	if f.live() != before+1 {
		t.Fatalf("live generation %d, want %d", f.live(), before+1)
	}
	f.expectFile("token", []byte("bravo"), 0, 0, 0o400)

	os.Remove(cfg)
	os.Mkdir(cfg, 0o755)
	f.mustActivate(f.manifest(s), activation.Options{})
	if target, err := os.Readlink(s.Path); err != nil || target != filepath.Join(f.secretsDir, "token") {
		t.Fatalf("path after recovery: %q, %v", target, err)
	}
	if st := activation.ReadStatus(f.mountPoint); !st.Healthy {
		t.Fatal(st.Problems)
	}
}
