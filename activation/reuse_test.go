package activation_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
