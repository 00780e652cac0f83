package sops

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// editedValue builds a sops file of tree, applies edit (which must keep the MAC valid: it only
// touches what sops does not authenticate) and returns what a lookup of key yields, or the
// error of decrypting or looking up.
func editedValue(t *testing.T, format string, tree *structured.Node, edit func([]byte) []byte, key string) ([]byte, error) {
	t.Helper()
	id := mustIdentity(t)
	data := sopsFile(t, fileSpec{format: format, roots: []*structured.Node{tree}, recipients: []age.Recipient{id.Recipient()}})
	edited := edit(data)
	if bytes.Equal(edited, data) {
		t.Fatal("edit changed nothing")
	}
	doc, err := Decrypt(edited, []age.Identity{id})
	if err != nil {
		return nil, err
	}
	return doc.Value(key)
}

// TestEditsThatKeepTheMACCannotMoveValues holds secretd to refusing every edit of a sops file
// that keeps its MAC valid but would make a lookup return a value other than the one encrypted
// at that key: such an edit needs no key, only write access to the file.
func TestEditsThatKeepTheMACCannotMoveValues(t *testing.T) {
	cases := []struct {
		name   string
		format string
		tree   *structured.Node
		edit   func([]byte) []byte
		key    string
		want   string // in the error
	}{
		{
			name:   "list shifted by a prepended empty item",
			format: manifest.FormatYAML,
			tree:   obj("users", list(str("alice-password"), str("bob-password"))),
			edit: func(d []byte) []byte {
				return bytes.Replace(d, []byte("users:\n"), []byte("users:\n    - \"\"\n"), 1)
			},
			key:  "users/1",
			want: "list item by its index",
		},
		{
			name:   "list of maps regrouped",
			format: manifest.FormatYAML,
			tree:   obj("users", list(obj("name", str("alice"), "pw", str("PA")), obj("name", str("bob"), "pw", str("PB")))),
			edit: func(d []byte) []byte {
				// [{name,pw},{name,pw}] -> [{name},{pw,name},{pw}]: values stay in order.
				lines := strings.Split(string(d), "\n")
				var out []string
				for i, l := range lines {
					switch {
					case i == 2: // first pw: starts the second item, before bob's name
						out = append(out, "    - "+strings.TrimSpace(l))
					case i == 3: // bob's name joins it
						out = append(out, "      "+strings.TrimPrefix(strings.TrimSpace(l), "- "))
					case i == 4: // second pw: an item of its own
						out = append(out, "    - "+strings.TrimSpace(l))
					default:
						out = append(out, l)
					}
				}
				return []byte(strings.Join(out, "\n"))
			},
			key:  "users/1/pw", // alice's password once regrouped
			want: "list item by its index",
		},
		{
			name:   "JSON key shadowed by a duplicate",
			format: manifest.FormatJSON,
			tree:   obj("token", str("s3cret"), "other", str("x")),
			edit: func(d []byte) []byte {
				return bytes.Replace(d, []byte("{\n"), []byte("{\n\t\"token\": \"\",\n"), 1)
			},
			key:  "token",
			want: "duplicate key",
		},
		{
			name:   "YAML key shadowed by a duplicate",
			format: manifest.FormatYAML,
			tree:   obj("token", str("s3cret")),
			edit:   func(d []byte) []byte { return append([]byte("token: \"\"\n"), d...) },
			key:    "token",
			want:   "duplicate key",
		},
		{
			name:   "dotenv variable shadowed by a duplicate",
			format: manifest.FormatDotenv,
			tree:   obj("TOKEN", str("s3cret")),
			edit:   func(d []byte) []byte { return append([]byte("TOKEN=\n"), d...) },
			key:    "TOKEN",
			want:   "defined twice",
		},
		{
			name:   "INI section repeated",
			format: manifest.FormatINI,
			tree:   obj("db", obj("password", str("s3cret"))),
			edit:   func(d []byte) []byte { return append([]byte("[db]\npassword =\n"), d...) },
			key:    "db/password",
			want:   "section \"db\" is given twice",
		},
		{
			name:   "key containing / shadowed by a path",
			format: manifest.FormatYAML,
			tree:   obj("app.example.com/token", str("s3cret")),
			edit: func(d []byte) []byte {
				return append([]byte("app.example.com:\n    token: \"\"\n"), d...)
			},
			key:  "app.example.com/token",
			want: "more than one value",
		},
		{
			name:   "text moved across adjacent cleartext values",
			format: manifest.FormatYAML,
			tree:   obj("a_unencrypted", str("abc"), "b_unencrypted", str("def"), "s", str("s3cret")),
			edit: func(d []byte) []byte {
				d = bytes.Replace(d, []byte("a_unencrypted: abc"), []byte("a_unencrypted: ab"), 1)
				return bytes.Replace(d, []byte("b_unencrypted: def"), []byte("b_unencrypted: cdef"), 1)
			},
			key:  "b_unencrypted",
			want: "cleartext",
		},
		{
			name:   "cleartext values swapped between keys",
			format: manifest.FormatYAML,
			tree:   obj("a_unencrypted", str("one"), "s", str("s3cret"), "b_unencrypted", str("two")),
			edit: func(d []byte) []byte {
				d = bytes.Replace(d, []byte("a_unencrypted: one"), []byte("b_unencrypted: one"), 1)
				return bytes.Replace(d, []byte("b_unencrypted: two"), []byte("a_unencrypted: two"), 1)
			},
			key:  "a_unencrypted",
			want: "cleartext",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := editedValue(t, c.format, c.tree, c.edit, c.key)
			if err == nil {
				t.Fatalf("edited file accepted: %q yields %d bytes", c.key, len(got))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

// TestUnambiguousLookupsStillWork keeps what the refusals above must not break: a key with
// "/" that reads one way only, a single cleartext value, a whole list.
func TestUnambiguousLookupsStillWork(t *testing.T) {
	tree := obj("app.example.com/token", str("s3cret"), "servers", list(str("a"), str("b")), "note_unencrypted", str("public"))
	doc, err := decryptSpec(t, fileSpec{format: manifest.FormatYAML, roots: []*structured.Node{tree}})
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, doc, []valueCase{
		{"app.example.com/token", "s3cret"},
		{"servers", "- a\n- b\n"},
		{"note_unencrypted", "public"},
	})
	if _, err := doc.Value(""); err != nil {
		t.Errorf("whole document: %v", err)
	}
	// An explicit [DEFAULT] header names the section the parser starts with.
	id := mustIdentity(t)
	data := sopsFile(t, fileSpec{format: manifest.FormatINI, roots: []*structured.Node{obj("db", obj("password", str("s3cret")))}, recipients: []age.Recipient{id.Recipient()}})
	withDefault := append([]byte("[DEFAULT]\n"), data...)
	if doc, err = Decrypt(withDefault, []age.Identity{id}); err != nil {
		t.Fatalf("INI with an empty [DEFAULT] section: %v", err)
	}
	checkValues(t, doc, []valueCase{{"db/password", "s3cret"}})
}

// TestSparseMetadataIndicesAreRefused: flattened dotenv and INI metadata cannot make the loader
// allocate list slots that no line fills (before anything is authenticated).
func TestSparseMetadataIndicesAreRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("sops_mac=x\nsops_lastmodified=2026-01-02T03:04:05Z\n")
	for i := range 200 {
		fmt.Fprintf(&b, "sops_a%d__list_9999=x\n", i)
	}
	_, err := load([]byte(b.String()))
	if err == nil || errors.Is(err, errNoMetadata) || !strings.Contains(err.Error(), "list index") {
		t.Fatalf("load = %v; want a refusal of the sparse list index", err)
	}
	big := bytes.Repeat([]byte("K=v\n"), maxFileSize/4+1)
	if _, err := load(append(big, "sops_mac=x\n"...)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("load of an oversized file = %v", err)
	}
}

// TestDotenvDuplicateErrorQuotesNoName: a variable given twice is refused by line, without
// its name, which may itself be secret.
func TestDotenvDuplicateErrorQuotesNoName(t *testing.T) {
	_, err := load([]byte("sk_live_Q7x=a\nsk_live_Q7x=b\nsops_mac=x\nsops_lastmodified=y\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "Q7x") {
		t.Fatalf("load = %v; want a refusal at line 2 that does not quote the name", err)
	}
}

// asSopsPrints lifts doc's lookup refusals, for tests comparing what decryption yields with what
// `sops --decrypt --extract` prints; the refusals themselves are tested above.
func asSopsPrints(doc *structured.Document) *structured.Document {
	doc.SetUnbound(structured.Unbound{})
	return doc
}
