package sops

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// testIdentity is a throwaway age key used by unit tests and fuzz seeds; it protects nothing.
const testIdentity = "AGE-SECRET-KEY-1PAWUTVZWDYG5YS0650GH8VK74AF5GG09UHKY849WMRJ5XDCXY4KS0D2R4D"

func mustIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.ParseX25519Identity(testIdentity)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Plaintext tree helpers.
func str(s string) *structured.Node { return &structured.Node{Kind: structured.String, Text: s} }
func num(i int) *structured.Node {
	return &structured.Node{Kind: structured.Int, Text: strconv.Itoa(i)}
}
func flt(s string) *structured.Node { return &structured.Node{Kind: structured.Float, Text: s} }
func boolean(b bool) *structured.Node {
	return &structured.Node{Kind: structured.Bool, Text: strconv.FormatBool(b)}
}
func null() *structured.Node { return &structured.Node{Kind: structured.Null, Text: "null"} }
func list(items ...*structured.Node) *structured.Node {
	return &structured.Node{Kind: structured.List, Items: items}
}
func obj(kv ...any) *structured.Node {
	n := &structured.Node{Kind: structured.Map}
	for i := 0; i < len(kv); i += 2 {
		n.Entries = append(n.Entries, structured.Entry{Key: kv[i].(string), Value: kv[i+1].(*structured.Node)})
	}
	return n
}

// fileSpec describes a sops file for sopsFile to produce. It encrypts independently of the
// package, following sops' source: values bound to "k1:k2:" paths, a SHA-512 MAC over values in
// document order, the MAC encrypted with lastmodified as associated data.
type fileSpec struct {
	format string // manifest.Format*; FormatBinary writes sops' JSON envelope
	roots  []*structured.Node
	// ruleName/ruleValue set one of unencrypted_suffix, encrypted_suffix, unencrypted_regex,
	// encrypted_regex; none means sops' default "_unencrypted" suffix.
	ruleName, ruleValue string
	macOnlyEncrypted    bool
	recipients          []age.Recipient
	// extraMeta adds metadata entries (other key types, for instance).
	extraMeta    []structured.Entry
	lastModified string
	// dataKey overrides the random data key (its length too).
	dataKey []byte
	// corruptMAC encrypts a MAC that does not match the values.
	corruptMAC bool
	// commentBefore writes a comment line before top-level keys (YAML and dotenv), for the
	// comment rules, which the builder applies to top-level keys only.
	commentBefore map[string]string
}

type testEncrypter struct {
	spec *fileSpec
	gcm  cipher.AEAD
	key  []byte
	hash interface{ Write([]byte) (int, error) }
}

func (e *testEncrypter) seal(plaintext []byte, typ, aad string) string {
	iv := make([]byte, 32)
	if _, err := rand.Read(iv); err != nil {
		panic(err)
	}
	out := e.gcm.Seal(nil, iv, plaintext, []byte(aad))
	return fmt.Sprintf("ENC[AES256_GCM,data:%s,iv:%s,tag:%s,type:%s]",
		base64.StdEncoding.EncodeToString(out[:len(out)-16]),
		base64.StdEncoding.EncodeToString(iv),
		base64.StdEncoding.EncodeToString(out[len(out)-16:]), typ)
}

func (e *testEncrypter) encrypted(path []string) bool {
	s := e.spec
	anyMatch := func(match func(string) bool) bool {
		for _, p := range path {
			if match(p) {
				return true
			}
		}
		return false
	}
	switch s.ruleName {
	case "", "unencrypted_suffix":
		suffix := s.ruleValue
		if suffix == "" {
			suffix = "_unencrypted"
		}
		return !anyMatch(func(p string) bool { return strings.HasSuffix(p, suffix) })
	case "encrypted_suffix":
		return anyMatch(func(p string) bool { return strings.HasSuffix(p, s.ruleValue) })
	case "unencrypted_regex":
		return !anyMatch(regexp.MustCompile(s.ruleValue).MatchString)
	case "encrypted_regex":
		return anyMatch(regexp.MustCompile(s.ruleValue).MatchString)
	case "encrypted_comment_regex":
		c, ok := s.commentBefore[path[0]]
		return ok && regexp.MustCompile(s.ruleValue).MatchString(c)
	case "unencrypted_comment_regex":
		c, ok := s.commentBefore[path[0]]
		return !ok || !regexp.MustCompile(s.ruleValue).MatchString(c)
	}
	panic("unknown rule " + s.ruleName)
}

