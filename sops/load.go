package sops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// metadataKey is the top-level key (YAML, JSON), section (INI) or key prefix (dotenv, with "_")
// holding sops' metadata.
const metadataKey = "sops"

// maxExpandedNodes bounds a YAML file's size once aliases are expanded.
const maxExpandedNodes = 1 << 18

// maxFileSize bounds the size of a sops file, which is read before anything in it is
// authenticated.
const maxFileSize = 64 << 20

// maxJSONDepth bounds JSON nesting.
const maxJSONDepth = 1000

// encryptedFile is a sops file split into its (still encrypted) document and its metadata, read
// the way sops' own stores read it so that paths, document order and cleartext values match
// what sops authenticated.
type encryptedFile struct {
	// format is the plaintext's format; manifest.FormatBinary for sops' binary envelope.
	format string
	// sourceFormat is how the file itself is written: YAML, JSON, dotenv or INI.
	sourceFormat string
	// roots are the document's trees without metadata: one per YAML document, else one.
	roots []*structured.Node
	// meta is the metadata, unflattened for dotenv and INI.
	meta *structured.Node
	// comments lists the comments before each value (YAML and dotenv only).
	comments commentTable
}

var errNoMetadata = errors.New("no sops metadata found")

// load recognises and reads a sops file. It returns errNoMetadata for a well-formed file of any
// format that carries no sops metadata.
func load(data []byte) (*encryptedFile, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("the file is larger than %d MiB, more than any sops file secretd reads", maxFileSize>>20)
	}
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	if len(trimmed) == 0 || bytes.HasPrefix(trimmed, []byte("age-encryption.org/")) ||
		bytes.HasPrefix(trimmed, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		return nil, errNoMetadata
	}
	if trimmed[0] == '{' {
		f, err := loadJSON(data)
		if err == nil {
			return f, nil
		}
		// A flow-style YAML mapping also starts with "{".
		if yf, yerr := loadYAML(data); yerr == nil {
			return yf, nil
		}
		return nil, err
	}
	if hasLinePrefix(data, metadataKey+"_mac=") || hasLinePrefix(data, metadataKey+"_lastmodified=") {
		return loadDotenv(data)
	}
	if hasINISopsSection(data) {
		if f, err := loadINI(data); err == nil || !errors.Is(err, errNoMetadata) {
			return f, err
		}
	}
	return loadYAML(data)
}

func hasLinePrefix(data []byte, prefix string) bool {
	return bytes.HasPrefix(data, []byte(prefix)) || bytes.Contains(data, []byte("\n"+prefix))
}

func hasINISopsSection(data []byte) bool {
	for rest := data; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		if string(bytes.TrimSpace(line)) == "["+metadataKey+"]" {
			return true
		}
	}
	return false
}

// hasMetadata reports whether meta looks like sops metadata rather than a user's "sops" key.
func hasMetadata(meta *structured.Node) bool {
	if meta == nil || meta.Kind != structured.Map {
		return false
	}
	return field(meta, "mac") != nil && field(meta, "lastmodified") != nil
}

func field(m *structured.Node, key string) *structured.Node {
	for _, e := range m.Entries {
		if e.Key == key {
			return e.Value
		}
	}
	return nil
}

// splitMetadata moves the first root's top-level "sops" entry into f.meta and drops that key
// from every root, as sops does. Comments that preceded a dropped entry now precede the next.
func (f *encryptedFile) splitMetadata() error {
	var meta *structured.Node
	for i, root := range f.roots {
		if root.Kind != structured.Map {
			continue
		}
		kept := &structured.Node{Kind: structured.Map, Entries: make([]structured.Entry, 0, len(root.Entries))}
		var carried []string
		for j, e := range root.Entries {
			comments := append(carried, f.comments.before(root, j)...)
			carried = nil
			if e.Key != metadataKey {
				if f.comments != nil {
					f.comments.set(kept, len(kept.Entries), len(root.Entries), comments)
				}
				kept.Entries = append(kept.Entries, e)
				continue
			}
			carried = comments
			if i == 0 {
				if meta != nil {
					return fmt.Errorf("duplicate %q entry", metadataKey)
				}
				meta = e.Value
			}
		}
		if f.comments != nil {
			f.comments.set(kept, len(kept.Entries), len(root.Entries), append(carried, f.comments.before(root, len(root.Entries))...))
		}
		f.roots[i] = kept
	}
	if !hasMetadata(meta) {
		return errNoMetadata
	}
	f.meta = meta
	return nil
}

