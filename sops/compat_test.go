package sops

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"go.uber.org/zap"

	"github.com/secretd/secretd/identity"
)

// The files under testdata/compat were encrypted by the real sops CLI and what it prints for
// them recorded beside them (testdata/compat/gen.sh regenerates both); secretd must print the
// same bytes.

const compatDir = "testdata/compat"

// compatIDs parses the throwaway age keys of testdata/compat/keys.
func compatIDs(t *testing.T, names ...string) []age.Identity {
	t.Helper()
	var ids []age.Identity
	for _, n := range names {
		parsed, err := age.ParseIdentities(bytes.NewReader(readFile(t, filepath.Join(compatDir, "keys", n+".key"))))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, parsed...)
	}
	return ids
}

type compatCase struct {
	file, format, key, want string
	// bare: secretd leaves out the newline sops' YAML store prints after a number, boolean or
	// null, so that the value reads the same in a template.
	bare bool
}

// compatCases reads testdata/compat/cases: file, sops type, key ("-" for the whole file).
func compatCases(t *testing.T) []compatCase {
	t.Helper()
	var out []compatCase
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, filepath.Join(compatDir, "cases"))))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		c := compatCase{file: f[0], format: f[1], key: f[2], bare: len(f) > 4 && f[4] == "bare"}
		c.want = c.file + "." + c.format + "." + strings.ReplaceAll(c.key, "/", "_")
		if c.key == "-" {
			c.key, c.want = "", c.file+"."+c.format+".whole"
		}
		out = append(out, c)
	}
	return out
}

func TestSameBytesAsSopsCLI(t *testing.T) {
	ids := compatIDs(t, "a", "b")
	for _, c := range compatCases(t) {
		t.Run(c.want, func(t *testing.T) {
			data := readFile(t, filepath.Join(compatDir, "enc", c.file))
			doc, err := Decrypt(data, ids)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if doc, err = As(doc, c.format); err != nil {
				t.Fatal(err)
			}
			got, err := doc.Value(c.key)
			if err != nil {
				t.Fatalf("Value(%q): %v", c.key, err)
			}
			want := readFile(t, filepath.Join(compatDir, "want", c.want))
			if c.bare {
				want = bytes.TrimSuffix(want, []byte("\n"))
			}
			sameBytes(t, "sops --decrypt", got, want)
		})
	}
}

