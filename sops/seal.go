package sops

// The writing side: Open decrypts a file into the plaintext a user edits, Seal encrypts edited
// plaintext the way sops 3 does, and UpdateKeys re-wraps the data key only, as `sops
// updatekeys`. Files are held as yaml.v3 trees whatever their format, so YAML comments survive
// an edit and every format shares one walk.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"filippo.io/age/plugin"
	"go.yaml.in/yaml/v3"

	"github.com/secretd/secretd/identity"
	"github.com/secretd/secretd/manifest"
)

// Version is the sops version written into new metadata: the format secretd writes is the one
// sops 3.12.2 writes and reads.
const Version = "3.12.2"

// nonceSize is the IV length sops uses for AES-GCM.
const nonceSize = 32

// Settings are what a creation rule decides for a new file: which values are encrypted (at most
// one of the four is set; none means the "_unencrypted" suffix) and whether the MAC covers only
// encrypted values.
type Settings struct {
	UnencryptedSuffix string
	EncryptedSuffix   string
	UnencryptedRegex  string
	EncryptedRegex    string
	MACOnlyEncrypted  bool
}

// Opened is a decrypted sops file: its plaintext as `sops -d` shows it, and what sealing it again
// needs (the data key, the encryption settings, and the IV of every value, so that a value that
// did not change keeps its exact ciphertext).
type Opened struct {
	// Format is the plaintext's format: manifest.FormatYAML, FormatJSON, FormatDotenv,
	// FormatINI or FormatBinary.
	Format string
	// Plain is the plaintext. It is a secret: wipe it with Close.
	Plain []byte
	// UI answers age plugins named as recipients; nil refuses their questions.
	UI *plugin.ClientUI

	settings Settings
	dataKey  []byte
	stash    map[string][][]byte
	// ageKeys are the stanzas the file had, kept for recipients that stay.
	ageKeys []ageKey
}

// Close wipes the data key and the plaintext.
func (o *Opened) Close() {
	clear(o.dataKey)
	clear(o.Plain)
}