// loadJSON reads JSON as sops' JSON store does: the top level is an object, keys keep their
// order, and numbers keep their literal text. A repeated key is refused: sops authenticates
// neither keys nor empty values, so a repeated key could shadow the real one.
func loadJSON(data []byte) (*encryptedFile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		return nil, jsonError(dec, data, err)
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, errors.New("a sops JSON file must be an object")
	}
	root, err := readJSONObject(dec, data, nil)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON object")
	}
	f := &encryptedFile{format: manifest.FormatJSON, sourceFormat: manifest.FormatJSON, roots: []*structured.Node{root}}
	if err := f.splitMetadata(); err != nil {
		return nil, err
	}
	// sops' binary store wraps the bytes as {"data": "...", "sops": {...}}. A JSON document whose
	// only key is a string "data" is indistinguishable and is read the same way.
	if doc := f.roots[0]; len(doc.Entries) == 1 && doc.Entries[0].Key == "data" && doc.Entries[0].Value.Kind == structured.String {
		f.format = manifest.FormatBinary
	}
	return f, nil
}

func jsonError(dec *json.Decoder, data []byte, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("malformed JSON: unexpected end of input")
	}
	offset := dec.InputOffset()
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		offset = syntax.Offset
	}
	line := 1 + bytes.Count(data[:min(int(max(offset, 0)), len(data))], []byte("\n"))
	return fmt.Errorf("malformed JSON at line %d", line)
}

func readJSONObject(dec *json.Decoder, data []byte, path []string) (*structured.Node, error) {
	if len(path) > maxJSONDepth {
		return nil, fmt.Errorf("JSON nested more than %d levels deep", maxJSONDepth)
	}
	out := &structured.Node{Kind: structured.Map}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, jsonError(dec, data, err)
		}
		key, ok := t.(string)
		if !ok {
			return nil, jsonError(dec, data, errors.New("object key is not a string"))
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q under %s", key, describe(path))
		}
		seen[key] = true
		child, err := readJSONValue(dec, data, append(path[:len(path):len(path)], key))
		if err != nil {
			return nil, err
		}
		out.Entries = append(out.Entries, structured.Entry{Key: key, Value: child})
	}
	if _, err := dec.Token(); err != nil {
		return nil, jsonError(dec, data, err)
	}
	return out, nil
}

func readJSONValue(dec *json.Decoder, data []byte, path []string) (*structured.Node, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, jsonError(dec, data, err)
	}
	switch v := t.(type) {
	case json.Delim:
		switch v {
		case '{':
			return readJSONObject(dec, data, path)
		case '[':
			if len(path) > maxJSONDepth {
				return nil, fmt.Errorf("JSON nested more than %d levels deep", maxJSONDepth)
			}
			out := &structured.Node{Kind: structured.List, Items: []*structured.Node{}}
			for dec.More() {
				child, err := readJSONValue(dec, data, append(path[:len(path):len(path)], "[]"))
				if err != nil {
					return nil, err
				}
				out.Items = append(out.Items, child)
			}
			if _, err := dec.Token(); err != nil {
				return nil, jsonError(dec, data, err)
			}
			return out, nil
		}
	case string:
		return &structured.Node{Kind: structured.String, Text: v}, nil
	case json.Number:
		return structured.JSONNumber(string(v)), nil
	case bool:
		return &structured.Node{Kind: structured.Bool, Text: strconv.FormatBool(v)}, nil
	case nil:
		return &structured.Node{Kind: structured.Null, Text: "null"}, nil
	}
	return nil, jsonError(dec, data, errors.New("unexpected token"))
}

