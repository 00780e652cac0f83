package manifest_test

import (
	"testing"

	"github.com/secretd/secretd/manifest"
)

// A manifest that cannot be decoded is refused with one error naming where: a line and column
// for malformed JSON, the JSON location otherwise. The version is checked before the fields, so
// a manifest of another version says so. Names taken from the manifest are quoted where they
// hold characters that would garble the message.
func TestDecodeErrorTexts(t *testing.T) {
	const top = `{"version": 1, "identities": ["/k"], `
	for _, c := range []struct{ name, data, want string }{
		// Malformed JSON.
		{"empty", ``, "malformed JSON at line 1, column 1: unexpected end of JSON input"},
		{"object not closed", `{"version": 1`, "malformed JSON at line 1, column 14: unexpected end of JSON input"},
		{"missing colon", `{"version" 1}`, "malformed JSON at line 1, column 12: invalid character '1' after object name (expecting ':')"},
		{"trailing comma", "{\n  \"version\": 1,\n}", "malformed JSON at line 2, column 15: invalid character ',' at start of value"},
		{"unknown escape", `{"a\x": 1}`, "malformed JSON at line 1, column 4: invalid escape sequence `\\x` in string"},
		{"control character in a string", "{\"a\x01\": 1}", `malformed JSON at line 1, column 4: invalid character '\x01' in string (expecting non-control character)`},
		{"byte order mark", "\xef\xbb\xbf{}", `malformed JSON at line 1, column 1: invalid character '\ufeff' at start of value`},
		{"second document", `{"version": 1}{}`, "malformed JSON at line 1, column 15: invalid character '{' after top-level value"},
		{"unpaired surrogate", top + `"secrets": [{"name": "\ud83d|"}]}`, "malformed JSON at line 1, column 60: invalid surrogate pair `\\ud83d|\"}]}` in string"},
		{"invalid UTF-8", top + "\"secrets\": [{\"name\": \"a\", \"file\": \"/f\xff\"}]}", "malformed JSON at line 1, column 75: invalid UTF-8"},

		// The version, before anything else.
		{"top level null", `null`, "version: missing (this secretd reads version 1)"},
		{"missing version", `{"identities": ["/k"]}`, "version: missing (this secretd reads version 1)"},
		{"version in another case", `{"Version": 1}`, "version: missing (this secretd reads version 1)"},
		{"version 0", `{"version": -0}`, "version: 0 is not supported (this secretd reads version 1)"},
		{"a later version with new fields", `{"version": 2, "future": true}`, "version: 2 is not supported (this secretd reads version 1)"},
		{"version 1.0", `{"version": 1.0}`, "version: expected an integer, got 1.0"},
		{"version a string", `{"version": "1", "version": 1}`, "version: expected an integer, got a string"},
		{"version too large", `{"version": 9223372036854775808}`, "version: 9223372036854775808 is out of range"},

		// Fields: exact names, each once.
		{"unknown top-level field", top + `"secretDir": "/run/s"}`, `(top level): unknown field "secretDir"`},
		{"field in another case", top + `"secrets": [{"name": "a", "file": "/a", "Mode": "0444"}]}`, `secrets[0] (a): unknown field "Mode"`},
		{"unknown template field", top + `"templates": [{"name": "t", "content": "", "format": "yaml"}]}`, `templates[0] (t): unknown field "format"`},
		{"repeated at the top", top + `"identities": ["/z"]}`, `(top level): field "identities" appears twice`},
		{"repeated in a secret", top + `"secrets": [{"name": "a", "mode": "0400", "mode": "0444"}]}`, `secrets[0] (a): field "mode" appears twice`},
		{"repeated placeholder", top + `"placeholders": {"a": "x", "a": "y"}}`, `placeholders: field "a" appears twice`},
		{"unprintable names", top + `"secrets": [{"name": "a\nb", "own\u0001r": 1}]}`, `secrets[0] ("a\nb"): unknown field "own\x01r"`},

		// Types.
		{"string field", top + `"mountPoint": true}`, "mountPoint: expected a string, got true"},
		{"int field", top + `"keepGenerations": "2"}`, "keepGenerations: expected an integer, got a string"},
		{"list field", `{"version": 1, "identities": {}}`, "identities: expected an array, got an object"},
		{"list element", `{"version": 1, "identities": ["/k", 1]}`, "identities[1]: expected a string, got a number"},
		{"map value", top + `"placeholders": {"a": []}}`, `placeholders["a"]: expected a string, got an array`},
		{"secret not an object", top + `"secrets": [{"name": "a", "file": "/a"}, "b"]}`, "secrets[1]: expected an object, got a string"},
		{"secret field", top + `"secrets": [{"name": "a", "file": "/a"}, {"name": "b", "mode": 400}]}`, "secrets[1] (b).mode: expected a string, got a number"},
		{"fractional uid", top + `"secrets": [{"uid": 1.5, "name": "a"}]}`, "secrets[0].uid: expected an integer, got 1.5"},
		{"huge gid", top + `"secrets": [{"name": "a", "gid": 99999999999999999999}]}`, "secrets[0] (a).gid: 99999999999999999999 is out of range"},
		{"unit list element", top + `"templates": [{"name": "t", "reloadUnits": [{}]}]}`, "templates[0] (t).reloadUnits[0]: expected a string, got an object"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := manifest.Decode([]byte(c.data))
			if err == nil || m != nil {
				t.Fatalf("accepted: %+v", m)
			}
			if err.Error() != c.want {
				t.Errorf("error\n%q\nwant\n%q", err, c.want)
			}
		})
	}
}

// Strings are decoded with every escape and surrogate pairs joined, and a field name may be
// spelt with escapes.
func TestDecodeStrings(t *testing.T) {
	data := "{\"vers\\u0069on\": 1, \"identities\": [\"\\/k\"], \"secrets\": [{\"n\\u0061me\": \"a\", \"file\": \"/f\"}], " +
		`"templates": [{"name": "t", "content": "\"\\\/\b\f\n\r\t\u0000\u00e9\u4E2D|\ud83d\ude00|\uDBFF\uDFFF"}]}`
	m, err := manifest.Decode([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Identities[0], "/k"; got != want {
		t.Errorf("identity %q, want %q", got, want)
	}
	if got, want := m.Secrets[0].Name, "a"; got != want {
		t.Errorf("name %q, want %q", got, want)
	}
	if got, want := m.Templates[0].Content, "\"\\/\b\f\n\r\t\x00é中|😀|\U0010FFFF"; got != want {
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
