// Package sops reads files encrypted by sops (https://github.com/getsops/sops) 3.x natively:
// it recognises the YAML, JSON, dotenv, INI and binary forms, unwraps the data key with age
// identities, decrypts every value with AES-256-GCM bound to its key path, and verifies the
// file's MAC before returning anything. It also writes them as sops 3.12 does (Seal,
// UpdateKeys), for secretd's authoring commands.
//
// age and PGP recipients are supported; files whose data key is held only by a cloud KMS or
// Vault are refused with an error naming what they use. A data key split across key groups
// (Shamir secret sharing) is recovered from as many groups as the file's threshold asks, as sops
// does. Values left in cleartext by unencrypted_suffix, encrypted_suffix, unencrypted_regex,
// encrypted_regex or the comment regexes (YAML and dotenv) are returned as they are and
// authenticated the way sops authenticates them.
//
// Open, Seal and UpdateKeys write such files as sops 3 does, for editing and re-keying.
package sops

import (
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"filippo.io/age"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// macOnlyEncryptedInitialization starts the MAC of files with mac_only_encrypted, so their MAC
// differs from one over all values: SHA-256("sops"), as sops defines it.
const macOnlyEncryptedInitialization = "\x8a\x3f\xd2\xad\x54\xce\x66\x52\x7b\x10\x34\xf3\xd1\x47\xbe\x0b" +
	"\x0b\x97\x5b\x3b\xf4\x4f\x72\xc6\xfd\xad\xec\x81\x76\xf2\x7d\x69"

// dataKeySize is the length of sops' AES-256 data key.
const dataKeySize = 32

// Detect reports whether data is a sops-encrypted file and the format of its plaintext:
// manifest.FormatYAML, FormatJSON, FormatDotenv, FormatINI, or FormatBinary for sops' binary
// envelope. Files without sops metadata (a plain age file, a plain YAML document) are not.
func Detect(data []byte) (format string, ok bool) {
	f, err := load(data)
	if err != nil {
		return "", false
	}
	return f.format, true
}

// HasKey checks, without decrypting anything, that key names a value of the sops file in
// data (sops keeps key names in cleartext). The key syntax and errors are structured's; the
// empty key (the whole document) always exists.
func HasKey(data []byte, key string) error {
	f, err := loadSops(data)
	if err != nil {
		return err
	}
	doc, err := f.document(f.roots)
	if err != nil {
		return err
	}
	doc.SetUnbound(structured.Unbound{ListPositions: true})
	return doc.Has(key)
}

// Decrypt decrypts the sops file in data with ids and returns its plaintext document. The data
// key is unwrapped from the file's age recipients with ids, or its PGP recipients with pgp;
// every value is authenticated against its key path and the file's MAC is verified, so a
// modified file yields an error and no document.
func Decrypt(data []byte, ids []age.Identity, pgp ...PGPIdentity) (*structured.Document, error) {
	return decrypt(data, func(md *metadata) ([]byte, error) { return unwrapDataKey(md, keys{age: ids, pgp: pgp}) })
}

// decrypt is Decrypt with the data key from unwrap, which decrypt clears when done.
func decrypt(data []byte, unwrap func(*metadata) ([]byte, error)) (*structured.Document, error) {
	f, err := loadSops(data)
	if err != nil {
		return nil, err
	}
	md, err := parseMetadata(f.meta)
	if err != nil {
		return nil, err
	}
	macAAD, err := md.macAAD()
	if err != nil {
		return nil, err
	}
	if md.mac == "" {
		return nil, errors.New("the file has no MAC")
	}
	if md.rule.byComments() && f.sourceFormat == manifest.FormatINI {
		return nil, errors.New("the file selects encrypted values by comments (encrypted_comment_regex or unencrypted_comment_regex), which secretd does not support in INI files")
	}
	dataKey, err := unwrap(md)
	if err != nil {
		return nil, err
	}
	defer clear(dataKey)
	c, err := newValueCipher(dataKey)
	if err != nil {
		return nil, err
	}
	defer c.wipe()

	w := &walker{comments: f.comments, cipher: c, rule: &md.rule, macOnlyEncrypted: md.macOnlyEncrypted, sourceFormat: f.sourceFormat, format: f.format, mac: sha512.New()}
	if md.macOnlyEncrypted {
		io.WriteString(w.mac, macOnlyEncryptedInitialization)
	}
	plain := make([]*structured.Node, len(f.roots))
	for i, root := range f.roots {
		if plain[i], err = w.walk(root, nil); err != nil {
			return nil, err
		}
	}
	if err := verifyMAC(c, md.mac, macAAD, w.mac.Sum(nil)); err != nil {
		return nil, err
	}
	doc, err := f.document(plain)
	if err != nil {
		return nil, err
	}
	doc.SetUnbound(w.unbound())
	return doc, nil
}

// unbound lists what the MAC leaves an editor of the file free to move. sops binds each
// encrypted value to its key path, but list items share their list's path, and cleartext
// values enter the MAC only as one unseparated sequence (and not at all with
// mac_only_encrypted): their keys can be swapped and text moved between them.
func (w *walker) unbound() structured.Unbound {
	u := structured.Unbound{ListPositions: true}
	var reason string
	switch {
	case len(w.cleartext) == 0:
		return u
	case w.macOnlyEncrypted:
		reason = "it is a cleartext value and the file's MAC does not cover cleartext (mac_only_encrypted)"
	case len(w.cleartext) > 1:
		reason = fmt.Sprintf("it is a cleartext value, and sops authenticates the file's %d cleartext values only as one sequence, not by key (an edit could move text between them); encrypt it", len(w.cleartext))
	default:
		return u
	}
	u.Values = make(map[*structured.Node]string, len(w.cleartext))
	for _, n := range w.cleartext {
		u.Values[n] = reason
	}
	return u
}

// loadSops loads data, turning "no metadata" into a user-facing error.
func loadSops(data []byte) (*encryptedFile, error) {
	f, err := load(data)
	if errors.Is(err, errNoMetadata) {
		return nil, errors.New("not a sops-encrypted file: no sops metadata found")
	}
	if err != nil {
		return nil, fmt.Errorf("reading sops file: %w", err)
	}
	return f, nil
}

// document wraps roots (encrypted or decrypted) as a Document of the file's plaintext format.
func (f *encryptedFile) document(roots []*structured.Node) (*structured.Document, error) {
	if f.format == manifest.FormatBinary {
		return structured.NewDocument(manifest.FormatBinary, roots[0].Entries[0].Value)
	}
	return structured.NewDocument(f.format, roots...)
}

// verifyMAC checks the computed SHA-512 against the file's MAC, which sops encrypts with
// lastmodified as associated data.
func verifyMAC(c *valueCipher, mac, aad string, computed []byte) error {
	ev, err := parseEncryptedValue(mac)
	if err != nil {
		return fmt.Errorf("sops metadata mac: %w", err)
	}
	stored, err := c.open(ev, aad)
	if err != nil {
		return errors.New("MAC cannot be authenticated: the file's metadata (lastmodified or mac) was modified, or the file is corrupt")
	}
	want := strings.ToUpper(hex.EncodeToString(computed))
	if subtle.ConstantTimeCompare(stored, []byte(want)) != 1 {
		return errors.New("MAC mismatch: the file's values were modified after it was encrypted")
	}
	return nil
}

// walker decrypts a tree in document order, feeding the MAC as sops does.
type walker struct {
	cipher           *valueCipher
	rule             *rule
	macOnlyEncrypted bool
	// sourceFormat is how the file is written (it decides how cleartext values were read);
	// format is the plaintext's format (it decides how values are rendered).
	sourceFormat, format string
	mac                  hash.Hash
	// scratch holds the decoded ciphertext of the value being decrypted.
	scratch []byte
	// comments and levels give, for the value being decrypted, the comments before it and
	// before each entry enclosing it (one level per map or list).
	comments commentTable
	levels   [][]string
	// cleartext holds the output node of every value the file keeps in cleartext.
	cleartext []*structured.Node
}

func (w *walker) walk(n *structured.Node, path []string) (*structured.Node, error) {
	switch n.Kind {
	case structured.Map:
		out := &structured.Node{Kind: structured.Map, Entries: make([]structured.Entry, len(n.Entries))}
		var comments plainComments
		for i, e := range n.Entries {
			commentPath := path
			if w.sourceFormat == manifest.FormatINI && len(path) == 0 {
				// sops keeps a section's comment inside the section.
				commentPath = []string{e.Key}
			}
			comments.add(i, w.openComments(w.comments.before(n, i), commentPath))
			w.levels = append(w.levels, w.comments.before(n, i))
			child, err := w.walk(e.Value, append(path[:len(path):len(path)], e.Key))
			w.levels = w.levels[:len(w.levels)-1]
			if err != nil {
				return nil, err
			}
			out.Entries[i] = structured.Entry{Key: e.Key, Value: child, Merge: e.Merge}
		}
		comments.add(len(n.Entries), w.openComments(w.comments.before(n, len(n.Entries)), path))
		out.Comments = comments.lines(len(out.Entries))
		return out, nil
	case structured.List:
		// sops gives list elements the path of the list itself.
		out := &structured.Node{Kind: structured.List, Items: make([]*structured.Node, 0, len(n.Items))}
		var comments plainComments
		for i, item := range n.Items {
			comments.add(len(out.Items), w.openComments(w.comments.before(n, i), path))
			if c, ok := w.openComment(item, path); ok {
				// sops writes a comment before a list's first item as an item of its own,
				// and reads it back as a comment.
				comments.add(len(out.Items), []string{c})
				continue
			}
			w.levels = append(w.levels, w.comments.before(n, i))
			child, err := w.walk(item, path)
			w.levels = w.levels[:len(w.levels)-1]
			if err != nil {
				return nil, err
			}
			out.Items = append(out.Items, child)
		}
		comments.add(len(out.Items), w.openComments(w.comments.before(n, len(n.Items)), path))
		out.Comments = comments.lines(len(out.Items))
		return out, nil
	case structured.Null:
		// sops neither decrypts nor authenticates null values.
		return &structured.Node{Kind: structured.Null, Tag: structured.TagNull, Text: "null"}, nil
	}
	return w.leaf(n, path)
}

func (w *walker) leaf(n *structured.Node, path []string) (*structured.Node, error) {
	if !w.rule.shouldBeEncrypted(path, w.levels) {
		out, macBytes, err := cleartextValue(n, w.sourceFormat, w.format)
		if err != nil {
			return nil, fmt.Errorf("value at %s: %w", describe(path), err)
		}
		if !w.macOnlyEncrypted {
			w.mac.Write(macBytes)
		}
		w.cleartext = append(w.cleartext, out)
		return out, nil
	}
	if n.Kind != structured.String || (n.Tag != "" && n.Tag != structured.TagString) {
		return nil, fmt.Errorf("value at %s should be encrypted but is a cleartext %s", describe(path), n.Kind)
	}
	if n.Text == "" {
		// sops leaves empty strings as they are.
		return &structured.Node{Kind: structured.String, Text: ""}, nil
	}
	var ev encryptedValue
	if err := ev.parse(n.Text, &w.scratch); err != nil {
		return nil, fmt.Errorf("value at %s should be encrypted but is %w", describe(path), err)
	}
	plain, err := w.cipher.open(&ev, strings.Join(path, ":")+":")
	if err != nil {
		return nil, fmt.Errorf("value at %s failed authentication: the file was modified (values changed or moved between keys) or is corrupt", describe(path))
	}
	out, macBytes, err := decryptedValue(ev.typ, plain, w.format)
	if err != nil {
		return nil, fmt.Errorf("value at %s: %w", describe(path), err)
	}
	w.mac.Write(macBytes)
	return out, nil
}

// plainComments collects the decrypted comments of a map or list by entry or item index.
type plainComments map[int][]string

func (p *plainComments) add(i int, lines []string) {
	if len(lines) == 0 {
		return
	}
	if *p == nil {
		*p = plainComments{}
	}
	(*p)[i] = append((*p)[i], lines...)
}

// lines lays the comments out as structured.Node.Comments for a container of size entries.
func (p plainComments) lines(size int) [][]string {
	if len(p) == 0 {
		return nil
	}
	out := make([][]string, size+1)
	for i, l := range p {
		out[i] = l
	}
	return out
}

// openComments decrypts comment lines. sops encrypts a comment with its container's path and
// keeps one it cannot decrypt as it is (older versions of sops left comments in cleartext).
func (w *walker) openComments(lines []string, path []string) []string {
	if len(lines) == 0 {
		return nil
	}
	out := make([]string, len(lines))
	for i, c := range lines {
		out[i] = c
		if plain, ok := w.openComment(&structured.Node{Kind: structured.String, Text: c}, path); ok {
			out[i] = plain
		}
	}
	return out
}

// openComment decrypts n if it is an encrypted comment: a string ENC[…,type:comment].
func (w *walker) openComment(n *structured.Node, path []string) (string, bool) {
	if n.Kind != structured.String || !strings.HasPrefix(n.Text, "ENC[") || !strings.HasSuffix(n.Text, ",type:comment]") {
		return "", false
	}
	var ev encryptedValue
	if err := ev.parse(n.Text, &w.scratch); err != nil || ev.typ != "comment" {
		return "", false
	}
	plain, err := w.cipher.open(&ev, strings.Join(path, ":")+":")
	if err != nil {
		return "", false
	}
	return string(plain), true
}
