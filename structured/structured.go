// Package structured parses plaintext documents (YAML, JSON, dotenv, INI, or opaque bytes) into
// an ordered tree and extracts one value from it by key path.
//
// A key path is a "/"-separated list of map keys, a number selecting a list element
// ("servers/0/host"); a key may itself contain "." or "/" ("guest_accounts.json"). For dotenv
// it is a variable name, for INI "section/key" or just "key" for a key outside any section. The
// empty key selects the whole document.
//
// A string comes back exactly as stored (no newline added), a number, boolean or null as sops
// spells it ("42", "true", "null"; sops' YAML store adds a newline, which is left out here so
// that a number reads the same in a template as in its own file), and a map or list
// re-serialised in the document's own format the way `sops --decrypt --extract` prints it, so
// secrets read the same as with sops-nix: YAML with 4-space indentation; JSON tab-indented, a map
// ending with a newline. A whole document is re-serialised too, with the comments a sops file
// keeps (Node.Comments) where `sops --decrypt` prints them.
//
// Error messages name keys and types but never values, because values are secrets.
package structured

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/secretd/secretd/manifest"
)

// Kind is the type of a Node.
type Kind uint8

// Node kinds. Scalars keep their text as written; maps and lists keep document order.
const (
	String Kind = iota + 1
	Int
	Float
	Bool
	Null
	Map
	List
)

func (k Kind) String() string {
	switch k {
	case String:
		return "string"
	case Int:
		return "integer"
	case Float:
		return "float"
	case Bool:
		return "boolean"
	case Null:
		return "null"
	case Map:
		return "map"
	case List:
		return "list"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Node is one value of a document. Nodes reached through YAML aliases may be shared, so a tree
// must be treated as read-only once built.
type Node struct {
	Kind Kind
	// Text is a scalar's value: a string's content, or a number or boolean as written.
	Text string
	// Tag is a scalar's YAML tag in short form ("!!str", "!!int", "!!timestamp", ...). Empty means
	// the tag follows from Kind; it only matters when the node is written as YAML.
	Tag string
	// Entries are a map's key/value pairs in document order. Keys are unique in parsed
	// documents; where a tree carries a key twice, a lookup through it is ambiguous and refused.
	Entries []Entry
	// Items are a list's elements.
	Items []*Node
	// Comments holds, for a map or list read from a sops file, the comment lines (without their
	// "#") before each entry or item, and at index len those after the last: sops keeps them and
	// `sops --decrypt` prints them, so a document written whole keeps them too. Nil when none.
	Comments [][]string
}

// Entry is one key of a map.
type Entry struct {
	Key   string
	Value *Node
	// Merge marks a YAML merge key ("<<: *base") that a sops file keeps as a key: lookups see
	// the keys of the map (or maps) it holds, explicit keys winning, and it is written back as
	// sops writes it, "!!merge <<", so that it still means a merge.
	Merge bool
}

// CommentsBefore returns the comment lines before entry or item i of n (i = length: after the
// last one).
func (n *Node) CommentsBefore(i int) []string {
	if i < len(n.Comments) {
		return n.Comments[i]
	}
	return nil
}

// IsScalar reports whether n is neither a map nor a list.
func (n *Node) IsScalar() bool { return n.Kind != Map && n.Kind != List }

// Document is a parsed plaintext document.
type Document struct {
	format string
	// roots holds one tree per YAML document of a multi-document stream; every other format has
	// exactly one. Lookups use the first.
	roots []*Node
	// index maps a large map node's keys to their entries, built on first lookup so that
	// fetching every key of a document is linear, not quadratic.
	indexMu sync.Mutex
	index   map[*Node]map[string][]int
	// unbound lists what the document's source did not authenticate.
	unbound Unbound
}

// Unbound describes what the source of a document leaves unauthenticated, so that lookups refuse
// a value that someone able to edit the source, but holding no key, could have moved there
// (sops binds an encrypted value to its key path, but neither list positions nor the keys of
// cleartext values).
type Unbound struct {
	// ListPositions makes every lookup through a list index an error.
	ListPositions bool
	// Values maps nodes whose content or place is not authenticated to the reason; a lookup
	// that returns one, or a map or list holding one, is an error.
	Values map[*Node]string
}

// SetUnbound records what the document's source leaves unauthenticated. Call it before the
// document is shared.
func (d *Document) SetUnbound(u Unbound) { d.unbound = u }

// entriesNamed returns the indices of n's entries whose key is k, in document order.
func (d *Document) entriesNamed(n *Node, k string) []int {
	if len(n.Entries) <= 8 {
		var out []int
		for i := range n.Entries {
			if n.Entries[i].Key == k {
				out = append(out, i)
			}
		}
		return out
	}
	d.indexMu.Lock()
	defer d.indexMu.Unlock()
	if d.index == nil {
		d.index = map[*Node]map[string][]int{}
	}
	m, ok := d.index[n]
	if !ok {
		m = make(map[string][]int, len(n.Entries))
		for i := range n.Entries {
			m[n.Entries[i].Key] = append(m[n.Entries[i].Key], i)
		}
		d.index[n] = m
	}
	return m[k]
}

// ErrKeyNotFound is matched (with errors.Is) by every error reporting a missing key.
var ErrKeyNotFound = errors.New("key not found")

// KeyError reports a key path that does not lead to a value.
type KeyError struct {
	// Key is the whole key path asked for.
	Key string
	// Reason says where the walk stopped, naming keys and kinds only.
	Reason string
}

func (e *KeyError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("key %q not found", e.Key)
	}
	return fmt.Sprintf("key %q not found: %s", e.Key, e.Reason)
}

// Is makes errors.Is(err, ErrKeyNotFound) true.
func (e *KeyError) Is(target error) bool { return target == ErrKeyNotFound }

// Parse parses data in format (one of manifest.FormatYAML, FormatJSON, FormatDotenv, FormatINI
// or FormatBinary, the latter being the whole bytes as one string).
func Parse(format string, data []byte) (*Document, error) {
	var roots []*Node
	var err error
	switch format {
	case manifest.FormatBinary:
		roots = []*Node{{Kind: String, Text: string(data)}}
	case manifest.FormatYAML:
		roots, err = parseYAML(data)
	case manifest.FormatJSON:
		var root *Node
		root, err = parseJSON(data)
		roots = []*Node{root}
	case manifest.FormatDotenv:
		var root *Node
		root, err = parseDotenv(data)
		roots = []*Node{root}
	case manifest.FormatINI:
		var root *Node
		root, err = parseINI(data, false)
		roots = []*Node{root}
	default:
		return nil, fmt.Errorf("unknown document format %q", format)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", format, err)
	}
	return &Document{format: format, roots: roots}, nil
}

// ParseINIWithComments parses INI as Parse does and keeps its comments as ini.v1 holds them
// (see Node.Comments), for sops, which writes them back.
func ParseINIWithComments(data []byte) (*Document, error) {
	root, err := parseINI(data, true)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", manifest.FormatINI, err)
	}
	return &Document{format: manifest.FormatINI, roots: []*Node{root}}, nil
}