// New starts an empty file of format with a fresh data key.
func New(format string, s Settings) (*Opened, error) {
	if err := checkFormat(format); err != nil {
		return nil, err
	}
	key := make([]byte, dataKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &Opened{Format: format, settings: s, dataKey: key, stash: map[string][][]byte{}}, nil
}

// checkFormat refuses the formats Seal cannot write.
func checkFormat(format string) error {
	switch format {
	case manifest.FormatYAML, manifest.FormatJSON, manifest.FormatDotenv, manifest.FormatINI, manifest.FormatBinary:
		return nil
	}
	return fmt.Errorf("secretd cannot write sops files in %s format", format)
}

// Open decrypts the sops file in data. The file is authenticated as by Decrypt before anything
// is returned. The identities are asked for the data key once: a passphrase, PIN or touch is
// asked for once.
func Open(data []byte, ids []age.Identity) (*Opened, error) {
	var key []byte
	_, err := decrypt(data, func(md *metadata) ([]byte, error) {
		k, err := unwrapDataKey(md, keys{age: ids})
		key = bytes.Clone(k)
		return k, err
	})
	if err != nil {
		clear(key)
		return nil, err
	}
	f, md, err := loadForWriting(data)
	if err != nil {
		clear(key)
		return nil, err
	}
	o := &Opened{Format: f.format, settings: settingsOf(md), dataKey: key, stash: map[string][][]byte{}, ageKeys: md.ageKeys()}
	if err := o.decryptTree(f.docs); err != nil {
		o.Close()
		return nil, err
	}
	if o.Plain, err = emitPlain(f.format, f.docs); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

// Seal encrypts plain (in o.Format) for recipients (as identity.ParseRecipient reads them: sops
// 3.12 takes age1…, age1pq1…, plugin and ssh- recipients) and returns the file sops
// would write: values encrypted under o's data key, a new MAC and lastmodified. Recipients the
// opened file already had keep their stanza.
func (o *Opened) Seal(plain []byte, recipients []string, now time.Time) ([]byte, error) {
	docs, err := parsePlain(o.Format, plain)
	if err != nil {
		return nil, err
	}
	// A copy: a failed Seal must leave every IV for the next try.
	w, err := o.newWalk(maps.Clone(o.stash))
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		if err := w.walk(d, nil, w.encryptLeaf, w.encryptComment); err != nil {
			return nil, err
		}
	}
	keys, err := wrapDataKey(o.dataKey, recipients, o.ageKeys, o.UI)
	if err != nil {
		return nil, err
	}
	m := &writtenMetadata{ageKeys: keys, lastModified: now.UTC().Format(time.RFC3339), settings: o.settings, binary: o.Format == manifest.FormatBinary}
	mac := fmt.Sprintf("%X", w.mac.Sum(nil))
	if m.mac, err = w.seal("str", []byte(mac), m.lastModified); err != nil {
		return nil, err
	}
	return emitEncrypted(o.Format, docs, m)
}

// Recipients lists the age recipients a sops file's data key is encrypted to.
func Recipients(data []byte) ([]string, error) {
	_, md, err := loadForWriting(data)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range md.ageKeys() {
		out = append(out, k.recipient)
	}
	return out, nil
}

// SameRecipients reports whether a and b name the same recipients, in any order, as
// `sops updatekeys` compares a file's keys with its rule's.
func SameRecipients(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// UpdateKeys re-wraps the data key of the sops file in data for recipients and leaves every
// value, the MAC and lastmodified as they are, as `sops updatekeys` does. Recipients that the
// file already lists keep their stanza. changed is false, and out is data, when the file is
// already encrypted to exactly recipients, in any order.
func UpdateKeys(data []byte, ids []age.Identity, recipients []string, ui *plugin.ClientUI) (out []byte, changed bool, err error) {
	f, md, err := loadForWriting(data)
	if err != nil {
		return nil, false, err
	}
	var current []string
	for _, k := range md.ageKeys() {
		current = append(current, k.recipient)
	}
	if SameRecipients(current, recipients) {
		return data, false, nil
	}
	key, err := unwrapDataKey(md, keys{age: ids})
	if err != nil {
		return nil, false, err
	}
	defer clear(key)
	keys, err := wrapDataKey(key, recipients, md.ageKeys(), ui)
	if err != nil {
		return nil, false, err
	}
	m := &writtenMetadata{ageKeys: keys, lastModified: md.lastModified, mac: md.mac, settings: settingsOf(md), binary: f.format == manifest.FormatBinary}
	out, err = emitEncrypted(f.format, f.docs, m)
	return out, err == nil, err
}

// settingsOf recovers the settings a file was encrypted with from its metadata.
func settingsOf(md *metadata) Settings {
	s := Settings{MACOnlyEncrypted: md.macOnlyEncrypted, UnencryptedSuffix: md.rule.unencryptedSuffix, EncryptedSuffix: md.rule.encryptedSuffix}
	if md.rule.unencryptedRegex != nil {
		s.UnencryptedRegex = md.rule.unencryptedRegex.String()
	}
	if md.rule.encryptedRegex != nil {
		s.EncryptedRegex = md.rule.encryptedRegex.String()
	}
	return s
}

// rule turns settings into the rule the reading side applies.
func (s Settings) rule() *rule {
	r := &rule{unencryptedSuffix: s.UnencryptedSuffix, encryptedSuffix: s.EncryptedSuffix}
	if s.UnencryptedRegex != "" {
		r.unencryptedRegex = compileRule(s.UnencryptedRegex)
	}
	if s.EncryptedRegex != "" {
		r.encryptedRegex = compileRule(s.EncryptedRegex)
	}
	if *r == (rule{}) {
		r.unencryptedSuffix = defaultUnencryptedSuffix
	}
	return r
}

// wrapDataKey encrypts key to each recipient as sops does (one armored age file each), reusing
// the stanza of a recipient found in existing.
func wrapDataKey(key []byte, recipients []string, existing []ageKey, ui *plugin.ClientUI) ([]ageKey, error) {
	if len(recipients) == 0 {
		return nil, errors.New("no recipients to encrypt the data key to")
	}
	var out []ageKey
	for _, r := range recipients {
		if i := slices.IndexFunc(existing, func(k ageKey) bool { return k.recipient == r }); i >= 0 {
			out = append(out, existing[i])
			continue
		}
		rcpt, err := identity.ParseRecipient(r, ui)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		aw := armor.NewWriter(&buf)
		w, err := age.Encrypt(aw, rcpt)
		if err != nil {
			return nil, fmt.Errorf("recipient %q: %w", r, err)
		}
		if _, err := w.Write(key); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		if err := aw.Close(); err != nil {
			return nil, err
		}
		out = append(out, ageKey{recipient: r, enc: buf.String()})
	}
	return out, nil
}

// writableFile is an encrypted sops file as yaml.v3 trees, without its metadata.
type writableFile struct {
	format string
	docs   []*yaml.Node
}

// loadForWriting reads an encrypted file into trees Seal can write back. YAML is read by yaml.v3
// to keep comments; the other formats come from the reading side's loaders.
func loadForWriting(data []byte) (*writableFile, *metadata, error) {
	f, err := loadSops(data)
	if err != nil {
		return nil, nil, err
	}
	md, err := parseMetadata(f.meta)
	if err != nil {
		return nil, nil, err
	}
	if len(md.groups) > 1 || len(md.keyTypes) != 1 || md.keyTypes[0] != "age" {
		return nil, nil, errors.New("secretd only rewrites sops files whose data key is held by age recipients alone, in one key group")
	}
	if md.rule.byComments() {
		return nil, nil, errors.New("secretd does not rewrite sops files that select encrypted values by comments")
	}
	if err := checkFormat(f.format); err != nil {
		return nil, nil, err
	}
	w := &writableFile{format: f.format}
	if f.sourceFormat == manifest.FormatYAML {
		docs, err := decodeYAML(data)
		if err != nil {
			return nil, nil, err
		}
		for _, d := range docs {
			dropMetadata(d)
		}
		w.docs = docs
		return w, md, nil
	}
	if f.sourceFormat == manifest.FormatDotenv {
		// Read again with comments, trailing ones included.
		if w.docs, err = parseDotenvLines(data, true); err != nil {
			return nil, nil, err
		}
		return w, md, nil
	}
	for _, root := range f.roots {
		w.docs = append(w.docs, toYAML(root, f.sourceFormat))
	}
	return w, md, nil
}

// yamlAnchorName matches the anchor name that yaml.v3 quotes in some errors: the name is part
// of the plaintext, which no error may repeat.
var yamlAnchorName = regexp.MustCompile(`anchor '[^']*'`)

// decodeYAML reads every document of a YAML stream, aliases expanded as sops expands them.
func decodeYAML(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed YAML: %s", yamlAnchorName.ReplaceAllString(err.Error(), "an anchor"))
		}
		root := &doc
		if len(doc.Content) == 1 {
			root = doc.Content[0]
			if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
				root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", HeadComment: doc.HeadComment}
			}
		} else {
			root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", HeadComment: doc.HeadComment}
		}
		if root.Kind != yaml.MappingNode {
			return nil, errors.New("a sops YAML document must be a mapping")
		}
		root.HeadComment = joinComments(doc.HeadComment, root.HeadComment)
		root.FootComment = joinComments(root.FootComment, doc.FootComment)
		budget := maxExpandedNodes
		root, err = normalize(root, &budget)
		if err != nil {
			return nil, err
		}
		docs = append(docs, root)
	}
	if len(docs) == 0 {
		docs = append(docs, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"})
	}
	return docs, nil
}

