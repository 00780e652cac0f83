// Package sops reads files encrypted by sops (https://github.com/getsops/sops) 3.x natively:
// it recognises the YAML, JSON, dotenv, INI and binary forms, unwraps the data key with age
// identities, decrypts every value with AES-256-GCM bound to its key path, and verifies the
// file's MAC before returning anything. It also writes them as sops 3.12 does (Seal,
// UpdateKeys), for secretd's authoring commands.
//
// Only age recipients are supported; files whose data key is held by PGP or a cloud KMS, or is
// split across several key groups, are refused with an error naming what they use. Values left
// in cleartext by unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex or
// the comment regexes (YAML and dotenv) are returned as they are and authenticated the way
// sops authenticates them.
//
// Open, Seal and UpdateKeys write such files as sops 3 does, for editing and re-keying.
package sops

import (
	"bytes"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"

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
// key is unwrapped from the file's age recipients; every value is authenticated against its key
// path and the file's MAC is verified, so a modified file yields an error and no document.
func Decrypt(data []byte, ids []age.Identity) (*structured.Document, error) {
	return decrypt(data, func(md *metadata) ([]byte, error) { return unwrapDataKey(md, ids) })
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

// unwrapDataKey decrypts the data key from the first age recipient an identity matches.
func unwrapDataKey(md *metadata, ids []age.Identity) ([]byte, error) {
	if md.keyGroups > 1 {
		return nil, fmt.Errorf("the file splits its data key across %d key groups (Shamir secret sharing), which secretd does not support", md.keyGroups)
	}
	if len(md.ageKeys) == 0 {
		if len(md.keyTypes) == 0 {
			return nil, errors.New("the file's sops metadata lists no master keys")
		}
		return nil, fmt.Errorf("the file's data key is encrypted only to %s keys; secretd only decrypts age recipients", strings.Join(md.keyTypes, ", "))
	}
	if len(ids) == 0 {
		return nil, errors.New("no identities to decrypt the sops data key with")
	}
	var recipients []string
	var failures []string
	for i, k := range md.ageKeys {
		recipients = append(recipients, k.recipient)
		key, err := decryptDataKey(k.enc, ids)
		if err != nil {
			var noMatch *age.NoIdentityMatchError
			if !errors.As(err, &noMatch) {
				failures = append(failures, fmt.Sprintf("age entry %d (%s): %v", i, k.recipient, err))
			}
			continue
		}
		return key, nil
	}
	msg := fmt.Sprintf("no identity given (%d tried) matches the file's age recipients: %s", len(ids), strings.Join(recipients, ", "))
	var others []string
	for _, t := range md.keyTypes {
		if t != "age" {
			others = append(others, t)
		}
	}
	if len(others) > 0 {
		msg += fmt.Sprintf(" (it also lists %s keys, which secretd does not use)", strings.Join(others, ", "))
	}
	if len(failures) > 0 {
		msg += "; errors: " + strings.Join(failures, "; ")
	}
	return nil, errors.New(msg)
}

// decryptDataKey decrypts one armored age file holding a data key. The file is decoded whole
// and decrypted with age.DecryptReaderAt, which allocates half of what the streaming
// age.Decrypt does, and a host may read a thousand sops files.
func decryptDataKey(armored string, ids []age.Identity) ([]byte, error) {
	encrypted, err := io.ReadAll(armor.NewReader(strings.NewReader(armored)))
	if err != nil {
		return nil, err
	}
	r, size, err := age.DecryptReaderAt(bytes.NewReader(encrypted), int64(len(encrypted)), ids...)
	if err != nil {
		return nil, err
	}
	if size != dataKeySize {
		return nil, fmt.Errorf("data key is not %d bytes", dataKeySize)
	}
	key := make([]byte, size)
	if n, err := r.ReadAt(key, 0); n != len(key) || err != nil && err != io.EOF {
		clear(key)
		return nil, fmt.Errorf("reading the data key: %w", err)
	}
	return key, nil
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
		for i, e := range n.Entries {
			w.levels = append(w.levels, w.comments.before(n, i))
			child, err := w.walk(e.Value, append(path[:len(path):len(path)], e.Key))
			w.levels = w.levels[:len(w.levels)-1]
			if err != nil {
				return nil, err
			}
			out.Entries[i] = structured.Entry{Key: e.Key, Value: child}
		}
		return out, nil
	case structured.List:
		// sops gives list elements the path of the list itself.
		out := &structured.Node{Kind: structured.List, Items: make([]*structured.Node, len(n.Items))}
		for i, item := range n.Items {
			w.levels = append(w.levels, w.comments.before(n, i))
			child, err := w.walk(item, path)
			w.levels = w.levels[:len(w.levels)-1]
			if err != nil {
				return nil, err
			}
			out.Items[i] = child
		}
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
