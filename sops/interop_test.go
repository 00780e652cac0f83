package sops

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"go.uber.org/zap"

	"github.com/secretd/secretd/identity"
	"github.com/secretd/secretd/internal/interop"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hostIdentities loads the corpus' ssh host keys the way the daemon does.
func hostIdentities(t testing.TB, dir string) []age.Identity {
	t.Helper()
	set, err := identity.Load([]string{
		filepath.Join(dir, "keys", "ssh_host_ed25519_key"),
		filepath.Join(dir, "keys", "ssh_host_rsa_key"),
	}, zap.NewNop())
	if err != nil {
		t.Fatalf("loading host keys: %v", err)
	}
	return set.Identities()
}

// nativeIdentities parses the corpus' native age identity file.
func nativeIdentities(t testing.TB, dir string) []age.Identity {
	t.Helper()
	ids, err := age.ParseIdentities(bytes.NewReader(readFile(t, filepath.Join(dir, "keys", "age.key"))))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// sameBytes compares without ever printing plaintext.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s: plaintext mismatch (got %d bytes, want %d bytes)", what, len(got), len(want))
	}
}

func TestInteropCorpus(t *testing.T) {
	interop.Each(t, func(t *testing.T, dir string) {
		ids := hostIdentities(t, dir)
		enc := func(name string) []byte { return readFile(t, filepath.Join(dir, "enc", name)) }
		expected := func(name string) []byte { return readFile(t, filepath.Join(dir, "expected", name)) }

		cases := []struct {
			file, format, key, expected string
		}{
			{"secrets.sops.yaml", manifest.FormatYAML, "github/oauth_token", "yaml.github.oauth_token"},
			{"secrets.sops.yaml", manifest.FormatYAML, "gitlab/oauth_token", "yaml.gitlab.oauth_token"},
			{"secrets.sops.yaml", manifest.FormatYAML, "tailscale/authkey", "yaml.tailscale.authkey"},
			{"secrets.sops.yaml", manifest.FormatYAML, "guest_accounts.json", "yaml.guest_accounts.json"},
			{"secrets.sops.yaml", manifest.FormatYAML, "npmrc", "yaml.npmrc"},
			{"secrets.sops.yaml", manifest.FormatYAML, "number", "yaml.number"},
			{"secrets.sops.yaml", manifest.FormatYAML, "flag", "yaml.flag"},
			{"secrets.sops.json", manifest.FormatJSON, "api_key", "json.api_key"},
			{"secrets.sops.json", manifest.FormatJSON, "db/password", "json.db.password"},
			{"app.sops.env", manifest.FormatDotenv, "DB_PASSWORD", "dotenv.DB_PASSWORD"},
			{"app.sops.ini", manifest.FormatINI, "", "ini.whole"},
			{"blob.sops.json", manifest.FormatBinary, "", "sops-binary.blob"},
		}
		docs := map[string]*structured.Document{}
		for _, c := range cases {
			t.Run(c.expected, func(t *testing.T) {
				data := enc(c.file)
				format, ok := Detect(data)
				if !ok || format != c.format {
					t.Fatalf("Detect(%s) = %q, %v; want %q", c.file, format, ok, c.format)
				}
				if err := HasKey(data, c.key); err != nil {
					t.Fatalf("HasKey(%s, %q): %v", c.file, c.key, err)
				}
				doc := docs[c.file]
				if doc == nil {
					var err error
					if doc, err = Decrypt(data, ids); err != nil {
						t.Fatalf("Decrypt(%s): %v", c.file, err)
					}
					docs[c.file] = doc
				}
				got, err := doc.Value(c.key)
				if err != nil {
					t.Fatalf("Value(%q): %v", c.key, err)
				}
				sameBytes(t, c.file+" "+c.key, got, expected(c.expected))
			})
		}
	})
}

func TestInteropMany(t *testing.T) {
	interop.Each(t, func(t *testing.T, dir string) {
		data := readFile(t, filepath.Join(dir, "enc", "many.sops.yaml"))
		doc, err := Decrypt(data, hostIdentities(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(filepath.Join(dir, "expected", "many"))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 300 {
			t.Fatalf("expected/many has %d files, want 300", len(entries))
		}
		for _, e := range entries {
			got, err := doc.Value(e.Name())
			if err != nil {
				t.Errorf("Value(%q): %v", e.Name(), err)
				continue
			}
			sameBytes(t, e.Name(), got, readFile(t, filepath.Join(dir, "expected", "many", e.Name())))
		}
	})
}

func TestInteropTamperedFilesAreRefused(t *testing.T) {
	interop.Each(t, func(t *testing.T, dir string) {
		ids := hostIdentities(t, dir)
		for file, wantInError := range map[string]string{
			"tampered-mac.sops.json":  "MAC",
			"tampered-swap.sops.json": "failed authentication",
		} {
			t.Run(file, func(t *testing.T) {
				doc, err := Decrypt(readFile(t, filepath.Join(dir, "enc", file)), ids)
				if err == nil {
					t.Fatal("tampered file decrypted without error")
				}
				if doc != nil {
					t.Error("a document was returned along with the error")
				}
				if !strings.Contains(err.Error(), wantInError) {
					t.Errorf("error %q does not mention %q", err, wantInError)
				}
			})
		}
	})
}

func TestInteropWrongIdentity(t *testing.T) {
	interop.Each(t, func(t *testing.T, dir string) {
		data := readFile(t, filepath.Join(dir, "enc", "secrets.sops.yaml"))
		_, err := Decrypt(data, nativeIdentities(t, dir))
		if err == nil {
			t.Fatal("decrypted with an identity that is not a recipient")
		}
		recipient := strings.TrimSpace(string(readFile(t, filepath.Join(dir, "keys", "ssh_host_ed25519_key.age-recipient"))))
		if !strings.Contains(err.Error(), recipient) {
			t.Errorf("error %q does not list the file's recipient %s", err, recipient)
		}
		if _, err := Decrypt(data, nil); err == nil {
			t.Fatal("decrypted without identities")
		}
	})
}

func TestInteropAgeFilesAreNotSops(t *testing.T) {
	interop.Each(t, func(t *testing.T, dir string) {
		entries, err := os.ReadDir(filepath.Join(dir, "enc"))
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".age") {
				continue
			}
			checked++
			data := readFile(t, filepath.Join(dir, "enc", e.Name()))
			if format, ok := Detect(data); ok {
				t.Errorf("Detect(%s) = %q, true; want not a sops file", e.Name(), format)
			}
			if _, err := Decrypt(data, nil); err == nil || !strings.Contains(err.Error(), "not a sops") {
				t.Errorf("Decrypt(%s) error = %v; want a not-a-sops-file error", e.Name(), err)
			}
		}
		if checked == 0 {
			t.Fatal("no .age files in the corpus")
		}
	})
}

func TestInteropHasKeyMissing(t *testing.T) {
	interop.Each(t, func(t *testing.T, dir string) {
		for file, key := range map[string]string{
			"secrets.sops.yaml": "github/nope",
			"secrets.sops.json": "db/nope",
			"app.sops.env":      "NOPE",
			"app.sops.ini":      "database/nope",
			"blob.sops.json":    "data",
			"many.sops.yaml":    "k301",
		} {
			err := HasKey(readFile(t, filepath.Join(dir, "enc", file)), key)
			if !errors.Is(err, structured.ErrKeyNotFound) {
				t.Errorf("HasKey(%s, %q) = %v; want a key-not-found error", file, key, err)
			}
		}
	})
}
