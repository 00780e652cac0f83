package manifest_test

import (
	"strings"
	"testing"

	"github.com/secretd/secretd/manifest"
)

// The decoder's errors are those encoding/json gave when it read manifests: each case holds
// the exact text, and checks that encoding/json (OracleDecode) still says the same.
func TestDecodeErrorTexts(t *testing.T) {
	const top = `{"version": 1, "identities": ["/k"], `
	const probe = `(top level): expected struct { Version *int "json:\"version\"" }, got JSON `
	deep := func(n int) string {
		return top + `"x": ` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	for _, c := range []struct{ name, data, want string }{
		// Where the input ends.
		{"empty", ``, "malformed JSON at line 1, column 1: unexpected end of JSON input"},
		{"only space", " \n\t", "malformed JSON at line 2, column 1: unexpected end of JSON input"},
		{"object not closed", `{"version": 1`, "malformed JSON at line 1, column 13: unexpected end of JSON input"},
		{"no value after colon", `{"version":`, "malformed JSON at line 1, column 11: unexpected end of JSON input"},
		{"no key after comma", `{"version": 1,`, "malformed JSON at line 1, column 14: unexpected end of JSON input"},
		{"array not closed", `[1,`, "malformed JSON at line 1, column 3: unexpected end of JSON input"},
		{"string not closed", `{"ab`, "malformed JSON at line 1, column 4: unexpected end of JSON input"},
		// A token cut short is told it got a space, as encoding/json's scanner does.
		{"escape cut short", `{"a\`, "malformed JSON at line 1, column 4: invalid character ' ' in string escape code"},
		{"\\u cut short", `{"a\u12`, `malformed JSON at line 1, column 7: invalid character ' ' in \u hexadecimal character escape`},
		{"minus alone", `-`, "malformed JSON at line 1, column 1: invalid character ' ' in numeric literal"},
		{"decimal point last", `1.`, "malformed JSON at line 1, column 2: invalid character ' ' after decimal point in numeric literal"},
		{"exponent last", `1e`, "malformed JSON at line 1, column 2: invalid character ' ' in exponent of numeric literal"},
		{"exponent sign last", `1e+`, "malformed JSON at line 1, column 3: invalid character ' ' in exponent of numeric literal"},
		{"true cut short", `tr`, "malformed JSON at line 1, column 2: invalid character ' ' in literal true (expecting 'u')"},
		{"false cut short", `fals`, "malformed JSON at line 1, column 4: invalid character ' ' in literal false (expecting 'e')"},
		{"null cut short", `{"version": nul`, "malformed JSON at line 1, column 15: invalid character ' ' in literal null (expecting 'l')"},
		{"top-level number", `12`, probe + "number"},

		// Bad characters.
		{"byte order mark", "\xef\xbb\xbf{}", "malformed JSON at line 1, column 1: invalid character 'ï' looking for beginning of value"},
		{"control character in a string", "{\"a\x01\": 1}", `malformed JSON at line 1, column 4: invalid character '\x01' in string literal`},
		{"unknown escape", `{"a\x": 1}`, "malformed JSON at line 1, column 5: invalid character 'x' in string escape code"},
		{"single-quote escape", `{"a\'": 1}`, `malformed JSON at line 1, column 5: invalid character '\'' in string escape code`},
		{"bad hex digit", `{"\u00g0": 1}`, `malformed JSON at line 1, column 7: invalid character 'g' in \u hexadecimal character escape`},
		{"minus without digits", `{"version": -x}`, "malformed JSON at line 1, column 14: invalid character 'x' in numeric literal"},
		{"leading zero", `{"version": 01}`, "malformed JSON at line 1, column 14: invalid character '1' after object key:value pair"},
		{"plus sign", `{"version": +1}`, "malformed JSON at line 1, column 13: invalid character '+' looking for beginning of value"},
		{"bad literal", `{"version": trve}`, "malformed JSON at line 1, column 15: invalid character 'v' in literal true (expecting 'u')"},
		{"missing colon", `{"version" 1}`, "malformed JSON at line 1, column 12: invalid character '1' after object key"},
		{"missing comma", `{"version": 1 "a": 2}`, `malformed JSON at line 1, column 15: invalid character '"' after object key:value pair`},
		{"trailing comma in an object", "{\n  \"version\": 1,\n}", "malformed JSON at line 3, column 1: invalid character '}' looking for beginning of object key string"},
		{"key not a string", `{1: 2}`, "malformed JSON at line 1, column 2: invalid character '1' looking for beginning of object key string"},
		{"trailing comma in an array", top + `"secrets": [{}, ]}`, "malformed JSON at line 1, column 54: invalid character ']' looking for beginning of value"},
		{"array closed by a brace", `[}`, "malformed JSON at line 1, column 2: invalid character '}' looking for beginning of value"},
		{"missing comma in an array", `[1 2]`, "malformed JSON at line 1, column 4: invalid character '2' after array element"},
		{"trailing garbage", `{"version": 1} x`, "malformed JSON at line 1, column 16: invalid character 'x' after top-level value"},
		{"second document", `{"version": 1}{}`, "malformed JSON at line 1, column 15: invalid character '{' after top-level value"},
		{"trailing NUL", "{\"version\": 1}\n\x00", `malformed JSON at line 2, column 1: invalid character '\x00' after top-level value`},
		{"trailing byte beyond ASCII", "{\"version\": 1}\x80", `malformed JSON at line 1, column 15: invalid character '\u0080' after top-level value`},
		// Syntax is checked everywhere before anything else.
		{"syntax after an unknown field", `{"version": 2, "x": [1,]}`, "malformed JSON at line 1, column 24: invalid character ']' looking for beginning of value"},
		{"nesting at the limit", deep(9999), `(top level): unknown field "x"`},
		{"nesting beyond the limit", deep(10000), "malformed JSON at line 1, column 10042: invalid character '[' exceeded max depth"},

		// The version, probed before the keys are checked: in any case, the last one winning.
		{"top level null", `null`, "version: missing (this secretd reads version 1)"},
		{"top level array", `[{"version": 1}]`, probe + "array"},
		{"top level string", `"x"`, probe + "string"},
		{"top level bool", `true`, probe + "bool"},
		{"version 1.0", `{"version": 1.0}`, "version: expected int, got JSON number 1.0"},
		{"version 1e0", `{"version": 1e0}`, "version: expected int, got JSON number 1e0"},
		{"version -0", `{"version": -0}`, "version: 0 is not supported (this secretd reads version 1)"},
		{"version too large", `{"version": 9223372036854775808}`, "version: expected int, got JSON number 9223372036854775808"},
		{"version an object", `{"version": {"a": [1]}}`, "version: expected int, got JSON object"},
		{"version in another case", `{"Version": 1}`, `(top level): unknown field "Version"`},
		{"version in another case, last", `{"version": 1, "VERSION": 2}`, "version: 2 is not supported (this secretd reads version 1)"},
		{"version null last", `{"version": 1, "vErSiOn": null}`, "version: missing (this secretd reads version 1)"},
		{"version type error first", `{"version": "1", "version": 1}`, "version: expected int, got JSON string"},
		{"version with a long s", "{\"ver\u017fion\": 1}", `(top level): unknown field "verſion"`},
		{"version twice", `{"version": 1, "version": 1}`, `malformed manifest: field "version" appears twice`},

		// Keys, then types, at the top level.
		{"unknown key before a type error", top + `"secretsDir": 1, "x": 1}`, `(top level): unknown field "x"`},
		{"key of invalid UTF-8", top + "\"\xff\": 1}", `(top level): unknown field "\xff"`},
		{"key of invalid UTF-8 and an escape", top + "\"\xff\\u0041\": 1}", `(top level): unknown field "�A"`},
		{"escaped unknown key", top + `"\u00e9": 1}`, `(top level): unknown field "é"`},
		{"string field", top + `"mountPoint": true}`, "mountPoint: expected string, got JSON bool"},
		{"int field 1e2", top + `"keepGenerations": 1e2}`, "keepGenerations: expected int, got JSON number 1e2"},
		{"int field as a string", top + `"keepGenerations": "2"}`, "keepGenerations: expected int, got JSON string"},
		{"list field", `{"version": 1, "identities": {}}`, "identities: expected []string, got JSON object"},
		{"list element", `{"version": 1, "identities": ["/k", 1]}`, "identities: expected string, got JSON number"},
		{"map field", top + `"placeholders": "x"}`, "placeholders: expected map[string]string, got JSON string"},
		{"map value", top + `"placeholders": {"a": []}}`, "placeholders: expected string, got JSON array"},
		{"secrets not a list", top + `"secrets": {}}`, "secrets: expected []json.RawMessage, got JSON object"},
		{"templates not a list", top + `"templates": 1}`, "templates: expected []json.RawMessage, got JSON number"},

		// Each secret and template, all at once.
		{"elements not objects", top + `"secrets": [1, "x", [], true], "templates": [false]}`,
			"5 problems:\n  secrets[0]: expected manifest.Secret, got JSON number\n  secrets[1]: expected manifest.Secret, got JSON string" +
				"\n  secrets[2]: expected manifest.Secret, got JSON array\n  secrets[3]: expected manifest.Secret, got JSON bool" +
				"\n  templates[0]: expected manifest.Template, got JSON bool"},
		{"element fields", top + `"secrets": [{"name": 1}, {"uid": 1.5}, {"gid": "0"}, {"restartUnits": "a.service"}, {"reloadUnits": [{}]}],` +
			` "templates": [{"content": 1}, {"mode": 400}]}`,
			"7 problems:\n  secrets[0].name: expected string, got JSON number\n  secrets[1].uid: expected int, got JSON number 1.5" +
				"\n  secrets[2].gid: expected int, got JSON string\n  secrets[3].restartUnits: expected []string, got JSON string" +
				"\n  secrets[4].reloadUnits: expected string, got JSON object\n  templates[0].content: expected string, got JSON number" +
				"\n  templates[1].mode: expected string, got JSON number"},
		{"element keys before types", top + `"secrets": [{"mode": 1, "Mode": "0400"}, {"mode": "0400", "mode": "0400"}, {"uid": 1, "file": 2}],` +
			` "templates": [{"name": "t", "content": "", "format": "yaml"}]}`,
			"4 problems:\n  secrets[0]: unknown field \"Mode\"\n  secrets[1]: field \"mode\" appears twice" +
				"\n  secrets[2].file: expected string, got JSON number\n  templates[0]: unknown field \"format\""},
		{"element type error after the key check passed", top + `"secrets": [{"name": "a", "file": "/a", "key": true}]}`,
			"secrets[0].key: expected string, got JSON bool"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := manifest.Decode([]byte(c.data))
			if err == nil || m != nil {
				t.Fatalf("accepted: %+v", m)
			}
			if err.Error() != c.want {
				t.Errorf("error\n%q\nwant\n%q", err, c.want)
			}
			if _, oracle := manifest.OracleDecode([]byte(c.data)); oracle == nil || oracle.Error() != c.want {
				t.Errorf("encoding/json says\n%q", oracle)
			}
		})
	}
}

// Strings are decoded as encoding/json decodes them: every escape, surrogate pairs joined,
// unpaired surrogates and invalid UTF-8 turned into U+FFFD, and a key may be spelt with escapes.
func TestDecodeStrings(t *testing.T) {
	data := "{\"vers\\u0069on\": 1, \"identities\": [\"\\/k\"], \"secrets\": [{\"n\\u0061me\": \"a\", \"file\": \"/f\xff\xc3(\xed\xa0\x80\"}], " +
		`"templates": [{"name": "t", "content": "\"\\\/\b\f\n\r\t\u0000\u00e9\u4E2D|\ud83d\ude00|\ud83d|\ude00|\ud83d\u0041|\ud83d\ud83d\ude00|\uDBFF\uDFFF"}]}`
	m, err := manifest.Decode([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Identities[0], "/k"; got != want {
		t.Errorf("identity %q, want %q", got, want)
	}
	if got, want := m.Secrets[0].File, "/f\uFFFD\uFFFD(\uFFFD\uFFFD\uFFFD"; got != want {
		t.Errorf("file %q, want %q", got, want)
	}
	if got, want := m.Templates[0].Content, "\"\\/\b\f\n\r\t\x00é中|😀|\uFFFD|\uFFFD|\uFFFDA|\uFFFD😀|\U0010FFFF"; got != want {
		t.Errorf("content %q, want %q", got, want)
	}
}

// Null is accepted for every field, as encoding/json accepted it: a string or number keeps its
// default, a list, map or id is unset, and a null list element, map value or secret is empty.
func TestDecodeNulls(t *testing.T) {
	m, err := manifest.Decode([]byte(`{"version": 1, "secretsDir": null, "mountPoint": null, "keepGenerations": null,
	  "identities": ["/k"], "placeholders": null, "templates": null,
	  "secrets": [{"name": "a", "file": "/a", "format": null, "key": null, "owner": null, "group": null, "uid": null,
	               "gid": null, "mode": null, "path": null, "restartUnits": null, "reloadUnits": null}]}`))
	if err != nil {
		t.Fatal(err)
	}
	s := m.Secrets[0]
	if m.SecretsDir != manifest.DefaultSecretsDir || m.KeepGenerations != 1 || m.Placeholders != nil || m.Templates != nil ||
		s.Format != "binary" || s.Owner != "root" || s.UID != nil || s.Mode != "0400" || s.RestartUnits != nil {
		t.Errorf("decoded %+v", m)
	}
	_, err = manifest.Decode([]byte(`{"version": 1, "identities": ["/k", null], "placeholders": {"a": null}, "secrets": [null]}`))
	want := "5 problems:\n  identities[1]: \"\" must be an absolute path\n  secrets[0].name: name is empty" +
		"\n  secrets[0].file: missing: which encrypted file holds this secret?\n  placeholders[\"a\"]: no secret is named \"a\"" +
		"\n  placeholders[\"a\"]: \"\" is not of the form <SECRETD:…>"
	if err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}
