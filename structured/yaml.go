package structured

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// yamlIndent matches what sops writes, so a decrypted document re-serialises the way
// `sops --decrypt` prints it.
const yamlIndent = 4

// maxExpandedNodes bounds how large a document may become once its aliases are expanded, so a
// small file cannot make serialisation take exponential time.
const maxExpandedNodes = 1 << 18

// YAML tags in short form.
const (
	TagString    = "!!str"
	TagInt       = "!!int"
	TagFloat     = "!!float"
	TagBool      = "!!bool"
	TagNull      = "!!null"
	TagBinary    = "!!binary"
	TagTimestamp = "!!timestamp"
	tagMerge     = "!!merge"
)

// KindOfTag maps a resolved YAML tag to the Kind of its node. Tags other than the core scalar
// tags (timestamps, binary, application tags) are strings whose Tag is kept.
func KindOfTag(tag string) Kind {
	switch tag {
	case TagInt:
		return Int
	case TagFloat:
		return Float
	case TagBool:
		return Bool
	case TagNull:
		return Null
	}
	return String
}

// yamlConverter turns yaml.v3 nodes into Nodes, sharing the conversion of anchored nodes among
// their aliases.
type yamlConverter struct {
	done       map[*yaml.Node]converted
	inProgress map[*yaml.Node]bool
	// sizes holds the expanded size of every map and list converted, for merge keys.
	sizes map[*Node]int
}

type converted struct {
	node *Node
	size int
}

func parseYAML(data []byte) ([]*Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	c := &yamlConverter{done: map[*yaml.Node]converted{}, inProgress: map[*yaml.Node]bool{}, sizes: map[*Node]int{}}
	var roots []*Node
	total := 0
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlSyntaxError(err)
		}
		root, size, err := c.convert(&doc)
		if err != nil {
			return nil, err
		}
		total += size
		if total > maxExpandedNodes {
			return nil, errTooLarge
		}
		roots = append(roots, root)
	}
	if len(roots) == 0 {
		roots = []*Node{{Kind: Map}}
	}
	return roots, nil
}

var errTooLarge = fmt.Errorf("document expands to more than %d values", maxExpandedNodes)

// at names where n is written: errors give positions, never keys, which may be secret.
func at(n *yaml.Node) string {
	return fmt.Sprintf("line %d, column %d", n.Line, n.Column)
}

// yamlSyntaxError keeps a yaml.v3 error's line and its message if the message quotes nothing
// from the input (some quote an anchor name or a scalar).
func yamlSyntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := ""
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			line, msg = n, after
		}
	}
	if strings.ContainsAny(msg, "'\"`\n") {
		msg = ""
	}
	switch {
	case line != "" && msg != "":
		return fmt.Errorf("malformed YAML at line %s: %s", line, msg)
	case line != "":
		return fmt.Errorf("malformed YAML at line %s", line)
	case msg != "":
		return fmt.Errorf("malformed YAML: %s", msg)
	}
	return errors.New("malformed YAML")
}

func (c *yamlConverter) convert(n *yaml.Node) (*Node, int, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return &Node{Kind: Null, Tag: TagNull}, 1, nil
		}
		return c.convert(n.Content[0])
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, 0, fmt.Errorf("alias at %s has no anchor", at(n))
		}
		return c.convertShared(n.Alias)
	case yaml.ScalarNode:
		tag := n.ShortTag()
		return &Node{Kind: KindOfTag(tag), Tag: tag, Text: n.Value}, 1, nil
	case yaml.SequenceNode, yaml.MappingNode:
		if n.Anchor != "" {
			return c.convertShared(n)
		}
		return c.convertCollection(n)
	}
	return nil, 0, fmt.Errorf("unsupported YAML node at %s", at(n))
}

