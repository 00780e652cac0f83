package structured

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/secretd/secretd/manifest"
)

func mustParse(t *testing.T, format, data string) *Document {
	t.Helper()
	doc, err := Parse(format, []byte(data))
	if err != nil {
		t.Fatalf("Parse(%s): %v", format, err)
	}
	return doc
}

// expectValue compares without printing plaintext on failure.
func expectValue(t *testing.T, doc *Document, key, want string) {
	t.Helper()
	got, err := doc.Value(key)
	if err != nil {
		t.Errorf("Value(%q): %v", key, err)
		return
	}
	if string(got) != want {
		t.Errorf("Value(%q): mismatch (got %d bytes, want %d)", key, len(got), len(want))
	}
}

func expectMissing(t *testing.T, doc *Document, key string) {
	t.Helper()
	_, err := doc.Value(key)
	if !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Value(%q) error = %v; want ErrKeyNotFound", key, err)
		return
	}
	if !strings.Contains(err.Error(), key) {
		t.Errorf("error %q does not name the key %q", err, key)
	}
	if doc.Has(key) == nil {
		t.Errorf("Has(%q) = nil for a missing key", key)
	}
}

const yamlDoc = `github:
  oauth_token: gho_abc
  scopes: [repo, "read:org"]
gitlab:
    oauth_token: "glpat-xyz"
guest_accounts.json: '[{"user": "guest"}]'
npmrc: |
  //registry.npmjs.org/:_authToken=npm_123
  always-auth=true
folded: >-
  one
  two
number: 42
hex: 0x2A
ratio: 1.50
flag: true
nothing: ~
empty: ""
quoted_number: "42"
a/b: slash key
servers:
  - name: alpha
    port: 22
  - name: beta
`

func TestYAML(t *testing.T) {
	doc := mustParse(t, manifest.FormatYAML, yamlDoc)
	expectValue(t, doc, "github/oauth_token", "gho_abc")
	expectValue(t, doc, "gitlab/oauth_token", "glpat-xyz")
	expectValue(t, doc, "guest_accounts.json", `[{"user": "guest"}]`)
	expectValue(t, doc, "npmrc", "//registry.npmjs.org/:_authToken=npm_123\nalways-auth=true\n")
	expectValue(t, doc, "folded", "one two")
	expectValue(t, doc, "number", "42")
	expectValue(t, doc, "hex", "0x2A")
	expectValue(t, doc, "ratio", "1.50")
	expectValue(t, doc, "flag", "true")
	expectValue(t, doc, "nothing", "null")
	expectValue(t, doc, "empty", "")
	expectValue(t, doc, "quoted_number", "42")
	expectValue(t, doc, "a/b", "slash key")
	expectValue(t, doc, "github/scopes/1", "read:org")
	expectValue(t, doc, "servers/1/name", "beta")
	expectValue(t, doc, "servers/0/port", "22")
	expectValue(t, doc, "github", "oauth_token: gho_abc\nscopes:\n    - repo\n    - read:org\n")
	expectValue(t, doc, "servers/0", "name: alpha\nport: 22\n")
	expectValue(t, doc, "github/scopes", "- repo\n- read:org\n")

	expectMissing(t, doc, "github/oauth_tokn")
	expectMissing(t, doc, "nope")
	expectMissing(t, doc, "servers/2")
	expectMissing(t, doc, "servers/01")
	expectMissing(t, doc, "servers/-1")
	expectMissing(t, doc, "number/deeper")
	expectMissing(t, doc, "github/oauth_token/x")

	whole, err := doc.Value("")
	if err != nil {
		t.Fatal(err)
	}
	again := mustParse(t, manifest.FormatYAML, string(whole))
	for _, key := range []string{"npmrc", "quoted_number", "hex", "ratio", "flag", "a/b", "servers/1/name", "empty"} {
		want, _ := doc.Value(key)
		expectValue(t, again, key, string(want))
	}
	for _, e := range again.Roots()[0].Entries {
		if e.Key == "quoted_number" && e.Value.Kind != String {
			t.Errorf("quoted number lost its string type when re-serialised: it is a %s", e.Value.Kind)
		}
	}
}

func TestYAMLAliasesAndMerges(t *testing.T) {
	doc := mustParse(t, manifest.FormatYAML, `base: &base
  user: admin
  password: hunter2
prod:
  <<: *base
  password: override
copy: *base
list: &l [a, b]
again: *l
`)
	expectValue(t, doc, "prod/user", "admin")
	expectValue(t, doc, "prod/password", "override")
	expectValue(t, doc, "copy/password", "hunter2")
	expectValue(t, doc, "again/1", "b")
	expectMissing(t, doc, "prod/<<")
}

func TestYAMLAliasBombIsRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		prev := "*a" + string(rune('0'+i-1))
		if i > 9 {
			prev = "*a" + string(rune('a'+i-10))
		}
		name := string(rune('0' + i))
		if i > 9 {
			name = string(rune('a' + i - 10))
		}
		b.WriteString("a" + name + ": &a" + name + " [" + strings.Repeat(prev+", ", 9) + prev + "]\n")
	}
	_, err := Parse(manifest.FormatYAML, []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "expands") {
		t.Fatalf("alias bomb: error = %v; want a size limit error", err)
	}
}

func TestYAMLDuplicateKeys(t *testing.T) {
	_, err := Parse(manifest.FormatYAML, []byte("a: secret-one\nb:\n  c: 1\n  c: secret-two\n"))
	if err == nil || !strings.Contains(err.Error(), "duplicate key at line 4") {
		t.Fatalf("error = %v; want a duplicate key error at line 4", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Error("error contains a value")
	}
}

func TestYAMLMultiDocument(t *testing.T) {
	doc := mustParse(t, manifest.FormatYAML, "a: first\n---\na: second\n")
	expectValue(t, doc, "a", "first")
	expectValue(t, doc, "", "a: first\n---\na: second\n")
}

func TestYAMLScalarDocument(t *testing.T) {
	doc := mustParse(t, manifest.FormatYAML, "just a string\n")
	expectValue(t, doc, "", "just a string\n")
	expectMissing(t, doc, "x")
}

const jsonDoc = `{
  "db": {"password": "p\u00e4ss\nword", "port": 5432, "ratio": 1.10, "big": 123456789012345678901234567890, "exp": 1e3},
  "api_key": "k<&>",
  "flags": [true, false, null],
  "dotted.key": "d",
  "nothing": null
}`

func TestJSON(t *testing.T) {
	doc := mustParse(t, manifest.FormatJSON, jsonDoc)
	expectValue(t, doc, "db/password", "päss\nword")
	expectValue(t, doc, "db/port", "5432")
	expectValue(t, doc, "db/ratio", "1.10")
	expectValue(t, doc, "db/big", "123456789012345678901234567890")
	expectValue(t, doc, "db/exp", "1e3")
	expectValue(t, doc, "api_key", "k<&>")
	expectValue(t, doc, "flags/0", "true")
	expectValue(t, doc, "flags/1", "false")
	expectValue(t, doc, "flags/2", "null")
	expectValue(t, doc, "dotted.key", "d")
	expectValue(t, doc, "nothing", "null")
	expectValue(t, doc, "flags", "[\n\ttrue,\n\tfalse,\n\tnull\n]")
	expectValue(t, doc, "db", "{\n\t\"password\": \"päss\\nword\",\n\t\"port\": 5432,\n\t\"ratio\": 1.10,\n\t\"big\": 123456789012345678901234567890,\n\t\"exp\": 1e3\n}\n")
	expectMissing(t, doc, "db/user")
	expectMissing(t, doc, "flags/3")

	whole, err := doc.Value("")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(whole), "}\n") {
		t.Error("whole JSON document does not end with a newline")
	}
	again := mustParse(t, manifest.FormatJSON, string(whole))
	for _, key := range []string{"db/password", "db/big", "api_key", "flags/0", "dotted.key"} {
		want, _ := doc.Value(key)
		expectValue(t, again, key, string(want))
	}
}

func TestJSONErrors(t *testing.T) {
	for name, data := range map[string]string{
		"duplicate": `{"a": "secret1", "a": "secret2"}`,
		"syntax":    `{"a": secret}`,
		"trailing":  `{"a": "b"} {"secret": 1}`,
		"truncated": `{"a": "secret`,
		"empty":     ``,
	} {
		_, err := Parse(manifest.FormatJSON, []byte(data))
		if err == nil {
			t.Errorf("%s: parsed", name)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error %q quotes the input", name, err)
		}
	}
}

func TestJSONTopLevelList(t *testing.T) {
	doc := mustParse(t, manifest.FormatJSON, `["a", {"b": "c"}]`)
	expectValue(t, doc, "1/b", "c")
	expectValue(t, doc, "0", "a")
}

