package identity_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/ssh"

	"github.com/secretd/secretd/identity"
	"github.com/secretd/secretd/internal/interop"
)

// The recipient files were written by ssh-to-age (shared corpus) or bench/cmd/recipient.
func TestDerivedRecipientMatchesSSHToAge(t *testing.T) {
	interop.Each(t, func(t *testing.T, dir string) {
		pemBytes, err := os.ReadFile(filepath.Join(dir, "keys", "ssh_host_ed25519_key"))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := ssh.ParseRawPrivateKey(pemBytes)
		if err != nil {
			t.Fatal(err)
		}
		key := *raw.(*ed25519.PrivateKey)
		id, err := identity.X25519FromEd25519(key)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(dir, "keys", "ssh_host_ed25519_key.age-recipient"))
		if err != nil {
			t.Fatal(err)
		}
		if got := id.Recipient().String(); got != strings.TrimSpace(string(want)) {
			t.Fatalf("derived recipient %s, ssh-to-age gives %s", got, strings.TrimSpace(string(want)))
		}
	})
}

func decryptWith(t *testing.T, set *identity.Set, file string) ([]byte, error) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var src = bytes.NewReader(data)
	var r interface{ Read([]byte) (int, error) } = src
	if bytes.HasPrefix(data, []byte(armor.Header)) {
		r = armor.NewReader(src)
	}
	out, err := age.Decrypt(r, set.Identities()...)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(out)
	return buf.Bytes(), err
}

func TestEveryKindDecryptsItsFile(t *testing.T) {
	cases := []struct{ key, file, expected, kind string }{
		{"ssh_host_ed25519_key", "token.age", "token", identity.KindSSHEd25519},
		{"ssh_host_rsa_key", "binary.rsa.age", "binary", identity.KindSSHRSA},
		{"age.key", "native-identity.age", "native-identity", identity.KindAgeX25519},
	}
	interop.Each(t, func(t *testing.T, dir string) {
		for _, c := range cases {
			t.Run(c.file, func(t *testing.T) {
				set, err := identity.Load([]string{filepath.Join(dir, "keys", c.key)}, zap.NewNop())
				if err != nil {
					t.Fatal(err)
				}
				got, err := decryptWith(t, set, filepath.Join(dir, "enc", c.file))
				if err != nil {
					t.Fatal(err)
				}
				want, err := os.ReadFile(filepath.Join(dir, "expected", c.expected))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("plaintext mismatch (%d bytes)", len(got))
				}
				used := set.Used()
				if len(used) != 1 || used[0].Kind != c.kind {
					t.Fatalf("used identities %v, want one of kind %s", used, c.kind)
				}
			})
		}
	})
}

func TestMissingPathSkippedWithWarning(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	missing := filepath.Join(t.TempDir(), "absent")
	set, err := identity.Load([]string{missing, interop.Key(t, "ssh_host_ed25519_key")}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Loaded()) != 2 {
		t.Fatalf("loaded %v", set.Loaded())
	}
	if logs.FilterMessage("identity file not found, skipped").Len() != 1 {
		t.Fatalf("no warning for the missing identity: %v", logs.All())
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := write("garbage", "AGE-SECRET-KEY-NOT-REALLY\n", 0o600)
	unknown := write("unknown", "hunter2-not-a-key\n", 0o600)
	empty := write("empty", "# only a comment\n", 0o600)
	cases := map[string]struct {
		paths []string
		want  string
	}{
		"none given":   {nil, "no identity paths"},
		"all missing":  {[]string{filepath.Join(dir, "nope")}, "not found"},
		"malformed":    {[]string{garbage}, "line 1"},
		"unknown line": {[]string{unknown}, "neither an OpenSSH private key nor an age identity"},
		"empty file":   {[]string{empty}, "holds no identity"},
		"passphrase":   {[]string{passphraseKey(t, dir)}, "passphrase-protected"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := identity.Load(c.paths, zap.NewNop())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if strings.Contains(fmtErr(err), "hunter2") {
				t.Fatal("error echoes the file's content")
			}
		})
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func passphraseKey(t *testing.T, dir string) string {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "protected")
	if err := os.WriteFile(p, pemEncode(block.Type, block.Bytes), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnreadableKey(t *testing.T) {
	// root reads anything; an unreadable key is a directory in its place.
	dir := t.TempDir()
	_, err := identity.Load([]string{dir}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %v, want one naming %s", err, dir)
	}
}

func TestWorldReadableKeyWarns(t *testing.T) {
	data, err := os.ReadFile(interop.Key(t, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	if _, err := identity.Load([]string{p}, zap.New(core)); err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessage("identity file is readable by group or others").Len() != 1 {
		t.Fatalf("no warning: %v", logs.All())
	}
}
