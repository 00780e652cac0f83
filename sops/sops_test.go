package sops

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// nestedTree exercises maps, lists, every scalar type and cleartext values.
func nestedTree() *structured.Node {
	return obj(
		"github", obj("oauth_token", str("gho_token"), "user_unencrypted", str("octocat")),
		"multi", str("line one\nline two\n"),
		"count", num(42),
		"ratio", flt("0.25"),
		"enabled", boolean(true),
		"disabled", boolean(false),
		"empty", str(""),
		"nothing", null(),
		"guest_accounts.json", str(`[{"user":"a"}]`),
		"servers", list(str("alpha"), obj("host", str("beta"), "port", num(22))),
		"port_unencrypted", num(8080),
		"public_unencrypted", obj("url", str("https://example.org"), "ok", boolean(true), "pi", flt("3.5")),
	)
}

type valueCase struct{ key, want string }

var nestedValues = []valueCase{
	{"github/oauth_token", "gho_token"},
	{"github/user_unencrypted", "octocat"},
	{"multi", "line one\nline two\n"},
	{"count", "42"},
	{"ratio", "0.25"},
	{"enabled", "true"},
	{"disabled", "false"},
	{"empty", ""},
	{"nothing", "null"},
	{"guest_accounts.json", `[{"user":"a"}]`},
	{"servers/0", "alpha"},
	{"servers/1/host", "beta"},
	{"servers/1/port", "22"},
	{"port_unencrypted", "8080"},
	{"public_unencrypted/url", "https://example.org"},
	{"public_unencrypted/ok", "true"},
	{"public_unencrypted/pi", "3.5"},
}