func TestDotenv(t *testing.T) {
	doc := mustParse(t, manifest.FormatDotenv, "# comment\r\n"+
		"DB_PASSWORD=p=ss word\r\n"+
		"\n"+
		"export TOKEN = 'lit\\n$x'\n"+
		"QUOTED=\"a\\nb \\\"c\\\" \\\\ \\$HOME\"\n"+
		"MULTI=one\\ntwo\n"+
		"EMPTY=\n"+
		"  SPACED  =  keep  \n")
	expectValue(t, doc, "DB_PASSWORD", "p=ss word")
	expectValue(t, doc, "TOKEN", "lit\\n$x")
	expectValue(t, doc, "QUOTED", "a\nb \"c\" \\ $HOME")
	expectValue(t, doc, "MULTI", "one\ntwo")
	expectValue(t, doc, "EMPTY", "")
	expectValue(t, doc, "SPACED", "  keep  ")
	expectMissing(t, doc, "comment")
	expectMissing(t, doc, "db_password")
	expectValue(t, doc, "", "DB_PASSWORD=p=ss word\nTOKEN=lit\\n$x\nQUOTED=a\\nb \"c\" \\ $HOME\nMULTI=one\\ntwo\nEMPTY=\nSPACED=  keep  \n")

	for name, data := range map[string]string{
		"no equals": "JUSTTEXT secret\n",
		"duplicate": "A=secret1\nA=secret2\n",
		"no name":   "=secret\n",
	} {
		_, err := Parse(manifest.FormatDotenv, []byte(data))
		if err == nil {
			t.Errorf("%s: parsed", name)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error %q quotes a value", name, err)
		}
	}
}

const iniDoc = `; top comment
global = outside
[database]
password = s3cret # inline comment
user: admin
url = "postgres://h/db"
hash = p#ss
multi = """line one
line two"""
cont = first \
  second
tick = ` + "`a;b#c`" + `

[empty]
[other.section]
key = value
`

func TestINI(t *testing.T) {
	doc := mustParse(t, manifest.FormatINI, iniDoc)
	expectValue(t, doc, "global", "outside")
	expectValue(t, doc, "DEFAULT/global", "outside")
	expectValue(t, doc, "database/password", "s3cret")
	expectValue(t, doc, "database/user", "admin")
	expectValue(t, doc, "database/url", "postgres://h/db")
	expectValue(t, doc, "database/hash", "p#ss")
	expectValue(t, doc, "database/multi", "line one\nline two")
	expectValue(t, doc, "database/cont", "first second")
	expectValue(t, doc, "database/tick", "a;b#c")
	expectValue(t, doc, "other.section/key", "value")
	expectValue(t, doc, "database", "[database]\npassword = s3cret\nuser     = admin\nurl      = postgres://h/db\nhash     = `p#ss`\nmulti    = \"\"\"line one\nline two\"\"\"\ncont     = first second\ntick     = `a;b#c`\n")
	expectMissing(t, doc, "database/nope")
	expectMissing(t, doc, "nosection/key")
	expectMissing(t, doc, "password")

	whole, err := doc.Value("")
	if err != nil {
		t.Fatal(err)
	}
	want := "global = outside\n\n[database]\npassword = s3cret\nuser     = admin\nurl      = postgres://h/db\nhash     = `p#ss`\nmulti    = \"\"\"line one\nline two\"\"\"\ncont     = first second\ntick     = `a;b#c`\n\n[empty]\n\n[other.section]\nkey = value\n"
	if string(whole) != want {
		t.Errorf("whole INI: mismatch (got %d bytes, want %d)", len(whole), len(want))
	}
	again := mustParse(t, manifest.FormatINI, string(whole))
	for _, key := range []string{"global", "database/password", "database/hash", "database/multi", "database/tick", "other.section/key"} {
		v, _ := doc.Value(key)
		expectValue(t, again, key, string(v))
	}
}