// NewDocument wraps trees built elsewhere (for example decrypted from an encrypted file) as a
// Document of format. YAML accepts several roots (one per document of a stream); every other
// format exactly one. A binary document's root must be a String node holding the bytes; dotenv
// and INI roots must be maps shaped as Parse builds them.
func NewDocument(format string, roots ...*Node) (*Document, error) {
	if len(roots) == 0 {
		return nil, errors.New("document has no root")
	}
	for _, r := range roots {
		if r == nil {
			return nil, errors.New("document has a nil root")
		}
	}
	switch format {
	case manifest.FormatYAML:
	case manifest.FormatJSON, manifest.FormatDotenv, manifest.FormatINI, manifest.FormatBinary:
		if len(roots) != 1 {
			return nil, fmt.Errorf("a %s document has exactly one root, got %d", format, len(roots))
		}
		switch {
		case format == manifest.FormatBinary && roots[0].Kind != String:
			return nil, fmt.Errorf("a binary document's root must be a string, got %s", roots[0].Kind)
		case (format == manifest.FormatDotenv || format == manifest.FormatINI) && roots[0].Kind != Map:
			return nil, fmt.Errorf("a %s document's root must be a map, got %s", format, roots[0].Kind)
		}
	default:
		return nil, fmt.Errorf("unknown document format %q", format)
	}
	return &Document{format: format, roots: roots}, nil
}

// Reformatted returns a document of format over the same trees, for a document that reads as
// another format too (JSON is YAML). Everything else the document knows about its trees
// carries over.
func (d *Document) Reformatted(format string) (*Document, error) {
	out, err := NewDocument(format, d.roots...)
	if err != nil {
		return nil, err
	}
	out.unbound = d.unbound
	return out, nil
}

