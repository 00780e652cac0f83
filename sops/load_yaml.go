package sops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// commentTable records, for each map entry and list item, the comment lines sops' tree holds
// between it and the previous value of the same map or list. sops decides by them which values
// are encrypted when a file uses encrypted_comment_regex or unencrypted_comment_regex.
type commentTable map[*structured.Node][][]string

// before returns the comments preceding entry i of container n; i = its length gives those
// after the last entry.
func (t commentTable) before(n *structured.Node, i int) []string {
	if lists, ok := t[n]; ok && i < len(lists) {
		return lists[i]
	}
	return nil
}

func (t commentTable) set(n *structured.Node, i, size int, comments []string) {
	if len(comments) == 0 {
		return
	}
	lists, ok := t[n]
	if !ok {
		lists = make([][]string, size+1)
		t[n] = lists
	}
	lists[i] = append(lists[i], comments...)
}

// loadYAML reads YAML as sops' YAML store does: every document of the stream is a mapping,
// aliases are expanded, "<<" is an ordinary key, and duplicate keys are an error. Comments are
// kept only as the commentTable. Encrypted tokens are first replaced by placeholders (see
// shrinkEncrypted), except in documents with a backslash, whose escape sequences could spell a
// placeholder in the parsed text.
func loadYAML(data []byte) (*encryptedFile, error) {
	if bytes.IndexByte(data, '\\') >= 0 {
		return readYAML(&shrunk{data: data})
	}
	return readYAML(shrinkEncrypted(data))
}

// readYAML reads every document of s with yaml.v3.
func readYAML(s *shrunk) (*encryptedFile, error) {
	dec := yaml.NewDecoder(bytes.NewReader(s.data))
	r := &yamlReader{shrunk: s, comments: commentTable{}, shared: map[*yaml.Node]*structured.Node{}, sizes: map[*structured.Node]int{}, open: map[*yaml.Node]bool{}}
	var roots []*structured.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed YAML: %w", err)
		}
		root, err := r.document(&doc)
		if err != nil {
			return nil, err
		}
		roots = append(roots, root)
	}
	if len(roots) == 0 {
		return nil, errNoMetadata
	}
	f := &encryptedFile{format: manifest.FormatYAML, sourceFormat: manifest.FormatYAML, roots: roots, comments: r.comments}
	if err := f.splitMetadata(); err != nil {
		return nil, err
	}
	return f, nil
}

type yamlReader struct {
	shrunk   *shrunk
	comments commentTable
	// shared holds the conversion of each anchored node reached through an alias.
	shared map[*yaml.Node]*structured.Node
	sizes  map[*structured.Node]int
	open   map[*yaml.Node]bool
	total  int
	// path is the key path of the value being read, for error messages; one slice pushed and
	// popped rather than a copy per value.
	path []string
}

// commentLines splits a yaml.v3 comment into lines without their "#", as sops stores them.
func (r *yamlReader) commentLines(comment string, into []string) []string {
	if comment == "" {
		return into
	}
	for _, line := range strings.Split(comment, "\n") {
		if line != "" {
			into = append(into, r.shrunk.restore(line[1:]))
		}
	}
	return into
}

func (r *yamlReader) document(doc *yaml.Node) (*structured.Node, error) {
	lead := r.commentLines(doc.LineComment, r.commentLines(doc.HeadComment, nil))
	if len(doc.Content) == 0 {
		return &structured.Node{Kind: structured.Map}, nil
	}
	top := doc.Content[0]
	if top.Kind == yaml.AliasNode && top.Alias != nil {
		top = top.Alias
	}
	switch {
	case top.Kind == yaml.MappingNode:
	case top.Kind == yaml.ScalarNode && top.ShortTag() == structured.TagNull:
		return &structured.Node{Kind: structured.Map}, nil
	default:
		return nil, errors.New("a YAML document that is not a mapping cannot be a sops file")
	}
	r.total++
	root, err := r.mapping(top, false, lead)
	if err != nil {
		return nil, err
	}
	r.comments.set(root, len(root.Entries), len(root.Entries), r.commentLines(doc.FootComment, nil))
	return root, nil
}

func (r *yamlReader) tooLarge() error {
	return fmt.Errorf("YAML expands to more than %d values", maxExpandedNodes)
}

