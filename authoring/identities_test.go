package authoring

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
)

// TestFindIdentities: identities come from every place sops and agenix look; a missing default
// is skipped, an unusable default is noted and skipped, a missing explicit one is an error.
func TestFindIdentities(t *testing.T) {
	home := t.TempDir()
	env := map[string]string{}
	e := Environment{Getenv: func(k string) string { return env[k] }, Home: home}
	noNotes := func(n string) { t.Errorf("unexpected note: %s", n) }

	if _, err := FindIdentities(nil, e, noNotes); err == nil || !strings.Contains(err.Error(), "no identity") {
		t.Fatalf("empty home: %v", err)
	}

	fromEnv, _ := age.GenerateX25519Identity()
	env["SOPS_AGE_KEY"] = fromEnv.String()
	keysTxt, _ := age.GenerateX25519Identity()
	write(t, filepath.Join(home, ".config", "sops", "age", "keys.txt"), keysTxt.String()+"\n")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(home, ".ssh", "id_ed25519"), string(pem.EncodeToMemory(block)))
	locked, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(home, ".ssh", "id_rsa"), string(pem.EncodeToMemory(locked)))

	var notes []string
	ids, err := FindIdentities(nil, e, func(n string) { notes = append(notes, n) })
	if err != nil {
		t.Fatal(err)
	}
	// SOPS_AGE_KEY, keys.txt, and the ssh key with its ssh-to-age form.
	if len(ids) != 4 {
		t.Errorf("got %d identities, want 4", len(ids))
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "id_rsa") {
		t.Errorf("notes %q, want one about the passphrase-protected id_rsa", notes)
	}

	env["SOPS_AGE_KEY_CMD"] = "cat " + filepath.Join(home, ".config", "sops", "age", "keys.txt")
	if ids, err := FindIdentities(nil, e, func(string) {}); err != nil || len(ids) != 5 {
		t.Errorf("with $SOPS_AGE_KEY_CMD: %d identities, %v; want 5", len(ids), err)
	}
	env["SOPS_AGE_KEY_CMD"] = "exit 3"
	if _, err := FindIdentities(nil, e, func(string) {}); err == nil || !strings.Contains(err.Error(), "SOPS_AGE_KEY_CMD") {
		t.Errorf("a failing $SOPS_AGE_KEY_CMD: %v", err)
	}
	delete(env, "SOPS_AGE_KEY_CMD")

	env["SOPS_AGE_KEY_FILE"] = filepath.Join(home, "missing")
	if _, err := FindIdentities(nil, e, noNotes); err == nil {
		t.Error("a missing $SOPS_AGE_KEY_FILE was accepted")
	}
	delete(env, "SOPS_AGE_KEY_FILE")
	if _, err := FindIdentities([]string{filepath.Join(home, ".ssh", "id_rsa")}, e, func(string) {}); err == nil {
		t.Error("an unusable -i identity was accepted")
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