// Format returns the document's format.
func (d *Document) Format() string { return d.format }

// Roots returns the document's trees: one per YAML document, exactly one for other formats.
func (d *Document) Roots() []*Node { return d.roots }

// Value returns the value at key, or with an empty key the whole document serialised in its
// own format. See the package documentation for the key syntax and how values are rendered.
func (d *Document) Value(key string) ([]byte, error) {
	if key == "" {
		for _, root := range d.roots {
			if err := d.checkBound(key, root); err != nil {
				return nil, err
			}
		}
		return d.serialiseWhole()
	}
	n, err := d.lookup(key)
	if err != nil {
		return nil, err
	}
	if err := d.checkBound(key, n); err != nil {
		return nil, err
	}
	if n.IsScalar() {
		return scalarBytes(n), nil
	}
	out, err := d.serialiseNode(n, key)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", key, err)
	}
	return out, nil
}

// Has reports, with the same error Value would give, whether key names a value. It does not
// serialise anything.
func (d *Document) Has(key string) error {
	if key == "" {
		return nil
	}
	n, err := d.lookup(key)
	if err != nil {
		return err
	}
	return d.checkBound(key, n)
}

// UnboundError reports a lookup refused because its value is not authenticated by the
// document's source.
type UnboundError struct {
	Key    string
	Reason string
}

func (e *UnboundError) Error() string {
	what := fmt.Sprintf("key %q", e.Key)
	if e.Key == "" {
		what = "the whole document"
	}
	return fmt.Sprintf("%s cannot be used: %s", what, e.Reason)
}

// checkBound refuses n if it is, or holds, a value its source did not authenticate.
func (d *Document) checkBound(key string, n *Node) error {
	if len(d.unbound.Values) == 0 {
		return nil
	}
	if reason, ok := d.unbound.Values[n]; ok {
		return &UnboundError{Key: key, Reason: reason}
	}
	for _, e := range n.Entries {
		if err := d.checkBound(key, e.Value); err != nil {
			return err
		}
	}
	for _, item := range n.Items {
		if err := d.checkBound(key, item); err != nil {
			return err
		}
	}
	return nil
}

// scalarBytes renders a scalar: its text; null (written null, ~ or not at all) as sops prints it.
func scalarBytes(n *Node) []byte {
	if n.Kind == Null {
		return []byte("null")
	}
	return []byte(n.Text)
}

func (d *Document) lookup(key string) (*Node, error) {
	root := d.roots[0]
	switch d.format {
	case manifest.FormatBinary:
		return nil, &KeyError{Key: key, Reason: "a binary document is a single value and has no keys"}
	case manifest.FormatDotenv:
		var found []*Node
		for _, e := range root.Entries {
			if e.Key == key {
				found = append(found, e.Value)
			}
		}
		switch len(found) {
		case 0:
			return nil, &KeyError{Key: key, Reason: "no such variable"}
		case 1:
			return found[0], nil
		}
		return nil, ambiguous(key)
	case manifest.FormatINI:
		return lookupINI(root, key)
	}
	return d.lookupPath(root, key)
}

// ErrAmbiguousKey is matched (with errors.Is) by the error of a key path that names more than
// one value.
var ErrAmbiguousKey = errors.New("key names more than one value")

// ErrListIndex is matched (with errors.Is) by the error of a lookup through a list index in a
// document whose list positions are not authenticated.
var ErrListIndex = errors.New("list positions are not authenticated")

func ambiguous(key string) error {
	return fmt.Errorf("key %q names more than one value (a key given twice, or a key containing \"/\" that also reads as a path): %w", key, ErrAmbiguousKey)
}

// lookupPath resolves a "/"-separated path. A map key may itself contain "/"; a path that can
// be read more than one way is refused rather than resolved by a preference an editor of the
// document could exploit.
func (d *Document) lookupPath(root *Node, key string) (*Node, error) {
	segments := strings.Split(key, "/")
	var found []*Node
	if err := d.resolve(root, key, segments, &found); err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		return nil, &KeyError{Key: key, Reason: explainMiss(root, segments)}
	case 1:
		return found[0], nil
	}
	return nil, ambiguous(key)
}

