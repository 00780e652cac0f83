package sops

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/secretd/secretd/internal/testenv"
	"github.com/secretd/secretd/manifest"
)

type sealEnv struct {
	sops, dir string
	ids       []age.Identity
	recipient string
	env       []string
}

func newSealEnv(t *testing.T) *sealEnv {
	t.Helper()
	e := &sealEnv{sops: testenv.Tool(t, "sops", "go install github.com/getsops/sops/v3/cmd/sops@v3.12.2"), dir: t.TempDir()}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e.ids = []age.Identity{id}
	e.recipient = id.Recipient().String()
	keyFile := filepath.Join(e.dir, "keys.txt")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.dir, "SOPS_AGE_KEY_FILE=" + keyFile}
	return e
}

func (e *sealEnv) run(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(e.sops, args...)
	cmd.Env, cmd.Dir = e.env, e.dir
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sops %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

func (e *sealEnv) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The plaintexts cover nested keys, lists, every scalar type, unicode, newlines, empty values,
// comments and _unencrypted keys.
var sealCases = []struct {
	name, format, ext string
	plain             string
	settings          Settings
}{
	{"yaml", manifest.FormatYAML, "yaml", "# head comment\na: hello\nb:\n    c: 1\n    d:\n        - x\n        - 2.5\n        - true\n    # inner\n    e_unencrypted: plain\n    f: \"007\"\nempty: \"\"\n\"n\": null\nmulti: |-\n    line1\n    lïne2 ✓\nwhen: 2024-01-02T03:04:05Z\n", Settings{}},
	{"yaml-empty", manifest.FormatYAML, "yaml", "{}\n", Settings{}},
	{"yaml-multidoc", manifest.FormatYAML, "yaml", "a: 1\n---\nb: two\n", Settings{}},
	{"yaml-mac-only-encrypted", manifest.FormatYAML, "yaml", "password: two\nuser: admin\nport: 22\n", Settings{EncryptedRegex: "^password$", MACOnlyEncrypted: true}},
	{"json", manifest.FormatJSON, "json", "{\n\t\"a\": \"x\\ny <&>\",\n\t\"b\": {\n\t\t\"c\": 1.5,\n\t\t\"l\": [\n\t\t\t1,\n\t\t\t\"ünï\",\n\t\t\tfalse,\n\t\t\tnull\n\t\t]\n\t},\n\t\"k_unencrypted\": 3\n}\n", Settings{}},
	{"dotenv", manifest.FormatDotenv, "env", "A=1\n# a comment\nB=two\\nlines\nEMPTY=\n", Settings{}},
	{"ini", manifest.FormatINI, "ini", "toplevel = 1\n[sec]\nk = v\nlonger_key = two\nüni = ✓ x\n\n[other]\nx=y\n", Settings{}},
	{"binary", manifest.FormatBinary, "bin", "bin\x00ary\nbytes ✓", Settings{}},
}

func sopsArgs(format, ext string) []string {
	if format == manifest.FormatBinary {
		return []string{"--input-type", "binary", "--output-type", "binary"}
	}
	return nil
}

// encryptArgs are the sops -e flags for settings.
func encryptArgs(s Settings) []string {
	var args []string
	if s.EncryptedRegex != "" {
		args = append(args, "--encrypted-regex", s.EncryptedRegex)
	}
	if s.MACOnlyEncrypted {
		args = append(args, "--mac-only-encrypted")
	}
	return args
}

// TestSealReadBySops: what Seal writes, sops decrypts to the same plaintext, and Open reads
// back.
func TestSealReadBySops(t *testing.T) {
	e := newSealEnv(t)
	for _, c := range sealCases {
		t.Run(c.name, func(t *testing.T) {
			o, err := New(c.format, c.settings)
			if err != nil {
				t.Fatal(err)
			}
			enc, err := o.Seal([]byte(c.plain), []string{e.recipient}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			p := e.write(t, "sealed."+c.ext, enc)
			got := e.run(t, nil, append(append([]string{"-d"}, sopsArgs(c.format, c.ext)...), p)...)
			want := e.sopsRoundTrip(t, c.format, c.ext, c.plain)
			if !bytes.Equal(got, want) {
				t.Errorf("sops -d differs from sops' own round trip:\n%s\n---\n%s", got, want)
			}
			back, err := Open(enc, e.ids)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back.Plain, want) {
				t.Errorf("Open differs from sops' own round trip")
			}
			// Sealing the unchanged plaintext again changes only lastmodified and the MAC.
			again, err := back.Seal(back.Plain, []string{e.recipient}, time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if a, b := encryptedValues(enc), encryptedValues(again); !slices.Equal(a, b) {
				t.Errorf("re-sealing unchanged plaintext changed ciphertexts")
			}
		})
	}
}

// TestOpenSopsFiles: files sops encrypts, Open decrypts as sops -d does, and an edit of one
// value keeps every other value's ciphertext, as `sops edit` does.
func TestOpenSopsFiles(t *testing.T) {
	e := newSealEnv(t)
	for _, c := range sealCases {
		if c.plain == "" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			src := e.write(t, "plain."+c.ext, []byte(c.plain))
			enc := e.run(t, nil, append(append(append([]string{"-e", "--age", e.recipient}, encryptArgs(c.settings)...), sopsArgs(c.format, c.ext)...), src)...)
			o, err := Open(enc, e.ids)
			if err != nil {
				t.Fatal(err)
			}
			want := e.run(t, nil, append(append([]string{"-d"}, sopsArgs(c.format, c.ext)...), e.write(t, "enc."+c.ext, enc))...)
			if !bytes.Equal(o.Plain, want) {
				t.Errorf("Open differs from sops -d:\n%s\n---\n%s", o.Plain, want)
			}
			edited := bytes.Replace(o.Plain, []byte("two"), []byte("three"), 1)
			out, err := o.Seal(edited, []string{e.recipient}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			kept := encryptedValues(out)
			changedValues := 0
			for _, v := range encryptedValues(enc) {
				if !strings.Contains(string(out), v) {
					changedValues++
				}
			}
			if want := strings.Count(string(o.Plain), "two"); changedValues != want {
				t.Errorf("%d ciphertexts changed, want %d (the edited value only)", changedValues, want)
			}
			if len(kept) == 0 && c.format != manifest.FormatBinary && c.name != "yaml-empty" {
				t.Fatal("no encrypted values written")
			}
			p := e.write(t, "edited."+c.ext, out)
			got := e.run(t, nil, append(append([]string{"-d"}, sopsArgs(c.format, c.ext)...), p)...)
			if !bytes.Equal(got, edited) {
				t.Errorf("sops -d of the edited file differs from the edit")
			}
		})
	}
}

// sopsRoundTrip is what sops -d prints for plain once sops -e encrypted it.
func (e *sealEnv) sopsRoundTrip(t *testing.T, format, ext, plain string) []byte {
	t.Helper()
	src := e.write(t, "roundtrip."+ext, []byte(plain))
	enc := e.run(t, nil, append(append([]string{"-e", "--age", e.recipient}, sopsArgs(format, ext)...), src)...)
	return e.run(t, nil, append(append([]string{"-d"}, sopsArgs(format, ext)...), e.write(t, "roundtrip-enc."+ext, enc))...)
}

var encValue = regexp.MustCompile(`ENC\[AES256_GCM,[^\]]*\]`)

// encryptedValues lists the encrypted values of every document, not the MACs.
func encryptedValues(data []byte) []string {
	var out []string
	for _, loc := range encValue.FindAllIndex(data, -1) {
		lineStart := bytes.LastIndexByte(data[:loc[0]], '\n') + 1
		if !bytes.Contains(data[lineStart:loc[0]], []byte("mac")) {
			out = append(out, string(data[loc[0]:loc[1]]))
		}
	}
	return out
}

// withoutMetadata cuts the metadata, which is last in every format sops writes.
func withoutMetadata(data []byte) []byte {
	for _, marker := range []string{"\nsops:\n", "\n\t\"sops\": {", "\nsops_", "\n[sops]\n", "sops:\n"} {
		if i := bytes.Index(data, []byte(marker)); i >= 0 {
			return data[:i]
		}
	}
	return data
}

// TestUpdateKeys: re-wrapping keeps values, MAC and lastmodified; sops decrypts the result with
// the new key, and `sops updatekeys` reads what we wrote.
func TestUpdateKeys(t *testing.T) {
	e := newSealEnv(t)
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	o, err := New(manifest.FormatYAML, Settings{EncryptedRegex: "^(password|token)$"})
	if err != nil {
		t.Fatal(err)
	}
	plain := "password: hunter2\nuser: admin\n"
	enc, err := o.Seal([]byte(plain), []string{e.recipient}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	same, changed, err := UpdateKeys(enc, e.ids, []string{e.recipient}, nil)
	if err != nil || changed || !bytes.Equal(same, enc) {
		t.Fatalf("unchanged recipients rewrote the file (changed %v, err %v)", changed, err)
	}
	out, changed, err := UpdateKeys(enc, e.ids, []string{e.recipient, other.Recipient().String()}, nil)
	if err != nil || !changed {
		t.Fatalf("UpdateKeys: changed %v, err %v", changed, err)
	}
	if !bytes.Equal(withoutMetadata(out), withoutMetadata(enc)) {
		t.Error("values changed")
	}
	for _, line := range []string{"lastmodified", "mac:"} {
		if lineWith(enc, line) != lineWith(out, line) {
			t.Errorf("%s changed", line)
		}
	}
	if _, err := Open(out, []age.Identity{other}); err != nil {
		t.Fatalf("the added recipient cannot open the file: %v", err)
	}
	p := e.write(t, "rekeyed.yaml", out)
	if got := e.run(t, nil, "-d", p); string(got) != plain {
		t.Error("sops -d of the rekeyed file differs")
	}
	// sops updatekeys, driven by a .sops.yaml naming only the new key, reads our file.
	e.write(t, ".sops.yaml", []byte("creation_rules:\n  - age: "+other.Recipient().String()+"\n"))
	e.run(t, nil, "updatekeys", "-y", p)
	back, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := Recipients(back); err != nil || len(r) != 1 || r[0] != other.Recipient().String() {
		t.Errorf("after sops updatekeys: recipients %v, err %v", r, err)
	}
}

func lineWith(data []byte, s string) string {
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestOpenWrittenBySops: files the real sops wrote (testdata/written, no sops needed) open to
// what `sops -d` printed, and sealing the plaintext unchanged reproduces every value and comment
// ciphertext sops wrote, as `sops edit` would.
func TestOpenWrittenBySops(t *testing.T) {
	keys, err := os.ReadFile("testdata/written/key.txt")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(keys))
	if err != nil {
		t.Fatal(err)
	}
	recipient := ids[0].(*age.X25519Identity).Recipient().String()
	for _, ext := range []string{"yaml", "json", "env", "ini", "bin"} {
		t.Run(ext, func(t *testing.T) {
			enc, err := os.ReadFile("testdata/written/sops." + ext)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile("testdata/written/" + ext + ".plain")
			if err != nil {
				t.Fatal(err)
			}
			o, err := Open(enc, ids)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(o.Plain, want) {
				t.Errorf("Open differs from sops -d (%d bytes, want %d)", len(o.Plain), len(want))
			}
			again, err := o.Seal(o.Plain, []string{recipient}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if a, b := encryptedValues(enc), encryptedValues(again); !slices.Equal(a, b) || len(a) == 0 {
				t.Errorf("sealing unchanged plaintext changed ciphertexts (%d values, want %d)", len(b), len(a))
			}
			if !bytes.Equal(withoutMetadata(enc), withoutMetadata(again)) {
				t.Errorf("sealing unchanged plaintext changed the document around its values")
			}
			if _, err := Decrypt(again, ids); err != nil {
				t.Errorf("reading back: %v", err)
			}
		})
	}
}

func valuesOnly(values []string) []string {
	return slices.DeleteFunc(values, func(v string) bool { return strings.HasSuffix(v, "type:comment]") })
}

// FuzzSealOpen seals arbitrary plaintext of every format and opens the result: whatever is
// accepted must open to a plaintext that seals again to the same values, so an edit that
// changes nothing changes no value's ciphertext.
func FuzzSealOpen(f *testing.F) {
	for _, c := range sealCases {
		f.Add(c.format, []byte(c.plain))
	}
	f.Add(manifest.FormatYAML, []byte("a: &x {b: [1, 'two', 3.0, ~, 2001-12-14t21:59:43.10-05:00]}\nc: *x\n"))
	id, err := age.GenerateX25519Identity()
	if err != nil {
		f.Fatal(err)
	}
	recipients, ids := []string{id.Recipient().String()}, []age.Identity{id}
	f.Fuzz(func(t *testing.T, format string, plain []byte) {
		if format == manifest.FormatINI {
			// INI is laid out by structured's INI writer, whose quoting cannot spell every
			// value (a lone `"""`); that is its own fuzzing's business.
			return
		}
		o, err := New(format, Settings{})
		if err != nil {
			return
		}
		enc, err := o.Seal(plain, recipients, time.Now())
		if err != nil {
			return
		}
		back, err := Open(enc, ids)
		if err != nil {
			t.Fatalf("a sealed %s file does not open: %v", format, err)
		}
		again, err := back.Seal(back.Plain, recipients, time.Now())
		if err != nil {
			t.Fatalf("an opened %s plaintext does not seal: %v", format, err)
		}
		// yaml.v3 may move or drop a comment in an odd place between two writes: values only.
		if a, b := valuesOnly(encryptedValues(enc)), valuesOnly(encryptedValues(again)); !slices.Equal(a, b) {
			t.Fatalf("re-sealing an opened %s plaintext changed ciphertexts", format)
		}
	})
}

// countingIdentity counts the stanzas it is asked to unwrap.
type countingIdentity struct {
	age.Identity
	calls int
}

func (c *countingIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	c.calls++
	return c.Identity.Unwrap(stanzas)
}

// TestOpenUnwrapsOnce: Open asks the identity for the data key once, so a passphrase, a PIN or
// a hardware key's touch is asked for once per file.
func TestOpenUnwrapsOnce(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	o, err := New(manifest.FormatYAML, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := o.Seal([]byte("a: b\n"), []string{id.Recipient().String()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingIdentity{Identity: id}
	opened, err := Open(enc, []age.Identity{counting})
	if err != nil {
		t.Fatal(err)
	}
	opened.Close()
	if counting.calls != 1 {
		t.Errorf("Open unwrapped the data key %d times, want 1", counting.calls)
	}
}

// TestSealErrorsQuoteNoPlaintext: a plaintext that cannot be encrypted gets an error that
// quotes none of it, not even an anchor's name.
func TestSealErrorsQuoteNoPlaintext(t *testing.T) {
	for _, plain := range []string{"a: *hunter2\n", "a: &hunter2 [*hunter2]\n"} {
		o, err := New(manifest.FormatYAML, Settings{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = o.Seal([]byte(plain), []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}, time.Now())
		if err == nil {
			t.Fatal("Seal accepted an unresolvable anchor")
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error quotes the plaintext: %v", err)
		}
	}
}