// sopsBytes is how sops spells a plaintext value for the MAC and for encryption.
func sopsBytes(n *structured.Node) ([]byte, string) {
	switch n.Kind {
	case structured.Int:
		return []byte(n.Text), "int"
	case structured.Float:
		f, err := strconv.ParseFloat(n.Text, 64)
		if err != nil {
			panic(err)
		}
		return []byte(strconv.FormatFloat(f, 'f', -1, 64)), "float"
	case structured.Bool:
		if n.Text == "true" {
			return []byte("True"), "bool"
		}
		return []byte("False"), "bool"
	}
	return []byte(n.Text), "str"
}

func (e *testEncrypter) walk(n *structured.Node, path []string) *structured.Node {
	switch n.Kind {
	case structured.Map:
		out := &structured.Node{Kind: structured.Map}
		for _, entry := range n.Entries {
			out.Entries = append(out.Entries, structured.Entry{Key: entry.Key, Value: e.walk(entry.Value, append(append([]string{}, path...), entry.Key))})
		}
		return out
	case structured.List:
		out := &structured.Node{Kind: structured.List}
		for _, item := range n.Items {
			out.Items = append(out.Items, e.walk(item, path))
		}
		return out
	case structured.Null:
		return n
	}
	plain, typ := sopsBytes(n)
	enc := e.encrypted(path)
	if !e.spec.macOnlyEncrypted || enc {
		e.hash.Write(plain)
	}
	if !enc {
		return n
	}
	if n.Kind == structured.String && n.Text == "" {
		return str("")
	}
	return str(e.seal(plain, typ, strings.Join(path, ":")+":"))
}

