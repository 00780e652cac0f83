package sops

import (
	"fmt"
	"testing"

	"filippo.io/age"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// BenchmarkDecrypt1000Keys decrypts a YAML file of 1000 keys, the whole path from bytes to a
// verified document.
func BenchmarkDecrypt1000Keys(b *testing.B) {
	id := mustIdentity(b)
	root := &structured.Node{Kind: structured.Map}
	for i := range 1000 {
		root.Entries = append(root.Entries, structured.Entry{Key: fmt.Sprintf("key%04d", i), Value: str(fmt.Sprintf("value-%d-0123456789abcdef", i))})
	}
	data := sopsFile(b, fileSpec{format: manifest.FormatYAML, roots: []*structured.Node{root}, recipients: []age.Recipient{id.Recipient()}})
	ids := []age.Identity{id}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		doc, err := Decrypt(data, ids)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := doc.Value("key0999"); err != nil {
			b.Fatal(err)
		}
	}
}