// loadDotenv reads dotenv as sops' dotenv store does: KEY=value lines split at the first "=",
// values verbatim except that "\n" means a newline, "#" lines are comments, and every key
// starting with "sops_" is metadata. A variable given twice is refused, as in loadJSON.
func loadDotenv(data []byte) (*encryptedFile, error) {
	root := &structured.Node{Kind: structured.Map}
	seen := map[string]bool{}
	var flat []structured.Entry
	var comments [][]string
	var pending []string
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if line[0] == '#' {
			pending = append(pending, string(line[1:]))
			continue
		}
		eq := bytes.IndexByte(line, '=')
		if eq < 0 {
			return nil, fmt.Errorf("dotenv line %d: expected KEY=value", i+1)
		}
		key := string(line[:eq])
		value := &structured.Node{Kind: structured.String, Text: strings.ReplaceAll(string(line[eq+1:]), `\n`, "\n")}
		if rest, ok := strings.CutPrefix(key, metadataKey+"_"); ok {
			flat = append(flat, structured.Entry{Key: rest, Value: value})
			continue
		}
		if seen[key] {
			return nil, fmt.Errorf("dotenv line %d: the variable is defined twice", i+1)
		}
		seen[key] = true
		root.Entries = append(root.Entries, structured.Entry{Key: key, Value: value})
		comments = append(comments, pending)
		pending = nil
	}
	meta, err := unflatten(flat)
	if err != nil {
		return nil, fmt.Errorf("sops metadata: %w", err)
	}
	if !hasMetadata(meta) {
		return nil, errNoMetadata
	}
	f := &encryptedFile{format: manifest.FormatDotenv, sourceFormat: manifest.FormatDotenv, roots: []*structured.Node{root}, meta: meta, comments: commentTable{}}
	for i, c := range append(comments, pending) {
		f.comments.set(root, i, len(root.Entries), c)
	}
	return f, nil
}

// loadINI reads INI as sops' INI store does (see structured's INI parser): sections map to
// top-level keys, including the default section, and the "[sops]" section holds flattened
// metadata whose newlines are written as "\n". A repeated section is refused, as in loadJSON.
func loadINI(data []byte) (*encryptedFile, error) {
	doc, err := structured.ParseINIWithComments(data)
	if err != nil {
		return nil, err
	}
	root := doc.Roots()[0]
	kept := &structured.Node{Kind: structured.Map}
	comments := commentTable{}
	var metaSection *structured.Node
	seen := map[string]bool{}
	for i, s := range root.Entries {
		// The parser always starts with the default section; an explicit "[DEFAULT]" header
		// names the same section, so an empty implicit one does not count.
		if i == 0 && len(s.Value.Entries) == 0 {
			continue
		}
		if seen[s.Key] {
			return nil, fmt.Errorf("section %q is given twice", s.Key)
		}
		seen[s.Key] = true
		if s.Key == metadataKey {
			if metaSection == nil {
				metaSection = s.Value
			}
			continue
		}
		comments.set(kept, len(kept.Entries), len(root.Entries), iniComment(root.CommentsBefore(i)))
		for j := range s.Value.Entries {
			comments.set(s.Value, j, len(s.Value.Entries), iniComment(s.Value.CommentsBefore(j)))
		}
		kept.Entries = append(kept.Entries, s)
	}
	if metaSection == nil {
		return nil, errNoMetadata
	}
	flat := make([]structured.Entry, 0, len(metaSection.Entries))
	for _, e := range metaSection.Entries {
		v := &structured.Node{Kind: structured.String, Text: strings.ReplaceAll(e.Value.Text, `\n`, "\n")}
		flat = append(flat, structured.Entry{Key: e.Key, Value: v})
	}
	meta, err := unflatten(flat)
	if err != nil {
		return nil, fmt.Errorf("sops metadata: %w", err)
	}
	if !hasMetadata(meta) {
		return nil, errNoMetadata
	}
	return &encryptedFile{format: manifest.FormatINI, sourceFormat: manifest.FormatINI, roots: []*structured.Node{kept}, meta: meta, comments: comments}, nil
}

// iniComment strips a comment's leading comment characters as sops' INI store does before it
// encrypts the comment (its first line's only).
func iniComment(comments []string) []string {
	out := make([]string, len(comments))
	for i, c := range comments {
		if strings.HasPrefix(c, ";") {
			out[i] = strings.TrimLeft(c, "; ")
		} else {
			out[i] = strings.TrimLeft(c, "# ")
		}
	}
	return out
}

const (
	flatMapSeparator  = "__map_"
	flatListSeparator = "__list_"
)

// flatToken is one step of a flattened metadata key: a map key, or a list index when isIndex.
type flatToken struct {
	key     string
	index   int
	isIndex bool
}

