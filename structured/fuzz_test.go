package structured

import (
	"bytes"
	"testing"

	"github.com/secretd/secretd/manifest"
)

// FuzzParse feeds arbitrary bytes to every parser and looks a key up in whatever parses. Beyond
// not crashing, a JSON document must read back identically after re-serialisation, and strings
// must be written as yaml.v3 writes them.
func FuzzParse(f *testing.F) {
	f.Add([]byte("a:\n  b: [1, {c: d}]\n"), "a/b/1/c")
	f.Add([]byte(`{"a": {"b": [1, 2.5e3, true, null, "x"]}}`), "a/b/4")
	f.Add([]byte("A=b\nexport C=\"d\\n\"\n"), "C")
	f.Add([]byte("x = y\n[s]\nk = \"\"\"v\nw\"\"\"\n"), "s/k")
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		sameAsYAMLEncode(t, key)
		for _, format := range manifest.Formats {
			doc, err := Parse(format, data)
			if err != nil {
				continue
			}
			whole, wholeErr := doc.Value("")
			value, valueErr := doc.Value(key)
			if hasErr := doc.Has(key); (hasErr == nil) != (valueErr == nil) && key != "" {
				t.Fatalf("%s: Has and Value disagree on a key: %v / %v", format, hasErr, valueErr)
			}
			if format != manifest.FormatJSON || wholeErr != nil {
				continue
			}
			again, err := Parse(format, whole)
			if err != nil {
				t.Fatalf("re-serialised JSON does not parse: %v", err)
			}
			if valueErr != nil {
				continue
			}
			got, err := again.Value(key)
			if err != nil || !bytes.Equal(got, value) {
				t.Fatalf("key %q reads differently after re-serialisation (err %v)", key, err)
			}
		}
	})
}