func checkValues(t *testing.T, doc *structured.Document, cases []valueCase) {
	t.Helper()
	asSopsPrints(doc)
	for _, c := range cases {
		got, err := doc.Value(c.key)
		if err != nil {
			t.Errorf("Value(%q): %v", c.key, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("Value(%q): mismatch (got %d bytes, want %d)", c.key, len(got), len(c.want))
		}
	}
}

func decryptSpec(t *testing.T, spec fileSpec) (*structured.Document, error) {
	t.Helper()
	id := mustIdentity(t)
	if spec.recipients == nil {
		spec.recipients = []age.Recipient{id.Recipient()}
	}
	data := sopsFile(t, spec)
	return Decrypt(data, []age.Identity{id})
}

func TestDecryptYAMLAndJSON(t *testing.T) {
	for _, format := range []string{manifest.FormatYAML, manifest.FormatJSON} {
		t.Run(format, func(t *testing.T) {
			id := mustIdentity(t)
			data := sopsFile(t, fileSpec{format: format, roots: []*structured.Node{nestedTree()}, recipients: []age.Recipient{id.Recipient()}})
			if got, ok := Detect(data); !ok || got != format {
				t.Fatalf("Detect = %q, %v", got, ok)
			}
			if bytes.Contains(data, []byte("gho_token")) {
				t.Fatal("plaintext left in the encrypted file")
			}
			if !bytes.Contains(data, []byte("octocat")) {
				t.Fatal("an _unencrypted value was encrypted")
			}
			doc, err := Decrypt(data, []age.Identity{id})
			if err != nil {
				t.Fatal(err)
			}
			if doc.Format() != format {
				t.Errorf("document format %q", doc.Format())
			}
			checkValues(t, doc, nestedValues)
			for _, c := range nestedValues {
				err := HasKey(data, c.key)
				if throughList := strings.HasPrefix(c.key, "servers/"); throughList != errors.Is(err, structured.ErrListIndex) {
					t.Errorf("HasKey(%q): %v", c.key, err)
				}
			}
			if err := HasKey(data, "github/missing"); !errors.Is(err, structured.ErrKeyNotFound) {
				t.Errorf("HasKey(missing) = %v", err)
			}
			if err := HasKey(data, "sops"); !errors.Is(err, structured.ErrKeyNotFound) {
				t.Errorf("the metadata is visible as a key: %v", err)
			}
		})
	}
}

func TestDecryptedMapIsReserialised(t *testing.T) {
	doc, err := decryptSpec(t, fileSpec{format: manifest.FormatYAML, roots: []*structured.Node{nestedTree()}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := asSopsPrints(doc).Value("github")
	if err != nil {
		t.Fatal(err)
	}
	want := "oauth_token: gho_token\nuser_unencrypted: octocat\n"
	if string(got) != want {
		t.Errorf("github map: mismatch (got %d bytes, want %d)", len(got), len(want))
	}

	doc, err = decryptSpec(t, fileSpec{format: manifest.FormatJSON, roots: []*structured.Node{nestedTree()}})
	if err != nil {
		t.Fatal(err)
	}
	got, err = asSopsPrints(doc).Value("servers/1")
	if err != nil {
		t.Fatal(err)
	}
	want = "{\n\t\"host\": \"beta\",\n\t\"port\": 22\n}\n"
	if string(got) != want {
		t.Errorf("servers/1: mismatch (got %d bytes, want %d)", len(got), len(want))
	}
}

func TestDecryptDotenvAndINI(t *testing.T) {
	env := obj("DB_PASSWORD", str("p=ss word"), "MULTI", str("a\nb"), "HOST_unencrypted", str(`"quoted"`), "EMPTY", str(""))
	doc, err := decryptSpec(t, fileSpec{format: manifest.FormatDotenv, roots: []*structured.Node{env}})
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, doc, []valueCase{{"DB_PASSWORD", "p=ss word"}, {"MULTI", "a\nb"}, {"HOST_unencrypted", `"quoted"`}, {"EMPTY", ""}})

	ini := obj(
		"DEFAULT", obj("top", str("level")),
		"database", obj("password", str("s3cret;#x"), "user_unencrypted", str("admin")),
		"other", obj("key", str(" padded ")),
	)
	doc, err = decryptSpec(t, fileSpec{format: manifest.FormatINI, roots: []*structured.Node{ini}})
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, doc, []valueCase{{"top", "level"}, {"database/password", "s3cret;#x"}, {"database/user_unencrypted", "admin"}, {"other/key", " padded "}})
	whole, err := doc.Value("")
	if err != nil {
		t.Fatal(err)
	}
	want := "top = level\n\n[database]\npassword         = `s3cret;#x`\nuser_unencrypted = admin\n\n[other]\nkey = \" padded \"\n"
	if string(whole) != want {
		t.Errorf("whole INI: mismatch (got %d bytes, want %d)", len(whole), len(want))
	}
}

func TestDecryptBinary(t *testing.T) {
	blob := string([]byte{0, 1, 2, 0xff, 0xfe, '\n', 'x'})
	id := mustIdentity(t)
	data := sopsFile(t, fileSpec{format: manifest.FormatBinary, roots: []*structured.Node{str(blob)}, recipients: []age.Recipient{id.Recipient()}})
	if format, ok := Detect(data); !ok || format != manifest.FormatBinary {
		t.Fatalf("Detect = %q, %v", format, ok)
	}
	doc, err := Decrypt(data, []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	got, err := doc.Value("")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != blob {
		t.Errorf("binary: mismatch (got %d bytes, want %d)", len(got), len(blob))
	}
	if err := HasKey(data, ""); err != nil {
		t.Errorf("HasKey(\"\"): %v", err)
	}
}

func TestDecryptMultiDocumentYAML(t *testing.T) {
	doc, err := decryptSpec(t, fileSpec{format: manifest.FormatYAML, roots: []*structured.Node{obj("a", str("first")), obj("a", str("second"))}})
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, doc, []valueCase{{"a", "first"}})
	if len(doc.Roots()) != 2 {
		t.Errorf("%d documents, want 2", len(doc.Roots()))
	}
}

func TestEncryptionRules(t *testing.T) {
	tree := obj(
		"data", obj("password", str("hunter2"), "user", str("root")),
		"stringData", obj("token", str("t0k")),
		"metadata", obj("name", str("app"), "labels", list(str("x"), str("y"))),
		"plain_encrypted", str("enc-by-suffix"),
		"count", num(3),
	)
	all := []valueCase{
		{"data/password", "hunter2"}, {"data/user", "root"}, {"stringData/token", "t0k"},
		{"metadata/name", "app"}, {"metadata/labels/1", "y"}, {"plain_encrypted", "enc-by-suffix"}, {"count", "3"},
	}
	for _, rc := range []struct {
		name, value string
		cleartext   []string // values expected to remain readable in the file
		hidden      []string // values expected to be encrypted
	}{
		{"encrypted_regex", "^(data|stringData)$", []string{"app", "enc-by-suffix"}, []string{"hunter2", "t0k"}},
		{"unencrypted_regex", "^metadata$", []string{"app"}, []string{"hunter2", "enc-by-suffix"}},
		{"encrypted_suffix", "_encrypted", []string{"hunter2", "app"}, []string{"enc-by-suffix"}},
		{"unencrypted_suffix", "name", []string{"app"}, []string{"hunter2", "root"}},
	} {
		for _, macOnly := range []bool{false, true} {
			t.Run(rc.name+map[bool]string{true: "/mac_only_encrypted"}[macOnly], func(t *testing.T) {
				id := mustIdentity(t)
				for _, format := range []string{manifest.FormatYAML, manifest.FormatJSON} {
					spec := fileSpec{format: format, roots: []*structured.Node{tree}, ruleName: rc.name, ruleValue: rc.value,
						macOnlyEncrypted: macOnly, recipients: []age.Recipient{id.Recipient()}}
					data := sopsFile(t, spec)
					for _, s := range rc.cleartext {
						if !bytes.Contains(data, []byte(s)) {
							t.Errorf("%s: a value meant to stay in cleartext was encrypted", format)
						}
					}
					for _, s := range rc.hidden {
						if bytes.Contains(data, []byte(s)) {
							t.Errorf("%s: a value meant to be encrypted is in cleartext", format)
						}
					}
					doc, err := Decrypt(data, []age.Identity{id})
					if err != nil {
						t.Fatalf("%s: %v", format, err)
					}
					checkValues(t, doc, all)
				}
			})
		}
	}
}

func TestSeveralRulesAreRefused(t *testing.T) {
	id := mustIdentity(t)
	data := sopsFile(t, fileSpec{format: manifest.FormatYAML, roots: []*structured.Node{obj("a", str("b"))}, ruleName: "encrypted_regex", ruleValue: "^a$",
		recipients: []age.Recipient{id.Recipient()}, extraMeta: []structured.Entry{{Key: "unencrypted_suffix", Value: str("_x")}}})
	if _, err := Decrypt(data, []age.Identity{id}); err == nil || !strings.Contains(err.Error(), "only one") {
		t.Fatalf("error = %v; want a complaint about several rules", err)
	}
}

// tamper decrypts after edit and expects a refusal mentioning want.
func tamper(t *testing.T, format string, tree *structured.Node, edit func([]byte) []byte, want string) {
	t.Helper()
	id := mustIdentity(t)
	data := sopsFile(t, fileSpec{format: format, roots: []*structured.Node{tree}, recipients: []age.Recipient{id.Recipient()}})
	if _, err := Decrypt(data, []age.Identity{id}); err != nil {
		t.Fatalf("untampered file: %v", err)
	}
	edited := edit(data)
	if bytes.Equal(edited, data) {
		t.Fatal("edit changed nothing")
	}
	doc, err := Decrypt(edited, []age.Identity{id})
	if err == nil {
		t.Fatal("tampered file accepted")
	}
	if doc != nil {
		t.Error("document returned with an error")
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not mention %q", err, want)
	}
}

func TestTamperingIsRefused(t *testing.T) {
	tree := obj("a", str("alpha"), "b", str("bravo"), "note_unencrypted", str("public"), "n", num(7))
	encOf := func(data []byte, key string) string {
		i := bytes.Index(data, []byte(key+": ENC["))
		rest := data[i+len(key)+2:]
		return string(rest[:bytes.IndexByte(rest, ']')+1])
	}
	t.Run("cleartext value changed", func(t *testing.T) {
		tamper(t, manifest.FormatYAML, tree, func(d []byte) []byte {
			return bytes.Replace(d, []byte("public"), []byte("pub1ic"), 1)
		}, "MAC mismatch")
	})
	t.Run("values swapped", func(t *testing.T) {
		tamper(t, manifest.FormatYAML, tree, func(d []byte) []byte {
			a, b := encOf(d, "a"), encOf(d, "b")
			d = bytes.Replace(d, []byte(a), []byte("SWAP"), 1)
			d = bytes.Replace(d, []byte(b), []byte(a), 1)
			return bytes.Replace(d, []byte("SWAP"), []byte(b), 1)
		}, "failed authentication")
	})
	t.Run("key renamed", func(t *testing.T) {
		tamper(t, manifest.FormatYAML, tree, func(d []byte) []byte {
			return bytes.Replace(d, []byte("\nb: ENC"), []byte("\nc: ENC"), 1)
		}, "failed authentication")
	})
	t.Run("value removed", func(t *testing.T) {
		tamper(t, manifest.FormatYAML, tree, func(d []byte) []byte {
			b := encOf(d, "b")
			return bytes.Replace(d, []byte("b: "+b+"\n"), nil, 1)
		}, "MAC mismatch")
	})
	t.Run("lastmodified changed", func(t *testing.T) {
		tamper(t, manifest.FormatYAML, tree, func(d []byte) []byte {
			return bytes.Replace(d, []byte("2026-01-02T03:04:05Z"), []byte("2026-01-02T03:04:06Z"), 1)
		}, "MAC cannot be authenticated")
	})
	t.Run("rule changed so a value reads as cleartext", func(t *testing.T) {
		tamper(t, manifest.FormatYAML, tree, func(d []byte) []byte {
			return bytes.Replace(d, []byte("version: 3.12.2"), []byte("version: 3.12.2\n    unencrypted_regex: ^(a|note_unencrypted)$"), 1)
		}, "MAC mismatch")
	})
	t.Run("encrypted value replaced by cleartext", func(t *testing.T) {
		tamper(t, manifest.FormatYAML, tree, func(d []byte) []byte {
			return bytes.Replace(d, []byte(encOf(d, "a")), []byte("alpha"), 1)
		}, "should be encrypted")
	})
	t.Run("mac removed", func(t *testing.T) {
		tamper(t, manifest.FormatJSON, tree, func(d []byte) []byte {
			i := bytes.Index(d, []byte(`"mac": "`))
			end := bytes.IndexByte(d[i+8:], '"')
			return append(append([]byte{}, d[:i+8]...), d[i+8+end:]...)
		}, "no MAC")
	})
	t.Run("wrong mac", func(t *testing.T) {
		id := mustIdentity(t)
		data := sopsFile(t, fileSpec{format: manifest.FormatJSON, roots: []*structured.Node{tree}, recipients: []age.Recipient{id.Recipient()}, corruptMAC: true})
		if _, err := Decrypt(data, []age.Identity{id}); err == nil || !strings.Contains(err.Error(), "MAC mismatch") {
			t.Fatalf("error = %v; want a MAC mismatch", err)
		}
	})
}

func TestFractionalLastModified(t *testing.T) {
	doc, err := decryptSpec(t, fileSpec{format: manifest.FormatYAML, roots: []*structured.Node{obj("a", str("x"))}, lastModified: "2026-01-02T03:04:05.123456Z"})
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, doc, []valueCase{{"a", "x"}})
}