// tokenizeFlat splits "age__list_0__map_enc" into age, [0], enc.
func tokenizeFlat(path string) ([]flatToken, error) {
	var tokens []flatToken
	rest := path
	kindIsIndex := false
	for {
		next := len(rest)
		sep := ""
		if i := strings.Index(rest, flatMapSeparator); i >= 0 && i < next {
			next, sep = i, flatMapSeparator
		}
		if i := strings.Index(rest, flatListSeparator); i >= 0 && i < next {
			next, sep = i, flatListSeparator
		}
		part := rest[:next]
		if kindIsIndex {
			idx, err := strconv.Atoi(part)
			if err != nil || idx < 0 || idx > 10000 {
				return nil, fmt.Errorf("key %q has a bad list index", path)
			}
			tokens = append(tokens, flatToken{index: idx, isIndex: true})
		} else {
			tokens = append(tokens, flatToken{key: part})
		}
		if sep == "" {
			return tokens, nil
		}
		kindIsIndex = sep == flatListSeparator
		rest = rest[next+len(sep):]
	}
}

// unflatten rebuilds the metadata tree that sops flattens into dotenv and INI keys. List
// indices must be dense: every list slot lies on the path of some key, so the slots of all
// lists together never outnumber the keys' tokens, and a sparse index is refused before it can
// make the (unauthenticated) metadata allocate more than its own size.
func unflatten(flat []structured.Entry) (*structured.Node, error) {
	if len(flat) == 0 {
		return nil, errNoMetadata
	}
	root := &structured.Node{Kind: structured.Map}
	var tokenized [][]flatToken
	budget := 0
	for _, e := range flat {
		tokens, err := tokenizeFlat(e.Key)
		if err != nil {
			return nil, err
		}
		tokenized = append(tokenized, tokens)
		budget += len(tokens)
	}
	for k, e := range flat {
		tokens := tokenized[k]
		cur := root
		for i, tok := range tokens {
			last := i == len(tokens)-1
			var wantKind structured.Kind
			if !last {
				wantKind = structured.Map
				if tokens[i+1].isIndex {
					wantKind = structured.List
				}
			}
			slot, err := flatSlot(cur, tok, e.Key, &budget)
			if err != nil {
				return nil, err
			}
			if last {
				if *slot != nil {
					return nil, fmt.Errorf("key %q is given twice", e.Key)
				}
				*slot = e.Value
				break
			}
			if *slot == nil {
				*slot = &structured.Node{Kind: wantKind}
			} else if (*slot).Kind != wantKind {
				return nil, fmt.Errorf("key %q conflicts with another key", e.Key)
			}
			cur = *slot
		}
	}
	if err := checkDense(root); err != nil {
		return nil, err
	}
	return root, nil
}

// flatSlot returns where tok's child lives in cur, creating the map entry or list item; budget
// is how many list slots may still be created.
func flatSlot(cur *structured.Node, tok flatToken, key string, budget *int) (**structured.Node, error) {
	if tok.isIndex {
		if cur.Kind != structured.List {
			return nil, fmt.Errorf("key %q indexes something that is not a list", key)
		}
		if grow := tok.index + 1 - len(cur.Items); grow > 0 {
			if *budget -= grow; *budget < 0 {
				return nil, fmt.Errorf("key %q has a list index beyond the items the metadata gives", key)
			}
			cur.Items = append(cur.Items, make([]*structured.Node, grow)...)
		}
		return &cur.Items[tok.index], nil
	}
	if cur.Kind != structured.Map {
		return nil, fmt.Errorf("key %q names a field of something that is not a map", key)
	}
	for i := range cur.Entries {
		if cur.Entries[i].Key == tok.key {
			return &cur.Entries[i].Value, nil
		}
	}
	cur.Entries = append(cur.Entries, structured.Entry{Key: tok.key})
	return &cur.Entries[len(cur.Entries)-1].Value, nil
}

// checkDense refuses a list with an index no key gave.
func checkDense(n *structured.Node) error {
	for _, e := range n.Entries {
		if err := checkDense(e.Value); err != nil {
			return err
		}
	}
	for i, item := range n.Items {
		if item == nil {
			return fmt.Errorf("a list has no item at list index %d although later indices are given", i)
		}
		if err := checkDense(item); err != nil {
			return err
		}
	}
	return nil
}

// describe names a key path for error messages.
func describe(path []string) string {
	if len(path) == 0 {
		return "the top level"
	}
	return fmt.Sprintf("%q", strings.Join(path, "/"))
}