func joinComments(a, b string) string {
	if a == "" || b == "" || a == b {
		return a + b
	}
	return a + "\n" + b
}

// normalize returns n as sops' YAML store would write it back: every alias replaced by its own
// copy of what it names (each copy is encrypted under its own path), the layout (flow style,
// quoting) forgotten, and keys that are not strings refused, as sops refuses them. budget
// bounds the expanded size.
func normalize(n *yaml.Node, budget *int) (*yaml.Node, error) {
	if *budget--; *budget < 0 {
		return nil, fmt.Errorf("YAML expands to more than %d values", maxExpandedNodes)
	}
	c := *n
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		target, err := normalize(n.Alias, budget)
		if err != nil {
			return nil, err
		}
		c = *target
		c.HeadComment, c.LineComment, c.FootComment = n.HeadComment, n.LineComment, n.FootComment
		return &c, nil
	}
	c.Anchor, c.Style, c.Alias = "", 0, nil
	if c.Kind == yaml.ScalarNode && c.ShortTag() == "!!str" {
		c.Style = stringStyle(c.Value)
	}
	c.Content = make([]*yaml.Node, len(n.Content))
	seen := map[string]bool{}
	for i, child := range n.Content {
		var err error
		if c.Content[i], err = normalize(child, budget); err != nil {
			return nil, err
		}
		if n.Kind != yaml.MappingNode || i%2 == 1 {
			continue
		}
		// Errors give the line, not the key: a plaintext's key names stay out of messages.
		k := c.Content[i]
		if k.Kind != yaml.ScalarNode || (k.ShortTag() != "!!str" && k.ShortTag() != "!!merge") {
			return nil, fmt.Errorf("line %d: a key that is not a string; sops supports string keys only", child.Line)
		}
		if seen[k.Value] {
			return nil, fmt.Errorf("line %d: a key given twice in one mapping", child.Line)
		}
		seen[k.Value] = true
	}
	return &c, nil
}