func TestRecipients(t *testing.T) {
	id := mustIdentity(t)
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	third, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	data := sopsFile(t, fileSpec{format: manifest.FormatYAML, roots: []*structured.Node{obj("a", str("x"))}, recipients: []age.Recipient{other.Recipient(), id.Recipient()}})
	doc, err := Decrypt(data, []age.Identity{id})
	if err != nil {
		t.Fatalf("second recipient: %v", err)
	}
	checkValues(t, doc, []valueCase{{"a", "x"}})

	_, err = Decrypt(data, []age.Identity{third})
	if err == nil {
		t.Fatal("decrypted with a stranger's identity")
	}
	for _, r := range []string{other.Recipient().String(), id.Recipient().String()} {
		if !strings.Contains(err.Error(), r) {
			t.Errorf("error %q does not list recipient %s", err, r)
		}
	}
	if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
		t.Error("error mentions a secret key")
	}
}

func TestOtherKeyTypesAreNamed(t *testing.T) {
	pgp := list(obj("created_at", str("2026-01-01T00:00:00Z"), "enc", str("-----BEGIN PGP MESSAGE-----\n..."), "fp", str("ABCDEF")))
	kms := list(obj("arn", str("arn:aws:kms:eu-west-1:1:key/x"), "enc", str("AQIC"), "created_at", str("2026-01-01T00:00:00Z")))
	for _, format := range []string{manifest.FormatYAML, manifest.FormatDotenv} {
		tree := obj("A", str("x"))
		data := sopsFile(t, fileSpec{format: format, roots: []*structured.Node{tree}, recipients: []age.Recipient{},
			extraMeta: []structured.Entry{{Key: "pgp", Value: pgp}, {Key: "kms", Value: kms}}})
		_, err := Decrypt(data, []age.Identity{mustIdentity(t)})
		if err == nil {
			t.Fatalf("%s: decrypted without a recipient it has a key for", format)
		}
		for _, want := range []string{"PGP ABCDEF", "kms", "age"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not mention %s", format, err, want)
			}
		}
	}
}