// Key groups hold Shamir shares of the data key: shamir_threshold of them recover it, fewer
// do not, whichever groups they are.
func TestShamirKeyGroups(t *testing.T) {
	for _, c := range []struct {
		file string
		keys []string
		ok   bool
	}{
		{"shamir2of2.yaml", []string{"a", "b"}, true},
		{"shamir2of2.yaml", []string{"a"}, false},
		{"shamir2of2.yaml", []string{"b", "c"}, false},
		{"shamir2of3.yaml", []string{"a", "b"}, true},
		{"shamir2of3.yaml", []string{"a", "c"}, true},
		{"shamir2of3.yaml", []string{"b", "c"}, true},
		{"shamir2of3.yaml", []string{"a", "b", "c"}, true},
		{"shamir2of3.yaml", []string{"c"}, false},
	} {
		name := c.file + "/" + strings.Join(c.keys, "+")
		t.Run(name, func(t *testing.T) {
			data := readFile(t, filepath.Join(compatDir, "enc", c.file))
			doc, err := Decrypt(data, compatIDs(t, c.keys...))
			if !c.ok {
				if err == nil || !strings.Contains(err.Error(), "2 of them are needed") {
					t.Fatalf("Decrypt with too few groups: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			got, err := doc.Value("db/password")
			if err != nil {
				t.Fatal(err)
			}
			want := readFile(t, filepath.Join(compatDir, "want", c.file+".yaml.db_password"))
			if !bytes.Equal(got, want) {
				t.Error("wrong plaintext")
			}
		})
	}
	// Two copies of one group's share are refused, not combined into a wrong key.
	f, err := loadSops(readFile(t, filepath.Join(compatDir, "enc", "shamir2of2.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	md, err := parseMetadata(f.meta)
	if err != nil {
		t.Fatal(err)
	}
	md.groups[1] = md.groups[0]
	if _, err := unwrapDataKey(md, keys{age: compatIDs(t, "a")}); err == nil {
		t.Error("two copies of one share were combined")
	}
}

// sops-nix's sops-install-secrets wrote the files under testdata/compat/sops-nix for the same
// sops files: secretd writes the same bytes, and reads the values sops-nix refuses (numbers,
// maps, nested JSON keys; see the README) rather than failing.
func TestSameBytesAsSopsNix(t *testing.T) {
	ids := compatIDs(t, "a", "b")
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, filepath.Join(compatDir, "sops-nix", "cases"))))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		file, format, key := f[0], f[1], f[2]
		ids, pgp := ids, []PGPIdentity(nil)
		if len(f) > 3 && f[3] == "rsa-as-pgp" {
			ids, pgp = nil, rsaAsPGP(t)
		}
		name := file + "." + format + "." + strings.ReplaceAll(key, "/", "_")
		if key == "-" {
			key, name = "", file+"."+format+".whole"
		}
		t.Run(name, func(t *testing.T) {
			doc, err := Decrypt(readFile(t, filepath.Join(compatDir, "enc", file)), ids, pgp...)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if doc, err = As(doc, format); err != nil {
				t.Fatal(err)
			}
			got, err := doc.Value(key)
			if err != nil {
				t.Fatalf("Value(%q): %v", key, err)
			}
			want, err := os.ReadFile(filepath.Join(compatDir, "sops-nix", name))
			if errors.Is(err, fs.ErrNotExist) {
				if _, err := os.Stat(filepath.Join(compatDir, "sops-nix", name+".error")); err != nil {
					t.Fatalf("no sops-nix output recorded: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sameBytes(t, "sops-nix", got, want)
		})
	}
}

// Files encrypted by sops to OpenPGP keys open with the host's RSA key used as an OpenPGP key
// (its fingerprint is the one sops lists) and with a GnuPG home through gpg, with no age key.
func TestPGPRecipients(t *testing.T) {
	rsa := rsaAsPGP(t)
	sshFile := readFile(t, filepath.Join(compatDir, "enc", "pgp-ssh.yaml"))
	if fp := rsa[0].(*identity.PGPKey).Fingerprint(); !bytes.Contains(sshFile, []byte("fp: "+fp+"\n")) {
		t.Errorf("the file is not encrypted to %s, the RSA key's OpenPGP fingerprint", fp)
	}
	open := func(t *testing.T, file string, pgp ...PGPIdentity) {
		t.Helper()
		doc, err := Decrypt(readFile(t, filepath.Join(compatDir, "enc", file)), nil, pgp...)
		if err != nil {
			t.Fatalf("Decrypt: %v", err)
		}
		got, err := doc.Value("db/password")
		if err != nil {
			t.Fatal(err)
		}
		sameBytes(t, file, got, readFile(t, filepath.Join(compatDir, "want", file+".yaml.db_password")))
	}
	t.Run("ssh-rsa", func(t *testing.T) { open(t, "pgp-ssh.yaml", rsa[0]) })
	t.Run("gnupg-home", func(t *testing.T) {
		home := gnupgHome(t)
		open(t, "pgp-gnupg.yaml", rsa[0], home)
		if _, err := Decrypt(sshFile, nil, home); err == nil || !strings.Contains(err.Error(), "PGP "+rsa[0].(*identity.PGPKey).Fingerprint()) {
			t.Errorf("a file for another OpenPGP key: %v", err)
		}
	})
}

// rsaAsPGP loads testdata/compat/keys/ssh_host_rsa_key as the daemon does: its one OpenPGP key.
func rsaAsPGP(t *testing.T) []PGPIdentity {
	t.Helper()
	set, err := identity.Load([]string{filepath.Join(compatDir, "keys", "ssh_host_rsa_key")}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if len(set.PGPKeys()) != 1 {
		t.Fatalf("%d OpenPGP keys from one RSA key", len(set.PGPKeys()))
	}
	return []PGPIdentity{set.PGPKeys()[0]}
}

// gnupgHome imports testdata/compat/keys/gnupg.asc into a new GnuPG home.
func gnupgHome(t *testing.T) identity.GnuPGHome {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gpg is not on PATH")
		}
		t.Skip("gpg is not on PATH (Debian: gnupg)")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", dir, "--kill", "gpg-agent").Run() })
	if out, err := exec.Command("gpg", "--homedir", dir, "--batch", "--quiet", "--import", filepath.Join(compatDir, "keys", "gnupg.asc")).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v: %s", err, out)
	}
	return identity.GnuPGHome(dir)
}

// A JSON file read as YAML keeps refusing what sops does not authenticate.
func TestJSONAsYAMLKeepsRefusals(t *testing.T) {
	doc, err := Decrypt(readFile(t, filepath.Join(compatDir, "enc", "data.json")), compatIDs(t, "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"json", "yaml"} {
		d, err := As(doc, format)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Value("list/1/y"); err == nil {
			t.Errorf("%s: a lookup through a list index was accepted", format)
		}
	}
}