// dropMetadata removes the top-level "sops" entry.
func dropMetadata(m *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == metadataKey {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// sealWalk walks a tree as sops' walkBranch does, with the data key's cipher and the MAC.
type sealWalk struct {
	rule    *rule
	macOnly bool
	gcm     cipher.AEAD
	mac     hash.Hash
	stash   map[string][][]byte
	scratch []byte
}

// newWalk starts a walk whose seal consumes IVs from, and whose open adds IVs to, stash.
func (o *Opened) newWalk(stash map[string][][]byte) (*sealWalk, error) {
	block, err := aes.NewCipher(o.dataKey)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, nonceSize)
	if err != nil {
		return nil, err
	}
	w := &sealWalk{rule: o.settings.rule(), macOnly: o.settings.MACOnlyEncrypted, gcm: gcm, mac: sha512.New(), stash: stash}
	if w.macOnly {
		io.WriteString(w.mac, macOnlyEncryptedInitialization)
	}
	return w, nil
}

type leafFunc func(n *yaml.Node, path []string, encrypted bool) error
type commentFunc func(c *string, path []string) error

// walk visits n's scalars in document order with their sops path (list items take the path of
// their list) and n's comments with the path of the map or list holding them.
func (w *sealWalk) walk(n *yaml.Node, path []string, leaf leafFunc, comment commentFunc) error {
	if err := w.comments(n, path, comment); err != nil {
		return err
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if err := w.comments(k, path, comment); err != nil {
				return err
			}
			child := append(path[:len(path):len(path)], k.Value)
			if v.Kind == yaml.ScalarNode {
				if err := w.comments(v, path, comment); err != nil {
					return err
				}
				if err := w.scalar(v, child, leaf); err != nil {
					return err
				}
				continue
			}
			if err := w.walk(v, child, leaf, comment); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			if item.Kind == yaml.ScalarNode {
				if err := w.comments(item, path, comment); err != nil {
					return err
				}
				if err := w.scalar(item, path, leaf); err != nil {
					return err
				}
				continue
			}
			if err := w.walk(item, path, leaf, comment); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		return w.scalar(n, path, leaf)
	}
	return nil
}

func (w *sealWalk) scalar(n *yaml.Node, path []string, leaf leafFunc) error {
	if n.ShortTag() == "!!null" {
		return nil
	}
	return leaf(n, path, w.rule.shouldBeEncrypted(path, nil))
}

// comments hands each comment line of n to comment when sops would encrypt it.
func (w *sealWalk) comments(n *yaml.Node, path []string, comment commentFunc) error {
	if !w.rule.shouldBeEncrypted(path, nil) {
		return nil
	}
	for _, c := range []*string{&n.HeadComment, &n.LineComment, &n.FootComment} {
		if *c == "" {
			continue
		}
		lines := strings.Split(*c, "\n")
		for i := range lines {
			if strings.HasPrefix(lines[i], "#") {
				if err := comment(&lines[i], path); err != nil {
					return err
				}
			}
		}
		*c = strings.Join(lines, "\n")
	}
	return nil
}

func aad(path []string) string { return strings.Join(path, ":") + ":" }

// sopsValue is the value sops' stores read for a scalar and how sops spells it in encrypted
// values and the MAC.
func sopsValue(n *yaml.Node) (typ string, text []byte, err error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return "", nil, errors.New("a value cannot be read")
	}
	switch v := v.(type) {
	case string:
		return "str", []byte(v), nil
	case int:
		return "int", []byte(strconv.Itoa(v)), nil
	case float64:
		return "float", []byte(strconv.FormatFloat(v, 'f', -1, 64)), nil
	case bool:
		return "bool", boolBytes(v), nil
	case time.Time:
		b, err := v.MarshalText()
		return "time", b, err
	}
	return "", nil, fmt.Errorf("sops cannot encrypt a value of YAML type %s", n.ShortTag())
}

func (w *sealWalk) encryptLeaf(n *yaml.Node, path []string, encrypted bool) error {
	typ, text, err := sopsValue(n)
	if err != nil {
		return fmt.Errorf("value at %s: %w", describe(path), err)
	}
	if !w.macOnly || encrypted {
		w.mac.Write(text)
	}
	if !encrypted || (typ == "str" && len(text) == 0) {
		// Written back as sops writes the value it read: custom tags and odd spellings go.
		return plainNode(n, typ, text)
	}
	enc, err := w.seal(typ, text, aad(path))
	if err != nil {
		return err
	}
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: enc, HeadComment: n.HeadComment, LineComment: n.LineComment, FootComment: n.FootComment}
	return nil
}

