package structured_test

import (
	"strings"
	"testing"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// TestParseErrorsQuoteNoContent: a parse error of a decrypted document names a position, never
// a piece of the document (keys included: in a decrypted document they are secret too).
func TestParseErrorsQuoteNoContent(t *testing.T) {
	const s = "sk_live_Q7x"
	for _, c := range []struct{ format, doc, where string }{
		{manifest.FormatJSON, `{"` + s + `": 1, "` + s + `": 2}`, "line 1"},
		{manifest.FormatJSON, `{"a": {"` + s + `": [1, {"b": 2, "b": 3}]}}`, "line 1"},
		{manifest.FormatYAML, s + ": 1\n" + s + ": 2\n", "line 2"},
		{manifest.FormatYAML, "a:\n  " + s + ":\n    ? [x]\n    : 1\n", "line 3"},
		{manifest.FormatYAML, "a: *" + s + "\n", "malformed YAML"}, // yaml.v3 gives no line
		{manifest.FormatYAML, "a:\n  " + s + ":\n    <<: [1]\n", "line 3"},
		{manifest.FormatYAML, "a: &" + s + " [*" + s + "]\n", "line 1"},
		{manifest.FormatDotenv, s + "=1\n" + s + "=2\n", "line 2"},
		{manifest.FormatDotenv, s + "=\"a\"b\"\n", "line 1"},
		{manifest.FormatINI, "[" + s + "]\nk = 1\nk = 2\n", "line 3"},
		{manifest.FormatINI, "[x]\n" + s + " = \"\"\"open\n", "line 2"},
		{manifest.FormatINI, "[x]\n\"" + s + " = 1\n", "line 2"},
	} {
		_, err := structured.Parse(c.format, []byte(c.doc))
		if err == nil {
			t.Errorf("%s %q: accepted", c.format, c.doc)
			continue
		}
		if strings.Contains(err.Error(), s) || strings.Contains(err.Error(), "Q7x") {
			t.Errorf("%s: error quotes the document: %v", c.format, err)
		}
		if !strings.Contains(err.Error(), c.where) {
			t.Errorf("%s %q: error %q does not give the position %q", c.format, c.doc, err, c.where)
		}
	}
}
