package manifest_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/secretd/secretd/manifest"
)

// FuzzDecode feeds arbitrary bytes to Decode, which must never panic, must agree with the
// encoding/json-based decoder it replaced (the same manifest, or the same error), and must
// return either an error or a manifest that validates again and survives a round trip through
// JSON unchanged. The seed corpus is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := manifest.Decode(data)
		want, wantErr := manifest.OracleDecode(data)
		switch {
		case (err == nil) != (wantErr == nil):
			t.Fatalf("Decode and the encoding/json decoder disagree:\nDecode: %v\nencoding/json: %v", err, wantErr)
		case err != nil && err.Error() != wantErr.Error():
			t.Fatalf("Decode and the encoding/json decoder report differently:\nDecode: %v\nencoding/json: %v", err, wantErr)
		case err == nil && !reflect.DeepEqual(m, want):
			t.Fatalf("Decode and the encoding/json decoder decode differently:\nDecode: %#v\nencoding/json: %#v", m, want)
		}
		if err != nil {
			if m != nil {
				t.Fatal("Decode returned a manifest and an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("a decoded manifest does not validate again: %v", err)
		}
		for i := range m.Secrets {
			s := &m.Secrets[i]
			if err := manifest.CheckName(s.Name); err != nil {
				t.Fatalf("secret name accepted by Decode: %v", err)
			}
			if _, err := manifest.ParseMode(s.Mode); err != nil {
				t.Fatalf("secret mode accepted by Decode: %v", err)
			}
			if s.Owner == "" && s.UID == nil || s.Group == "" && s.GID == nil || s.Format == "" {
				t.Fatalf("secret %d has no owner, group or format after defaults", i)
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
