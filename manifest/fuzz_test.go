package manifest_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/secretd/secretd/manifest"
)

// FuzzDecode feeds arbitrary bytes to Decode, which must never panic and must return either a
// readable error — valid UTF-8, no control characters but the line breaks between problems,
// every problem on its own line starting with a location — or a manifest that validates again,
// has its defaults filled in and survives a round trip through JSON unchanged. The seed corpus
// is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(`{"version": 1, "identities": ["/k"], "secrets": [{"name": "a\nb", "file": "/a", "x\u0001": 1}]}`))
	f.Add([]byte(`{"version": 1, "identities": ["/k"], "templates": [{"name": "\u001b[2J", "content": "<SECRETD:\u0007>"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := manifest.Decode(data)
		if err != nil {
			if m != nil {
				t.Fatal("Decode returned a manifest and an error")
			}
			checkReadable(t, err.Error())
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("a decoded manifest does not validate again: %v", err)
		}
		for i, s := range m.Secrets {
			if s.Owner == "" && s.UID == nil || s.Group == "" && s.GID == nil || s.Format == "" || s.Mode == "" {
				t.Fatalf("secret %d has no owner, group, mode or format after defaults", i)
			}
		}
		encoded, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		again, err := manifest.Decode(encoded)
		if err != nil {
			t.Fatalf("a decoded manifest, encoded again, is refused: %v", err)
		}
		reencoded, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(encoded, reencoded) {
			t.Fatalf("a round trip changed the manifest:\n%s\n%s", encoded, reencoded)
		}
	})
}

// checkReadable fails if an error message could garble a terminal or a log line.
func checkReadable(t *testing.T, msg string) {
	t.Helper()
	if msg == "" || !utf8.ValidString(msg) {
		t.Fatalf("error %q is empty or not UTF-8", msg)
	}
	lines := strings.Split(msg, "\n  ")
	if len(lines) > 1 && !strings.HasSuffix(lines[0], " problems:") {
		t.Fatalf("error %q lists problems without saying how many", msg)
	}
	for i, line := range lines {
		for _, r := range line {
			if !unicode.IsPrint(r) {
				t.Fatalf("error %q holds the unprintable %q", msg, r)
			}
		}
		if i > 0 && !strings.Contains(line, ": ") {
			t.Fatalf("problem %q does not start with its location", line)
		}
	}
}