// sopsFile writes spec as sops would, returning the file and its data key.
func sopsFile(t testing.TB, spec fileSpec) []byte {
	t.Helper()
	e := &testEncrypter{spec: &spec}
	e.key = spec.dataKey
	if e.key == nil {
		e.key = make([]byte, 32)
		if _, err := rand.Read(e.key); err != nil {
			t.Fatal(err)
		}
	}
	block, err := aes.NewCipher(e.key[:32])
	if err != nil {
		t.Fatal(err)
	}
	if e.gcm, err = cipher.NewGCMWithNonceSize(block, 32); err != nil {
		t.Fatal(err)
	}
	h := sha512.New()
	if spec.macOnlyEncrypted {
		h.Write([]byte{0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0xb, 0xb, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69})
	}
	e.hash = h
	roots := spec.roots
	if spec.format == manifest.FormatBinary {
		roots = []*structured.Node{obj("data", roots[0])}
	}
	var encRoots []*structured.Node
	for _, r := range roots {
		encRoots = append(encRoots, e.walk(r, nil))
	}
	macHex := strings.ToUpper(fmt.Sprintf("%x", h.Sum(nil)))
	if spec.corruptMAC {
		macHex = strings.Repeat("0", len(macHex))
	}
	lastModified := spec.lastModified
	if lastModified == "" {
		lastModified = "2026-01-02T03:04:05Z"
	}
	aad := lastModified
	if strings.Contains(aad, ".") { // sops formats lastmodified with time.RFC3339
		aad = regexp.MustCompile(`\.\d+`).ReplaceAllString(aad, "")
	}

	meta := &structured.Node{Kind: structured.Map}
	if len(spec.recipients) > 0 {
		ages := list()
		for _, r := range spec.recipients {
			var buf bytes.Buffer
			aw := armor.NewWriter(&buf)
			w, err := age.Encrypt(aw, r)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(e.key); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := aw.Close(); err != nil {
				t.Fatal(err)
			}
			ages.Items = append(ages.Items, obj("recipient", str(fmt.Sprint(r)), "enc", str(buf.String())))
		}
		meta.Entries = append(meta.Entries, structured.Entry{Key: "age", Value: ages})
	}
	meta.Entries = append(meta.Entries, spec.extraMeta...)
	meta.Entries = append(meta.Entries,
		structured.Entry{Key: "lastmodified", Value: str(lastModified)},
		structured.Entry{Key: "mac", Value: str(e.seal([]byte(macHex), "str", aad))})
	if spec.ruleName != "" {
		meta.Entries = append(meta.Entries, structured.Entry{Key: spec.ruleName, Value: str(spec.ruleValue)})
	}
	if spec.macOnlyEncrypted {
		meta.Entries = append(meta.Entries, structured.Entry{Key: "mac_only_encrypted", Value: boolean(true)})
	}
	meta.Entries = append(meta.Entries, structured.Entry{Key: "version", Value: str("3.12.2")})

	var out []byte
	switch spec.format {
	case manifest.FormatYAML, manifest.FormatJSON, manifest.FormatBinary:
		for i, r := range encRoots {
			r.Entries = append(r.Entries, structured.Entry{Key: "sops", Value: meta})
			encRoots[i] = r
		}
		format := spec.format
		if format == manifest.FormatBinary {
			format = manifest.FormatJSON
		}
		doc, err := structured.NewDocument(format, encRoots...)
		if err != nil {
			t.Fatal(err)
		}
		if out, err = doc.Value(""); err != nil {
			t.Fatal(err)
		}
	case manifest.FormatDotenv:
		root := encRoots[0]
		for _, kv := range flattenMeta(meta) {
			root.Entries = append(root.Entries, structured.Entry{Key: "sops_" + kv.Key, Value: kv.Value})
		}
		doc, err := structured.NewDocument(manifest.FormatDotenv, root)
		if err != nil {
			t.Fatal(err)
		}
		if out, err = doc.Value(""); err != nil {
			t.Fatal(err)
		}
	case manifest.FormatINI:
		root := encRoots[0]
		section := &structured.Node{Kind: structured.Map}
		for _, kv := range flattenMeta(meta) {
			section.Entries = append(section.Entries, structured.Entry{Key: kv.Key, Value: str(strings.ReplaceAll(kv.Value.Text, "\n", `\n`))})
		}
		root.Entries = append(root.Entries, structured.Entry{Key: "sops", Value: section})
		doc, err := structured.NewDocument(manifest.FormatINI, root)
		if err != nil {
			t.Fatal(err)
		}
		if out, err = doc.Value(""); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown format %q", spec.format)
	}
	for key, comment := range spec.commentBefore {
		switch spec.format {
		case manifest.FormatYAML:
			out = bytes.Replace(out, []byte("\n"+key+":"), []byte("\n#"+comment+"\n"+key+":"), 1)
		case manifest.FormatDotenv:
			out = bytes.Replace(out, []byte("\n"+key+"="), []byte("\n#"+comment+"\n"+key+"="), 1)
		default:
			t.Fatalf("comments in %s files are not supported by the builder", spec.format)
		}
	}
	return out
}

// flattenMeta flattens metadata the way sops does for dotenv and INI, sorted by key.
func flattenMeta(meta *structured.Node) []structured.Entry {
	var out []structured.Entry
	var walk func(prefix string, n *structured.Node)
	walk = func(prefix string, n *structured.Node) {
		switch n.Kind {
		case structured.Map:
			for _, e := range n.Entries {
				walk(prefix+"__map_"+e.Key, e.Value)
			}
		case structured.List:
			for i, item := range n.Items {
				walk(prefix+"__list_"+strconv.Itoa(i), item)
			}
		default:
			out = append(out, structured.Entry{Key: prefix, Value: str(n.Text)})
		}
	}
	for _, e := range meta.Entries {
		walk(e.Key, e.Value)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