func TestINIRepeatedSections(t *testing.T) {
	doc := mustParse(t, manifest.FormatINI, "[a]\nx = 1\n[a]\ny = 2\n")
	expectValue(t, doc, "a/x", "1")
	expectValue(t, doc, "a/y", "2")
	if _, err := Parse(manifest.FormatINI, []byte("[a]\nx = secret1\nx = secret2\n")); err == nil {
		t.Error("a key defined twice in a section parsed")
	} else if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q quotes a value", err)
	}
	for _, bad := range []string{"[unclosed\n", "[]\n", "novalue\n", "= secret\n", "k = \"\"\"never closed\n"} {
		if _, err := Parse(manifest.FormatINI, []byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestBinary(t *testing.T) {
	data := string([]byte{0, 1, 2, 0xff, '\n'})
	doc := mustParse(t, manifest.FormatBinary, data)
	expectValue(t, doc, "", data)
	expectMissing(t, doc, "data")
}

func TestUnknownFormat(t *testing.T) {
	if _, err := Parse("toml", []byte("a = 1")); err == nil {
		t.Error("unknown format parsed")
	}
}

func TestNewDocument(t *testing.T) {
	root := &Node{Kind: Map, Entries: []Entry{{Key: "num", Value: &Node{Kind: Int, Text: "7"}}, {Key: "b", Value: &Node{Kind: Bool, Text: "true"}}, {Key: "s", Value: &Node{Kind: String, Text: "7"}}}}
	doc, err := NewDocument(manifest.FormatYAML, root)
	if err != nil {
		t.Fatal(err)
	}
	expectValue(t, doc, "", "num: 7\nb: true\ns: \"7\"\n")
	doc, err = NewDocument(manifest.FormatJSON, root)
	if err != nil {
		t.Fatal(err)
	}
	expectValue(t, doc, "", "{\n\t\"num\": 7,\n\t\"b\": true,\n\t\"s\": \"7\"\n}\n")
	for name, c := range map[string]struct {
		format string
		roots  []*Node
	}{
		"no root":       {manifest.FormatYAML, nil},
		"two json":      {manifest.FormatJSON, []*Node{root, root}},
		"binary map":    {manifest.FormatBinary, []*Node{root}},
		"dotenv scalar": {manifest.FormatDotenv, []*Node{{Kind: String}}},
		"bad format":    {"xml", []*Node{root}},
	} {
		if _, err := NewDocument(c.format, c.roots...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestYAMLLegacyBooleansStayStrings(t *testing.T) {
	doc := mustParse(t, manifest.FormatYAML, "a: \"off\"\n\"yes\": 'y'\nc: \"1:20\"\n")
	whole, err := doc.Value("")
	if err != nil {
		t.Fatal(err)
	}
	if want := "a: \"off\"\n\"yes\": \"y\"\nc: \"1:20\"\n"; string(whole) != want {
		t.Errorf("whole document: got %q, want %q", whole, want)
	}
}

func TestYAMLSelfReferenceIsRefused(t *testing.T) {
	if _, err := Parse(manifest.FormatYAML, []byte("a: &a [1, *a]\n")); err == nil {
		t.Error("a self-referencing alias parsed")
	}
}

func TestJSONNestingLimit(t *testing.T) {
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	if _, err := Parse(manifest.FormatJSON, []byte(deep)); err == nil {
		t.Error("JSON nested 5000 levels deep parsed")
	}
	ok := strings.Repeat(`{"a":`, 100) + `"x"` + strings.Repeat("}", 100)
	doc := mustParse(t, manifest.FormatJSON, ok)
	expectValue(t, doc, strings.TrimSuffix(strings.Repeat("a/", 100), "/"), "x")
}

// sameAsYAMLEncode checks that yamlString writes s as yaml.v3 writes a Go string, which is how
// sops writes decrypted values.
func sameAsYAMLEncode(t *testing.T, s string) {
	t.Helper()
	var want yaml.Node
	if err := want.Encode(s); err != nil {
		return
	}
	a, errA := yaml.Marshal(yamlString(s))
	b, errB := yaml.Marshal(&want)
	if (errA == nil) != (errB == nil) || !bytes.Equal(a, b) {
		t.Errorf("string %q is written %q, yaml.v3 writes %q", s, a, b)
	}
}

func TestYAMLStringsAsYAMLv3WritesThem(t *testing.T) {
	for _, s := range []string{
		"", "plain", "off", "Yes", "y", "true", "True", "null", "~", "123", "0x1F", "1.5", ".inf", "1:20", "1:20.5", "-1:2:3",
		"2001-12-14", "a: b", "- x", "#c", "x #c", "'q'", `"q"`, " lead", "trail ", "multi\nline", "multi\nline\n",
		"\ttab", "[a]", "{a}", "*alias", "&anchor", "!tag", "%dir", "@at", "`tick", "|", ">", "ä ✓", "\x00\x01", "\xff\xfe",
		"ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]", strings.Repeat("long ", 40), strings.Repeat("\xff", 100),
	} {
		sameAsYAMLEncode(t, s)
	}
}
