package activation_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/manifest"
)

// sopsEncrypt encrypts plaintext YAML with the real sops CLI to the fixture's recipient.
func (f *fixture) sopsEncrypt(name, plaintext string) []byte {
	f.t.Helper()
	bin, err := exec.LookPath("sops")
	if err != nil {
		if os.Getenv("CI") == "true" {
			f.t.Fatal("sops is not installed")
		}
		f.t.Skip("sops is not installed")
	}
	plain := filepath.Join(f.dir, name+".plain.yaml")
	if err := os.WriteFile(plain, []byte(plaintext), 0o600); err != nil {
		f.t.Fatal(err)
	}
	out, err := exec.Command(bin, "--encrypt", "--age", f.recipient.(*age.X25519Recipient).String(), "--input-type", "yaml", "--output-type", "yaml", plain).Output()
	if err != nil {
		f.t.Fatal("sops --encrypt failed")
	}
	os.Remove(plain)
	return out
}

// TestShiftedSopsListDoesNotHandBobAlicesPassword: someone who may edit the sops file but holds
// no key prepends an empty item to a list (sops authenticates neither empty values nor list
// positions, so the MAC still holds). Bob's secret, `users/1`, must not become alice's password.
func TestShiftedSopsListDoesNotHandBobAlicesPassword(t *testing.T) {
	f := newFixture(t)
	alicePW, bobPW := "alice-Pa55word-0417", "bob-Pa55word-2291"
	enc := f.sopsEncrypt("users", "users:\n    - "+alicePW+"\n    - "+bobPW+"\n")
	edited := bytes.Replace(enc, []byte("users:\n"), []byte("users:\n    - \"\"\n"), 1)
	if bytes.Equal(edited, enc) {
		t.Fatal("the edit changed nothing")
	}
	file := filepath.Join(f.dir, "users.sops.yaml")
	if err := os.WriteFile(file, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	m := f.manifest(
		manifest.Secret{Name: "alice", File: file, Format: "yaml", Key: "users/0", Ownership: manifest.Ownership{UID: intp(1001), Mode: "0400"}},
		manifest.Secret{Name: "bob", File: file, Format: "yaml", Key: "users/1", Ownership: manifest.Ownership{UID: intp(1002), Mode: "0400"}},
	)
	_, err := f.activate(m, activation.Options{})
	if err == nil {
		if got, _ := os.ReadFile(filepath.Join(f.secretsDir, "bob")); string(got) == alicePW {
			t.Fatal("activation succeeded and bob's secret file holds alice's password")
		}
		t.Fatal("activation of a shifted list succeeded")
	}
	if !strings.Contains(err.Error(), "list item by its index") || !strings.Contains(err.Error(), file) {
		t.Errorf("error does not name the file and the list index: %v", err)
	}
	if _, statErr := os.Lstat(f.secretsDir); !os.IsNotExist(statErr) {
		t.Errorf("something was made live: %v", statErr)
	}
	f.noPlaintextIn([][]byte{[]byte(alicePW), []byte(bobPW)}, err.Error())
}
