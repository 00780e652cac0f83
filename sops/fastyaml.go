package sops

import (
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/secretd/secretd/structured"
)

// sops writes YAML in one regular shape: block mappings and sequences indented by four spaces,
// one "key: value" per line, plain or double-quoted scalars and "|" blocks for multi-line text.
// parseSimpleYAML reads exactly that shape many times faster than yaml.v3 and reports false for
// anything else (comments, flow collections, anchors, tags, escapes, several documents, unusual
// indentation...), which is then read by yaml.v3. Scalars get their tags from yaml.v3's own
// resolution, so both readers build the same tree; the fuzz tests hold them to it.

// simpleYAML is the state of one parseSimpleYAML run.
type simpleYAML struct {
	lines  []string
	pos    int
	shrunk *shrunk
}

func parseSimpleYAML(text string, s *shrunk) (*structured.Node, bool) {
	if text == "" || strings.ContainsAny(text, "\t\r#\\") || !utf8.ValidString(text) {
		return nil, false
	}
	for i := 0; i < len(text); i++ {
		if c := text[i]; (c < 0x20 && c != '\n') || c == 0x7f {
			return nil, false
		}
	}
	text, ok := strings.CutSuffix(text, "\n")
	if !ok {
		return nil, false
	}
	p := &simpleYAML{lines: strings.Split(text, "\n"), shrunk: s}
	for _, line := range p.lines {
		if line == "" || strings.HasSuffix(line, " ") {
			return nil, false
		}
	}
	if indentOf(p.lines[0]) != 0 {
		return nil, false
	}
	root, ok := p.mapping(0)
	if !ok || p.pos != len(p.lines) {
		return nil, false
	}
	return root, true
}

func indentOf(line string) int {
	return len(line) - len(strings.TrimLeft(line, " "))
}

// mapping reads the keys at exactly indent spaces from the current line on.
func (p *simpleYAML) mapping(indent int) (*structured.Node, bool) {
	out := &structured.Node{Kind: structured.Map}
	seen := map[string]bool{}
	for p.pos < len(p.lines) {
		line := p.lines[p.pos]
		lineIndent := indentOf(line)
		if lineIndent < indent {
			break
		}
		if lineIndent > indent {
			return nil, false
		}
		content := line[indent:]
		key, rest, found := strings.Cut(content, ":")
		if !found || !simpleKey(key) || seen[key] {
			return nil, false
		}
		seen[key] = true
		p.pos++
		var value *structured.Node
		var ok bool
		switch {
		case rest == "":
			value, ok = p.nested(indent)
		case rest == " |" || rest == " |-":
			value, ok = p.block(indent, rest == " |-")
		case strings.HasPrefix(rest, " "):
			value, ok = p.scalar(rest[1:])
			if ok && p.pos < len(p.lines) && indentOf(p.lines[p.pos]) > indent {
				// A plain scalar continued on the next line.
				return nil, false
			}
		}
		if !ok {
			return nil, false
		}
		out.Entries = append(out.Entries, structured.Entry{Key: p.shrunk.restore(key), Value: value})
	}
	return out, len(out.Entries) > 0
}

// nested reads the value of a key written alone on its line: a more indented mapping or
// sequence, or null.
func (p *simpleYAML) nested(indent int) (*structured.Node, bool) {
	if p.pos == len(p.lines) || indentOf(p.lines[p.pos]) <= indent {
		if p.pos < len(p.lines) && strings.HasPrefix(p.lines[p.pos][indentOf(p.lines[p.pos]):], "-") {
			// A sequence at the key's own indentation.
			return nil, false
		}
		return &structured.Node{Kind: structured.Null, Tag: structured.TagNull}, true
	}
	child := indentOf(p.lines[p.pos])
	if strings.HasPrefix(p.lines[p.pos][child:], "- ") {
		return p.sequence(child)
	}
	return p.mapping(child)
}

// sequence reads "- item" lines at exactly indent spaces.
func (p *simpleYAML) sequence(indent int) (*structured.Node, bool) {
	out := &structured.Node{Kind: structured.List, Items: []*structured.Node{}}
	for p.pos < len(p.lines) {
		line := p.lines[p.pos]
		lineIndent := indentOf(line)
		if lineIndent < indent {
			break
		}
		if lineIndent > indent || !strings.HasPrefix(line[indent:], "- ") {
			return nil, false
		}
		item := line[indent+2:]
		if item == "" || item[0] == ' ' || item[0] == '-' || item[0] == '|' {
			return nil, false
		}
		var value *structured.Node
		var ok bool
		if key, _, found := strings.Cut(item, ":"); found && simpleKey(key) {
			// "- key: value" starts a mapping whose keys sit two columns right of the dash.
			p.lines[p.pos] = strings.Repeat(" ", indent+2) + item
			value, ok = p.mapping(indent + 2)
		} else {
			p.pos++
			value, ok = p.scalar(item)
			if ok && p.pos < len(p.lines) && indentOf(p.lines[p.pos]) > indent {
				return nil, false
			}
		}
		if !ok {
			return nil, false
		}
		out.Items = append(out.Items, value)
	}
	return out, true
}

// block reads a literal block scalar ("|" keeps one final newline, "|-" none).
func (p *simpleYAML) block(indent int, strip bool) (*structured.Node, bool) {
	if p.pos == len(p.lines) {
		return nil, false
	}
	contentIndent := indentOf(p.lines[p.pos])
	if contentIndent <= indent {
		return nil, false
	}
	var b strings.Builder
	for p.pos < len(p.lines) {
		line := p.lines[p.pos]
		lineIndent := indentOf(line)
		if lineIndent <= indent {
			break
		}
		if lineIndent < contentIndent {
			return nil, false
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(line[contentIndent:])
		p.pos++
	}
	if !strip {
		b.WriteByte('\n')
	}
	return &structured.Node{Kind: structured.String, Tag: structured.TagString, Text: p.shrunk.restore(b.String())}, true
}

// scalar reads a value written on the line of its key or dash.
func (p *simpleYAML) scalar(v string) (*structured.Node, bool) {
	if v == "" {
		return nil, false
	}
	switch v[0] {
	case '"', '\'':
		if len(v) < 2 || v[len(v)-1] != v[0] || strings.IndexByte(v[1:len(v)-1], v[0]) >= 0 {
			return nil, false
		}
		return &structured.Node{Kind: structured.String, Tag: structured.TagString, Text: p.shrunk.restore(v[1 : len(v)-1])}, true
	case ' ', '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '%', '@', '`':
		return nil, false
	}
	if strings.Contains(v, ": ") || strings.HasSuffix(v, ":") || strings.ContainsAny(v, "\"'") {
		return nil, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return nil, false
		}
	}
	if idx, ok := p.shrunk.placeholderIndex(v); ok {
		return &structured.Node{Kind: structured.String, Tag: structured.TagString, Text: p.shrunk.tokens[idx]}, true
	}
	tag := (&yaml.Node{Kind: yaml.ScalarNode, Value: v}).ShortTag()
	return &structured.Node{Kind: structured.KindOfTag(tag), Tag: tag, Text: p.shrunk.restore(v)}, true
}

// simpleKey accepts keys made of letters, digits and "_.-/" starting with a letter, a digit or
// "_" that YAML reads as strings.
func simpleKey(key string) bool {
	if key == "" || len(key) > 1000 {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case (c == '.' || c == '-' || c == '/') && i > 0:
		default:
			return false
		}
	}
	return (&yaml.Node{Kind: yaml.ScalarNode, Value: key}).ShortTag() == structured.TagString
}