func TestKeyGroups(t *testing.T) {
	id := mustIdentity(t)
	// A single key group holding the age key is the same as top-level keys.
	base := sopsFile(t, fileSpec{format: manifest.FormatJSON, roots: []*structured.Node{obj("a", str("x"))}, recipients: []age.Recipient{id.Recipient()}})
	grouped := bytes.Replace(base, []byte(`"age": [`), []byte(`"key_groups": [{"age": [`), 1)
	grouped = bytes.Replace(grouped, []byte("\n\t\t],\n\t\t\"lastmodified\""), []byte("\n\t\t]}],\n\t\t\"lastmodified\""), 1)
	if bytes.Equal(grouped, base) {
		t.Fatal("could not rewrite the file into key groups")
	}
	doc, err := Decrypt(grouped, []age.Identity{id})
	if err != nil {
		t.Fatalf("single key group: %v", err)
	}
	checkValues(t, doc, []valueCase{{"a", "x"}})

	two := bytes.Replace(grouped, []byte(`"key_groups": [{`), []byte(`"key_groups": [{"pgp": [{"fp": "X", "enc": "Y"}]}, {`), 1)
	if _, err := Decrypt(two, []age.Identity{id}); err == nil || !strings.Contains(err.Error(), "Shamir") {
		t.Fatalf("two key groups: error = %v; want a Shamir complaint", err)
	}
}