// convertShared converts an anchored node once, however many aliases refer to it.
func (c *yamlConverter) convertShared(target *yaml.Node) (*Node, int, error) {
	if prev, ok := c.done[target]; ok {
		return prev.node, prev.size, nil
	}
	if c.inProgress[target] {
		return nil, 0, fmt.Errorf("an alias refers to a value that contains it (the anchor at %s)", at(target))
	}
	c.inProgress[target] = true
	var node *Node
	var size int
	var err error
	if target.Kind == yaml.SequenceNode || target.Kind == yaml.MappingNode {
		node, size, err = c.convertCollection(target)
	} else {
		node, size, err = c.convert(target)
	}
	delete(c.inProgress, target)
	if err != nil {
		return nil, 0, err
	}
	c.done[target] = converted{node, size}
	return node, size, nil
}

func (c *yamlConverter) convertCollection(n *yaml.Node) (*Node, int, error) {
	if n.Kind == yaml.MappingNode {
		return c.convertMapping(n)
	}
	list := &Node{Kind: List, Items: make([]*Node, 0, len(n.Content))}
	size := 1
	for _, item := range n.Content {
		child, childSize, err := c.convert(item)
		if err != nil {
			return nil, 0, err
		}
		size += childSize
		if size > maxExpandedNodes {
			return nil, 0, errTooLarge
		}
		list.Items = append(list.Items, child)
	}
	c.sizes[list] = size
	return list, size, nil
}

// yamlKey returns the text of a mapping key, which must be a scalar.
func yamlKey(k *yaml.Node) (string, bool, error) {
	for k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	if k.Kind != yaml.ScalarNode {
		return "", false, fmt.Errorf("the key at %s is a map or list; only scalar keys are supported", at(k))
	}
	return k.Value, k.ShortTag() == tagMerge, nil
}

// convertMapping converts a mapping, resolving merge keys ("<<: *anchor"): keys written in the
// mapping win over merged ones, and earlier merge sources win over later ones.
func (c *yamlConverter) convertMapping(n *yaml.Node) (*Node, int, error) {
	if len(n.Content)%2 != 0 {
		return nil, 0, fmt.Errorf("malformed mapping at %s", at(n))
	}
	explicit := make(map[string]bool, len(n.Content)/2)
	for i := 0; i < len(n.Content); i += 2 {
		key, merge, err := yamlKey(n.Content[i])
		if err != nil {
			return nil, 0, err
		}
		if merge {
			continue
		}
		if explicit[key] {
			return nil, 0, fmt.Errorf("duplicate key at %s", at(n.Content[i]))
		}
		explicit[key] = true
	}
	m := &Node{Kind: Map, Entries: make([]Entry, 0, len(n.Content)/2)}
	size := 1
	merged := map[string]bool{}
	for i := 0; i < len(n.Content); i += 2 {
		key, merge, _ := yamlKey(n.Content[i])
		if merge {
			sources, err := c.mergeSources(n.Content[i+1])
			if err != nil {
				return nil, 0, err
			}
			for _, src := range sources {
				for _, e := range src.Entries {
					if explicit[e.Key] || merged[e.Key] {
						continue
					}
					merged[e.Key] = true
					m.Entries = append(m.Entries, e)
					size += c.sizeOf(e.Value)
					if size > maxExpandedNodes {
						return nil, 0, errTooLarge
					}
				}
			}
			continue
		}
		child, childSize, err := c.convert(n.Content[i+1])
		if err != nil {
			return nil, 0, err
		}
		size += childSize
		if size > maxExpandedNodes {
			return nil, 0, errTooLarge
		}
		m.Entries = append(m.Entries, Entry{Key: key, Value: child})
	}
	c.sizes[m] = size
	return m, size, nil
}

func (c *yamlConverter) sizeOf(n *Node) int {
	if size, ok := c.sizes[n]; ok {
		return size
	}
	return 1
}

func (c *yamlConverter) mergeSources(v *yaml.Node) ([]*Node, error) {
	var candidates []*yaml.Node
	if v.Kind == yaml.SequenceNode {
		candidates = v.Content
	} else {
		candidates = []*yaml.Node{v}
	}
	var sources []*Node
	for _, cand := range candidates {
		node, _, err := c.convert(cand)
		if err != nil {
			return nil, err
		}
		if node.Kind != Map {
			return nil, fmt.Errorf("the merge key value at %s must refer to a map", at(cand))
		}
		sources = append(sources, node)
	}
	return sources, nil
}