func (w *sealWalk) encryptComment(c *string, path []string) error {
	if *c == "#" {
		// An empty comment stays as it is: its ciphertext would have empty data, which the
		// ENC[…] syntax does not allow.
		return nil
	}
	enc, err := w.seal("comment", []byte((*c)[1:]), aad(path))
	if err != nil {
		return err
	}
	*c = "#" + enc
	return nil
}

func stashKey(typ string, text []byte, additional string) string {
	return additional + "\x00" + typ + "\x00" + string(text)
}

// seal encrypts one value. A value decrypted by Open with the same type, text and path reuses
// its IV, and so its ciphertext, as sops' cipher does. Equal values under one path (list
// items) take the IVs in document order, so each keeps its own ciphertext.
func (w *sealWalk) seal(typ string, text []byte, additional string) (string, error) {
	k := stashKey(typ, text, additional)
	var iv []byte
	if ivs := w.stash[k]; len(ivs) > 0 {
		iv, w.stash[k] = ivs[0], ivs[1:]
	} else {
		iv = make([]byte, nonceSize)
		if _, err := rand.Read(iv); err != nil {
			return "", err
		}
	}
	out := w.gcm.Seal(nil, iv, text, []byte(additional))
	tag := len(out) - w.gcm.Overhead()
	return fmt.Sprintf("ENC[AES256_GCM,data:%s,iv:%s,tag:%s,type:%s]",
		base64.StdEncoding.EncodeToString(out[:tag]), base64.StdEncoding.EncodeToString(iv),
		base64.StdEncoding.EncodeToString(out[tag:]), typ), nil
}

// open decrypts one value and remembers its IV for seal.
func (w *sealWalk) open(s, additional string) (typ string, plain []byte, err error) {
	var ev encryptedValue
	if err := ev.parse(s, &w.scratch); err != nil {
		return "", nil, err
	}
	if len(ev.iv) != nonceSize {
		return "", nil, errors.New("unexpected IV size")
	}
	plain, err = w.gcm.Open(nil, ev.iv, append(slices.Clone(ev.data), ev.tag...), []byte(additional))
	if err != nil {
		return "", nil, err
	}
	k := stashKey(ev.typ, plain, additional)
	w.stash[k] = append(w.stash[k], slices.Clone(ev.iv))
	return ev.typ, plain, nil
}

// decryptTree decrypts docs in place into the plaintext nodes sops' stores write.
func (o *Opened) decryptTree(docs []*yaml.Node) error {
	w, err := o.newWalk(o.stash)
	if err != nil {
		return err
	}
	leaf := func(n *yaml.Node, path []string, encrypted bool) error {
		if !encrypted || n.Value == "" {
			return nil
		}
		typ, plain, err := w.open(n.Value, aad(path))
		if err != nil {
			return fmt.Errorf("value at %s cannot be decrypted", describe(path))
		}
		return plainNode(n, typ, plain)
	}
	comment := func(c *string, path []string) error {
		if typ, plain, err := w.open((*c)[1:], aad(path)); err == nil && typ == "comment" {
			*c = "#" + string(plain)
		}
		return nil
	}
	for _, d := range docs {
		if err := w.walk(d, nil, leaf, comment); err != nil {
			return err
		}
	}
	return nil
}

// plainNode turns n into the scalar sops writes for a decrypted value of type typ.
func plainNode(n *yaml.Node, typ string, plain []byte) error {
	text, tag := string(plain), "!!str"
	switch typ {
	case "int":
		tag = "!!int"
	case "float":
		tag = "!!float"
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return errors.New("a decrypted float is not a number")
		}
		text = strconv.FormatFloat(f, 'g', -1, 64)
	case "bool":
		tag = "!!bool"
		b, err := strconv.ParseBool(text)
		if err != nil {
			return errors.New("a decrypted boolean is not one")
		}
		text = strconv.FormatBool(b)
	case "time":
		tag = "!!timestamp"
	}
	n.Tag, n.Value, n.Style = tag, text, 0
	if tag == "!!str" {
		n.Style = stringStyle(text)
	}
	return nil
}

// stringStyle is how yaml.v3 writes a Go string, as sops' YAML store does.
func stringStyle(s string) yaml.Style {
	var n yaml.Node
	if err := n.Encode(s); err != nil {
		return 0
	}
	return n.Style
}