func TestBadDataKey(t *testing.T) {
	id := mustIdentity(t)
	data := sopsFile(t, fileSpec{format: manifest.FormatYAML, roots: []*structured.Node{obj("a", str("x"))}, recipients: []age.Recipient{id.Recipient()},
		dataKey: append(bytes.Repeat([]byte{7}, 32), 1)})
	if _, err := Decrypt(data, []age.Identity{id}); err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Fatalf("error = %v; want a data key length complaint", err)
	}
}

func TestDetect(t *testing.T) {
	for name, c := range map[string]struct {
		data   string
		format string
	}{
		"plain yaml":             {"a: b\nsops: c\n", ""},
		"yaml sops without mac":  {"a: b\nsops:\n    lastmodified: x\n", ""},
		"plain json":             {`{"a": "b"}`, ""},
		"json sops not a map":    {`{"a": "b", "sops": "x"}`, ""},
		"plain dotenv":           {"A=b\n", ""},
		"plain ini":              {"[a]\nb = c\n", ""},
		"age binary":             {"age-encryption.org/v1\n-> X25519 abc\n", ""},
		"age armored":            {"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n", ""},
		"empty":                  {"", ""},
		"yaml":                   {"a: b\nsops:\n    mac: x\n    lastmodified: y\n", manifest.FormatYAML},
		"json":                   {`{"a": {"b": 1}, "sops": {"mac": "x", "lastmodified": "y"}}`, manifest.FormatJSON},
		"binary":                 {`{"data": "x", "sops": {"mac": "x", "lastmodified": "y"}}`, manifest.FormatBinary},
		"dotenv":                 {"A=b\nsops_mac=x\nsops_lastmodified=y\n", manifest.FormatDotenv},
		"ini":                    {"[a]\nb = c\n[sops]\nmac = x\nlastmodified = y\n", manifest.FormatINI},
		"yaml flow":              {"{a: b, sops: {mac: x, lastmodified: y}}", manifest.FormatYAML},
		"yaml list top level":    {"- sops\n", ""},
		"dotenv with sops value": {"A=sops_mac=x\n", ""},
	} {
		format, ok := Detect([]byte(c.data))
		if ok != (c.format != "") || format != c.format {
			t.Errorf("%s: Detect = %q, %v; want %q", name, format, ok, c.format)
		}
	}
}

