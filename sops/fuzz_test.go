package sops

import (
	"testing"

	"filippo.io/age"
)

// FuzzDecrypt decrypts arbitrary files with the test identity (the seed corpus holds small
// files encrypted to it). Whatever the input, Decrypt must not crash, and a file it accepts
// must be one Detect recognises and whose document serialises.
func FuzzDecrypt(f *testing.F) {
	ids := []age.Identity{mustIdentity(f)}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Decrypt(data, ids)
		if err != nil {
			if doc != nil {
				t.Fatal("a document was returned along with an error")
			}
			return
		}
		if format, ok := Detect(data); !ok || format != doc.Format() {
			t.Fatalf("Decrypt accepted a %s file that Detect reports as %q, %v", doc.Format(), format, ok)
		}
		if _, err := asSopsPrints(doc).Value(""); err != nil {
			t.Fatalf("decrypted document does not serialise: %v", err)
		}
	})
}

// FuzzDetect checks that recognising a file and checking its keys never crash and agree, and
// that the YAML placeholder shortcut reads every document as a plain read does.
func FuzzDetect(f *testing.F) {
	f.Add([]byte("a: b\nsops:\n    mac: x\n    lastmodified: y\n"), "a")
	f.Add([]byte(`{"data": "x", "sops": {"mac": "x", "lastmodified": "y"}}`), "")
	f.Add([]byte("A=b\nsops_mac=x\nsops_lastmodified=y\nsops_age__list_0__map_enc=z\n"), "A")
	f.Add([]byte("[a]\nb = c\n[sops]\nmac = x\nlastmodified = y\n"), "a/b")
	f.Add([]byte("age-encryption.org/v1\n-> X25519 abc\n"), "")
	for _, doc := range shrinkCases {
		f.Add([]byte(doc), "a")
	}
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		checkShrinkEquivalent(t, data)
		_, ok := Detect(data)
		if err := HasKey(data, ""); (err == nil) != ok {
			t.Fatalf("Detect says %v but HasKey(\"\") says %v", ok, err)
		}
		_ = HasKey(data, key)
	})
}