// node converts n; handled says whether its own head and line comments were already recorded
// by its parent (true for scalars, aliases and list items), as in sops' store.
func (r *yamlReader) node(n *yaml.Node, handled bool) (*structured.Node, error) {
	r.total++
	if r.total > maxExpandedNodes {
		return nil, r.tooLarge()
	}
	switch n.Kind {
	case yaml.AliasNode:
		target := n.Alias
		if target == nil {
			return nil, fmt.Errorf("alias without anchor at %s", describe(r.path))
		}
		if done, ok := r.shared[target]; ok {
			r.total += r.sizes[done]
			if r.total > maxExpandedNodes {
				return nil, r.tooLarge()
			}
			return done, nil
		}
		if r.open[target] {
			return nil, fmt.Errorf("alias at %s refers to a value that contains it", describe(r.path))
		}
		r.open[target] = true
		before := r.total
		out, err := r.node(target, false)
		delete(r.open, target)
		if err != nil {
			return nil, err
		}
		r.shared[target] = out
		r.sizes[out] = r.total - before
		return out, nil
	case yaml.ScalarNode:
		tag := n.ShortTag()
		return &structured.Node{Kind: structured.KindOfTag(tag), Tag: tag, Text: r.shrunk.restore(n.Value)}, nil
	case yaml.SequenceNode:
		return r.sequence(n, handled)
	case yaml.MappingNode:
		return r.mapping(n, handled, nil)
	}
	return nil, fmt.Errorf("unsupported YAML node at %s", describe(r.path))
}

func (r *yamlReader) sequence(n *yaml.Node, handled bool) (*structured.Node, error) {
	out := &structured.Node{Kind: structured.List, Items: make([]*structured.Node, 0, len(n.Content))}
	var comments []string
	if !handled {
		comments = r.commentLines(n.LineComment, r.commentLines(n.HeadComment, nil))
	}
	for i, item := range n.Content {
		comments = r.commentLines(item.LineComment, r.commentLines(item.HeadComment, comments))
		child, err := r.node(item, true)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, child)
		r.comments.set(out, i, len(n.Content), comments)
		comments = r.commentLines(item.FootComment, nil)
	}
	if !handled {
		comments = r.commentLines(n.FootComment, comments)
	}
	r.comments.set(out, len(out.Items), len(n.Content), comments)
	return out, nil
}

func (r *yamlReader) mapping(n *yaml.Node, handled bool, lead []string) (*structured.Node, error) {
	size := len(n.Content) / 2
	out := &structured.Node{Kind: structured.Map, Entries: make([]structured.Entry, 0, size)}
	comments := lead
	if !handled {
		comments = r.commentLines(n.LineComment, r.commentLines(n.HeadComment, comments))
	}
	seen := make(map[string]bool, size)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		comments = r.commentLines(k.LineComment, r.commentLines(k.HeadComment, comments))
		scalarValue := v.Kind == yaml.ScalarNode || v.Kind == yaml.AliasNode
		if scalarValue {
			comments = r.commentLines(v.LineComment, r.commentLines(v.HeadComment, comments))
		}
		keyNode := k
		if keyNode.Kind == yaml.AliasNode && keyNode.Alias != nil {
			keyNode = keyNode.Alias
		}
		if keyNode.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("a key under %s is a map or list; sops supports string keys only", describe(r.path))
		}
		key := r.shrunk.restore(keyNode.Value)
		tag := keyNode.ShortTag()
		if tag != structured.TagString && tag != "!!merge" {
			return nil, fmt.Errorf("key %q under %s is a %s; sops supports string keys only", key, describe(r.path), structured.KindOfTag(tag))
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q under %s", key, describe(r.path))
		}
		seen[key] = true
		r.path = append(r.path, key)
		child, err := r.node(v, scalarValue)
		if err != nil {
			return nil, err
		}
		r.path = r.path[:len(r.path)-1]
		r.comments.set(out, len(out.Entries), size, comments)
		out.Entries = append(out.Entries, structured.Entry{Key: key, Value: child, Merge: tag == "!!merge"})
		comments = nil
		if scalarValue {
			comments = r.commentLines(v.FootComment, comments)
		}
		comments = r.commentLines(k.FootComment, comments)
	}
	if !handled {
		comments = r.commentLines(n.FootComment, comments)
	}
	r.comments.set(out, len(out.Entries), size, comments)
	return out, nil
}
