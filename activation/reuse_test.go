package activation_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/internal/interop"
	"github.com/secretd/secretd/manifest"
)

// An unchanged encrypted file whose live output is untouched is not decrypted again; anything
// else is.
func TestUnchangedInputsAreNotDecryptedAgain(t *testing.T) {
	f := newFixture(t)
	s := manifest.Secret{Name: "token", File: interop.Enc(t, "token.age")}
	f.mustActivate(f.manifest(s), activation.Options{})

	// Same input, same live file: taken from the live generation, so it works even without a
	// decrypting identity as long as the identity set is the same.
	f.mustActivate(f.manifest(s), activation.Options{})
	if st := activation.ReadStatus(f.mountPoint); !st.Healthy || len(st.State.Identities) == 0 {
		t.Fatalf("status after a no-change run: %v, identities %v", st.Problems, st.State.Identities)
	}

	// Another identity set must prove it can decrypt: with only a key that cannot, it fails.
	m := f.manifest(s)
	m.Identities = []string{interop.Key(t, "age.key")}
	if _, err := f.activate(m, activation.Options{}); err == nil || !strings.Contains(err.Error(), `secret "token"`) {
		t.Fatalf("a changed identity set reused the live secret: %v", err)
	}

	// A live file changed by hand (same size) is rewritten from the encrypted file.
	live := filepath.Join(f.secretsDir, "token")
	data, err := os.ReadFile(live)
	if err != nil {
		t.Fatal(err)
	}
	forged := make([]byte, len(data))
	for i := range forged {
		forged[i] = 'x'
	}
	os.Chmod(live, 0o600)
	if err := os.WriteFile(live, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(live, 0o400)
	plan := f.mustActivate(f.manifest(s), activation.Options{})
	if len(plan.Changes) != 1 || !plan.Changes[0].Content {
		t.Fatalf("changes %+v, want the forged content replaced", plan.Changes)
	}
	f.expectFile("token", interop.Expected(t, "token"), 0, 0, 0o400)
}

// Secrets taken unchanged from the live generation are read back only when needed, and then
// exactly: into a template whose text changed, and into a new generation made for another
// secret's sake.
func TestReusedSecretsCarriedIntoNewGenerations(t *testing.T) {
	f := newFixture(t)
	a := manifest.Secret{Name: "a", File: f.encrypt("a", []byte("alpha-value"))}
	b := manifest.Secret{Name: "dir/b", File: f.encrypt("b", []byte("bravo-value")), Ownership: manifest.Ownership{Owner: "nobody", Group: "nogroup", Mode: "0440"}}
	d := manifest.Secret{Name: "d", File: f.encrypt("d", []byte("delta-value"))} // in no template
	withTemplate := func(text string, secrets ...manifest.Secret) *manifest.Manifest {
		m := f.manifest(secrets...)
		m.Placeholders = map[string]string{"a": "<SECRETD:a>", "dir/b": "<SECRETD:dir/b>"}
		m.Templates = []manifest.Template{{Name: "app.conf", Content: text}}
		return m
	}
	f.mustActivate(withTemplate("a=<SECRETD:a>\n", a, b, d), activation.Options{})
	first := f.live()

	plan := f.mustActivate(withTemplate("a=<SECRETD:a>\n", a, b, d), activation.Options{})
	if plan.NewGeneration || f.live() != first {
		t.Fatalf("an unchanged manifest made generation %d (changes %+v)", f.live(), plan.Changes)
	}

	plan = f.mustActivate(withTemplate("b=<SECRETD:dir/b> a=<SECRETD:a>\n", a, b, d), activation.Options{})
	if len(plan.Changes) != 1 || plan.Changes[0].Name != "rendered/app.conf" || !plan.Changes[0].Content {
		t.Fatalf("changes %+v, want only the template's content", plan.Changes)
	}
	f.expectFile("rendered/app.conf", []byte("b=bravo-value a=alpha-value\n"), 0, 0, 0o400)

	c := manifest.Secret{Name: "c", File: f.encrypt("c", []byte("charlie-value"))}
	plan = f.mustActivate(withTemplate("b=<SECRETD:dir/b> a=<SECRETD:a>\n", a, b, c, d), activation.Options{})
	if len(plan.Changes) != 1 || plan.Changes[0].Name != "c" || plan.Changes[0].Action != activation.ActionAdd {
		t.Fatalf("changes %+v, want only c added", plan.Changes)
	}
	if f.live() <= first+1 {
		t.Fatalf("live generation %d, want a new one after %d", f.live(), first+1)
	}
	f.expectFile("a", []byte("alpha-value"), 0, 0, 0o400)
	f.expectFile("dir/b", []byte("bravo-value"), 65534, 65534, 0o440)
	f.expectFile("c", []byte("charlie-value"), 0, 0, 0o400)
	f.expectFile("d", []byte("delta-value"), 0, 0, 0o400)
	f.expectFile("rendered/app.conf", []byte("b=bravo-value a=alpha-value\n"), 0, 0, 0o400)
	if st := activation.ReadStatus(f.mountPoint); !st.Healthy {
		t.Fatal(st.Problems)
	}
}

// An encrypted file whose stat is unchanged since it was read is taken as unchanged without
// being read; one changed since, even to the same size, is read and decrypted again.
func TestInputStampsSkipReading(t *testing.T) {
	f := newFixture(t)
	file := f.encrypt("a", []byte("alpha-value-1"))
	s := manifest.Secret{Name: "a", File: file}
	// Files written by the fixture are seconds old at most; activations that see them from a
	// minute later record their stamps.
	later := activation.Options{Now: func() time.Time { return time.Now().Add(time.Minute) }}
	f.mustActivate(f.manifest(s), later)
	stamped := func() bool {
		t.Helper()
		st, err := activation.ReadPrevious(f.mountPoint)
		if err != nil || st == nil || len(st.Outputs) != 1 {
			t.Fatalf("state: %v %v", st, err)
		}
		return st.Outputs[0].Input.File == file
	}
	if !stamped() {
		t.Fatal("no stamp recorded for an input a minute old")
	}

	if plan := f.mustActivate(f.manifest(s), later); plan.NewGeneration {
		t.Fatalf("changes %+v", plan.Changes)
	}

	// New content of the same size: a new stat, so read, decrypted and written.
	f.encrypt("a", []byte("alpha-value-2"))
	plan := f.mustActivate(f.manifest(s), later)
	if len(plan.Changes) != 1 || !plan.Changes[0].Content {
		t.Fatalf("changes %+v, want the new content", plan.Changes)
	}
	f.expectFile("a", []byte("alpha-value-2"), 0, 0, 0o400)

	// Seen from now, the file changed too recently for its stat to be trusted later.
	f.encrypt("a", []byte("alpha-value-3"))
	f.mustActivate(f.manifest(s), activation.Options{})
	f.expectFile("a", []byte("alpha-value-3"), 0, 0, 0o400)
	if stamped() {
		t.Fatal("a stamp recorded for a file changed within the racy window")
	}
}
