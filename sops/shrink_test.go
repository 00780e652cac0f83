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
	slow, slowErr := loadYAMLWith(data, false)
	fast, fastErr := loadYAMLWith(data, true)
	if slowErr != nil {
		return
	}
	if fastErr != nil {
		t.Fatalf("placeholder read fails where a plain read succeeds: %v", fastErr)
	}
	if len(slow.roots) != len(fast.roots) || !sameTree(slow.meta, fast.meta) {
		t.Fatal("placeholder read differs in documents or metadata")
	}
	for i := range slow.roots {
		if !sameTree(slow.roots[i], fast.roots[i]) {
			t.Fatalf("placeholder read differs in document %d", i)
		}
	}
}

func TestShrinkIsTransparent(t *testing.T) {
	id := mustIdentity(t)
	real := string(sopsFile(t, fileSpec{format: manifest.FormatYAML, roots: []*structured.Node{nestedTree()}, recipients: []age.Recipient{id.Recipient()}}))
	token := "ENC[AES256_GCM,data:Zm9v,iv:YmFy,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]"
	meta := "sops:\n    mac: " + token + "\n    lastmodified: \"2026-01-02T03:04:05Z\"\n"
	for i, doc := range []string{
		real,
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
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkShrinkEquivalent(t, []byte(doc)) })
	}
}

// simpleShapes are documents in the shape sops writes, with every construct parseSimpleYAML
// reads itself.
var simpleShapes = []string{
	"a: b\n",
	"a: 1\nb: 1.5\nc: true\nd: ~\ne: null\nf:\ng: 2001-12-14\nh: 0x1F\ni: .inf\nj: 1_000\n",
	"a: \"quoted: yes\"\nb: 'single'\nc: \"  padded \"\nd: \"\"\ne: ''\n",
	"a:\n    b:\n        c: deep\n    d: e\nf: g\n",
	"list:\n    - a\n    - 2\n    - key: v\n      other: w\n    - nested:\n        x: y\n",
	"block: |\n    line one\n      indented\n    line three\nstrip: |-\n    no newline\nafter: x\n",
	"guest_accounts.json: v\npath/like-key: v\nk.1: v\n",
	"url: https://example.org/a?b=c&d\nregex: ^(data|stringData)$\nversion: 3.12.2\nmail: a@b.c\n",
	"a: x,y[z]{w}\nb: plain text with spaces\n",
	"seq:\n    - - nested\n",
	"a:\n- same-indent sequence\n",
	"a: b\n  continued\n",
	"a: b # comment\n",
	"a: 'it''s'\n",
	"a: \"esc\\n\"\n",
	"1: int key\n",
	"true: bool key\n",
	"a: b\na: c\n",
	"a: |2\n    x\n",
	"a: >\n    folded\n",
	"a: -1\nb: -x\n",
	"a:  two spaces\n",
	"a: b\n\nc: d\n",
	"a: b\r\nc: d\r\n",
	"a: ä\n",
	"- top level list\n",
	"a: [1, 2]\nb: {c: d}\n",
	"a: &x v\nb: *x\n",
	"a: !!str 1\n",
	"---\na: b\n",
	"a: b\n---\nc: d\n",
	"a: b",
	"sops:\n    mac: x\n    lastmodified: \"2026-01-02T03:04:05Z\"\n",
}

func TestSimpleYAMLMatchesYAMLv3(t *testing.T) {
	meta := "sops:\n    mac: m\n    lastmodified: \"2026-01-02T03:04:05Z\"\n"
	for i, doc := range simpleShapes {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			checkShrinkEquivalent(t, []byte(doc+meta))
			checkShrinkEquivalent(t, []byte(doc))
		})
	}
}

func TestSimpleYAMLReadsSopsOutput(t *testing.T) {
	dir := interop.Dir(t)
	id := mustIdentity(t)
	files := map[string][]byte{
		"generated": sopsFile(t, fileSpec{format: manifest.FormatYAML, roots: []*structured.Node{nestedTree()}, recipients: []age.Recipient{id.Recipient()}}),
	}
	for _, name := range []string{"secrets.sops.yaml", "many.sops.yaml"} {
		files[name] = readFile(t, filepath.Join(dir, "enc", name))
	}
	for name, data := range files {
		s := shrinkEncrypted(data)
		if _, ok := parseSimpleYAML(string(s.data), s); !ok {
			t.Errorf("%s: the fast reader does not take sops' own output", name)
		}
		checkShrinkEquivalent(t, data)
	}
}