// resolve walks segments from n and appends every node reached to found, stopping at two.
func (d *Document) resolve(n *Node, key string, segments []string, found *[]*Node) error {
	if len(segments) == 0 {
		*found = append(*found, n)
		return nil
	}
	switch n.Kind {
	case Map:
		explicit := false
		for take := 1; take <= len(segments) && len(*found) < 2; take++ {
			k := strings.Join(segments[:take], "/")
			for _, i := range d.entriesNamed(n, k) {
				if n.Entries[i].Merge {
					continue
				}
				explicit = true
				if err := d.resolve(n.Entries[i].Value, key, segments[take:], found); err != nil {
					return err
				}
			}
		}
		if !explicit {
			return d.resolveMerged(n, key, segments, found)
		}
	case List:
		if i, ok := listIndex(segments[0], len(n.Items)); ok {
			if d.unbound.ListPositions {
				return fmt.Errorf("key %q selects a list item by its index, which this file does not authenticate (an edit could shift the items); give the value a map key: %w", key, ErrListIndex)
			}
			return d.resolve(n.Items[i], key, segments[1:], found)
		}
	}
	return nil
}

// resolveMerged looks segments up in the maps that n's merge keys bring in, earlier ones first,
// as YAML merges them: n's own keys were tried already and win.
func (d *Document) resolveMerged(n *Node, key string, segments []string, found *[]*Node) error {
	for _, e := range n.Entries {
		if !e.Merge {
			continue
		}
		sources := []*Node{e.Value}
		if e.Value.Kind == List {
			sources = e.Value.Items
		}
		for _, src := range sources {
			if src.Kind != Map {
				continue
			}
			before := len(*found)
			if err := d.resolve(src, key, segments, found); err != nil || len(*found) > before {
				return err
			}
		}
	}
	return nil
}

func listIndex(segment string, length int) (int, bool) {
	if segment == "" || (len(segment) > 1 && segment[0] == '0') {
		return 0, false
	}
	i, err := strconv.Atoi(segment)
	if err != nil || i < 0 || i >= length {
		return 0, false
	}
	return i, true
}

// explainMiss describes where a failed walk stopped, following the shortest-key reading.
func explainMiss(n *Node, segments []string) string {
	var walked []string
	where := func() string {
		if len(walked) == 0 {
			return "the document"
		}
		return fmt.Sprintf("%q", strings.Join(walked, "/"))
	}
	for len(segments) > 0 {
		seg := segments[0]
		switch n.Kind {
		case Map:
			var next *Node
			for i := range n.Entries {
				if n.Entries[i].Key == seg {
					next = n.Entries[i].Value
					break
				}
			}
			if next == nil {
				return fmt.Sprintf("%s has no key %q", where(), seg)
			}
			n = next
		case List:
			i, ok := listIndex(seg, len(n.Items))
			if !ok {
				return fmt.Sprintf("%s is a list of %d items and %q is not an index in it", where(), len(n.Items), seg)
			}
			n = n.Items[i]
		default:
			return fmt.Sprintf("%s is a %s, not a map or list", where(), n.Kind)
		}
		walked = append(walked, seg)
		segments = segments[1:]
	}
	return ""
}

func (d *Document) serialiseWhole() ([]byte, error) {
	switch d.format {
	case manifest.FormatBinary:
		return []byte(d.roots[0].Text), nil
	case manifest.FormatYAML:
		return emitYAML(d.roots)
	case manifest.FormatJSON:
		out, err := emitJSON(d.roots[0])
		if err != nil {
			return nil, err
		}
		return append(out, '\n'), nil
	case manifest.FormatDotenv:
		return emitDotenv(d.roots[0])
	case manifest.FormatINI:
		return emitINI(d.roots[0].Entries, d.roots[0].CommentsBefore)
	}
	return nil, fmt.Errorf("unknown document format %q", d.format)
}

// serialiseNode renders a map or list found at key.
func (d *Document) serialiseNode(n *Node, key string) ([]byte, error) {
	switch d.format {
	case manifest.FormatYAML:
		return emitYAMLValue(n)
	case manifest.FormatJSON:
		out, err := emitJSON(n)
		if err == nil && n.Kind == Map {
			// A map is written as a whole JSON file, with its final newline, as
			// `sops --decrypt --extract` does; a list is written bare.
			out = append(out, '\n')
		}
		return out, err
	case manifest.FormatINI:
		// Only a section is a map in an INI document.
		return emitINI([]Entry{{Key: key, Value: n}}, func(int) []string { return nil })
	}
	return nil, fmt.Errorf("a %s in a %s document cannot be rendered", n.Kind, d.format)
}