// toYAMLNode builds the yaml.v3 node that writes n.
func toYAMLNode(n *Node) *yaml.Node {
	switch n.Kind {
	case Map:
		out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for i, e := range n.Entries {
			key := yamlString(e.Key)
			if e.Merge {
				key = &yaml.Node{Kind: yaml.ScalarNode, Tag: tagMerge, Value: e.Key, Style: yaml.TaggedStyle}
			}
			placeComments(out, key, i, n.CommentsBefore(i))
			out.Content = append(out.Content, key, toYAMLNode(e.Value))
		}
		placeTrailingComments(out, 2, n.CommentsBefore(len(n.Entries)))
		return out
	case List:
		out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i, item := range n.Items {
			child := toYAMLNode(item)
			placeComments(out, child, i, n.CommentsBefore(i))
			out.Content = append(out.Content, child)
		}
		placeTrailingComments(out, 1, n.CommentsBefore(len(n.Items)))
		return out
	case String:
		if n.Tag == "" || n.Tag == TagString {
			return yamlString(n.Text)
		}
	}
	text := n.Text
	if n.Kind == Null && text == "" {
		text = "null"
	}
	// Without a tag the text is written plain and reads back as whatever it resolves to, as
	// yaml.v3 writes Go numbers and booleans.
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: n.Tag, Value: text}
}

// placeComments attaches the comments before entry or item i where sops' YAML store puts them,
// so that they print as `sops --decrypt` prints them: before the first one on the map or list
// itself, before any other on its key or item.
func placeComments(container, first *yaml.Node, i int, comments []string) {
	if len(comments) == 0 {
		return
	}
	if i == 0 {
		first = container
	}
	first.HeadComment = yamlComment(comments)
}

// placeTrailingComments attaches comments after the last entry or item as the foot comment of
// its key (stride 2) or item (stride 1), or of the container when it is empty, as sops does.
func placeTrailingComments(container *yaml.Node, stride int, comments []string) {
	if len(comments) == 0 {
		return
	}
	if len(container.Content) == 0 {
		container.HeadComment = yamlComment(comments)
		return
	}
	container.Content[len(container.Content)-stride].FootComment = yamlComment(comments)
}

func yamlComment(lines []string) string {
	return "#" + strings.Join(lines, "\n#")
}

// yamlString builds the node yaml.v3 writes for a Go string (what yaml.Node.Encode gives, at a
// fraction of the cost): a literal block when it spans lines, double-quoted when plain text
// would read back as YAML 1.1 boolean or base-60 number (the encoder quotes it by itself when
// it would read back as anything else), !!binary when it is not UTF-8.
func yamlString(s string) *yaml.Node {
	switch {
	case !utf8.ValidString(s):
		// Rare enough to let yaml.v3 lay out the base64 itself.
		var n yaml.Node
		if err := n.Encode(s); err == nil {
			return &n
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: TagBinary, Value: base64.StdEncoding.EncodeToString([]byte(s))}
	case strings.Contains(s, "\n"):
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: TagString, Value: s, Style: yaml.LiteralStyle}
	case isYAML11Boolean(s) || base60Number.MatchString(s):
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: TagString, Value: s, Style: yaml.DoubleQuotedStyle}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: TagString, Value: s}
}

// isYAML11Boolean and base60Number match plain scalars that YAML 1.1 readers take for booleans
// and sexagesimal numbers although YAML 1.2 reads them as strings.
func isYAML11Boolean(s string) bool {
	switch s {
	case "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF":
		return true
	}
	return false
}

var base60Number = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`)

func emitYAML(roots []*Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(yamlIndent)
	for _, root := range roots {
		doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{toYAMLNode(root)}}
		if err := enc.Encode(doc); err != nil {
			return nil, fmt.Errorf("writing YAML: %w", err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("writing YAML: %w", err)
	}
	return buf.Bytes(), nil
}

func emitYAMLValue(n *Node) ([]byte, error) {
	return emitYAML([]*Node{n})
}