func TestCommentRules(t *testing.T) {
	for _, format := range []string{manifest.FormatYAML, manifest.FormatDotenv} {
		for _, rc := range []struct{ rule, value string }{
			{"encrypted_comment_regex", "sops:enc"},
			{"unencrypted_comment_regex", "sops:plain"},
		} {
			t.Run(format+"/"+rc.rule, func(t *testing.T) {
				id := mustIdentity(t)
				tree := obj("first", str("first-value"), "marked", str("marked-value"), "plainmark", str("plainmark-value"), "last", str("last-value"))
				data := sopsFile(t, fileSpec{format: format, roots: []*structured.Node{tree}, recipients: []age.Recipient{id.Recipient()},
					ruleName: rc.rule, ruleValue: rc.value, commentBefore: map[string]string{"marked": " sops:enc", "plainmark": " sops:plain"}})
				encrypted := map[string]bool{"first": true, "marked": true, "plainmark": false, "last": true}
				if rc.rule == "encrypted_comment_regex" {
					encrypted = map[string]bool{"first": false, "marked": true, "plainmark": false, "last": false}
				}
				for key, enc := range encrypted {
					if bytes.Contains(data, []byte(key+"-value")) == enc {
						t.Fatalf("the builder did not apply the rule to %s", key)
					}
				}
				doc, err := Decrypt(data, []age.Identity{id})
				if err != nil {
					t.Fatal(err)
				}
				checkValues(t, doc, []valueCase{{"first", "first-value"}, {"marked", "marked-value"}, {"plainmark", "plainmark-value"}, {"last", "last-value"}})

				// Moving the marker comment changes which values read as encrypted: refused.
				marker := "# sops:enc\n"
				if rc.rule == "unencrypted_comment_regex" {
					marker = "# sops:plain\n"
				}
				moved := bytes.Replace(data, []byte(marker), nil, 1)
				if bytes.Equal(moved, data) {
					t.Fatal("could not remove the marker comment")
				}
				if _, err := Decrypt(moved, []age.Identity{id}); err == nil {
					t.Error("a file whose marker comment was removed decrypted")
				}
			})
		}
	}
}
