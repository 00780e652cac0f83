package sops

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/secretd/secretd/internal/interop"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// sameTree compares two trees structurally.
func sameTree(a, b *structured.Node) bool {
	if a.Kind != b.Kind || a.Text != b.Text || a.Tag != b.Tag || len(a.Entries) != len(b.Entries) || len(a.Items) != len(b.Items) {
		return false
	}
	for i := range a.Entries {
		if a.Entries[i].Key != b.Entries[i].Key || !sameTree(a.Entries[i].Value, b.Entries[i].Value) {
			return false
		}
	}
	for i := range a.Items {
		if !sameTree(a.Items[i], b.Items[i]) {
			return false
		}
	}
	return true
}

// checkShrinkEquivalent fails if reading data with placeholders differs from reading it as is,
// whenever the latter succeeds.
func checkShrinkEquivalent(t *testing.T, data []byte) {
	t.Helper()
	plain, plainErr := readYAML(&shrunk{data: data})
	shrunk, shrunkErr := loadYAML(data)
	if plainErr != nil {
		return
	}
	if shrunkErr != nil {
		t.Fatalf("placeholder read fails where a plain read succeeds: %v", shrunkErr)
	}
	if len(plain.roots) != len(shrunk.roots) || !sameTree(plain.meta, shrunk.meta) {
		t.Fatal("placeholder read differs in documents or metadata")
	}
	for i := range plain.roots {
		if !sameTree(plain.roots[i], shrunk.roots[i]) {
			t.Fatalf("placeholder read differs in document %d", i)
		}
	}
}

// shrinkCases put encrypted tokens everywhere YAML lets them stand, alone or glued to other
// syntax.
var shrinkCases = func() []string {
	token := "ENC[AES256_GCM,data:Zm9v,iv:YmFy,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]"
	meta := "sops:\n    mac: " + token + "\n    lastmodified: \"2026-01-02T03:04:05Z\"\n"
	return []string{
		"a: " + token + "\n" + meta,
		"a: '" + token + "'\nb: \"" + token + "\"\n" + meta,
		"a: x " + token + " y\n" + meta,
		"a: |\n    " + token + "\n    " + token + "\n" + meta,
		"a: >\n    " + token + "\n    more\n" + meta,
		"# " + token + "\na: 1 # " + token + "\n" + meta,
		token + ": key\n" + meta,
		"a: &x " + token + "\nb: *x\n" + meta,
		"a: &" + token + "\n" + meta,
		"a: !" + token + "\n" + meta,
		"a: [" + token + "]\n" + meta,
		"a: {b: " + token + "}\n" + meta,
		"a: " + token + "x\n" + meta,
		"a: ENC[@0]\nb: " + token + "\n" + meta,
		"a: \"\\x45NC[@0]\"\nb: " + token + "\n" + meta,
		"a: " + strings.TrimSuffix(token, "]") + "\n" + meta,
		"- " + token + "\n",
		"a: " + token + "\n---\nb: " + token + "\n" + meta,
		"list:\n    - " + token + "\n    - key: " + token + "\n      other: w\n" + meta,
	}
}()

func TestShrinkIsTransparent(t *testing.T) {
	dir := interop.Dir(t)
	id := mustIdentity(t)
	docs := map[string][]byte{
		"generated": sopsFile(t, fileSpec{format: manifest.FormatYAML, roots: []*structured.Node{nestedTree()}, recipients: []age.Recipient{id.Recipient()}}),
	}
	for _, name := range []string{"secrets.sops.yaml", "many.sops.yaml"} {
		docs[name] = readFile(t, filepath.Join(dir, "enc", name))
	}
	for i, doc := range shrinkCases {
		docs[fmt.Sprint(i)] = []byte(doc)
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) { checkShrinkEquivalent(t, doc) })
	}
}
