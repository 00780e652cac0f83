package structured

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// DefaultSection names the section of INI keys written before any section header. It is the
// first entry of every parsed INI root, empty or not.
const DefaultSection = "DEFAULT"

const iniKeyDelimiters = "=:"

// parseINI reads INI the way the Go INI library sops relies on (gopkg.in/ini.v1) does, so that
// files written by sops read back identically:
//
//   - "#" and ";" start comment lines; an inline comment needs whitespace before it, so
//     values such as "p#ss" stay whole.
//   - Keys and values are separated by "=" or ":" and trimmed; values may be wrapped in
//     '...', "...", `...` or """...""" (the last two may span lines), and a trailing
//     backslash continues a value on the next line.
//   - A section header may repeat: each occurrence is its own section, as with ini.v1's
//     non-unique sections (a key found in more than one is ambiguous and refused).
//
// A key defined twice within one section is an error. With keepComments, the comments ini.v1
// keeps are kept as Comments: a section's (the lines before its header and a comment after it)
// on the root, before the section's entry, and a key's (the lines before it and a comment after
// its value) on its section, before the key, each as one text as ini.v1 holds it.
func parseINI(data []byte, keepComments bool) (*Node, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	lines := strings.SplitAfter(string(data), "\n")
	section := &Node{Kind: Map}
	root := &Node{Kind: Map, Entries: []Entry{{Key: DefaultSection, Value: section}}}
	seen := map[string]bool{}
	autoIncrement := 1
	var comment strings.Builder
	takeComment := func(n *Node, i, size int) {
		c := strings.TrimSpace(comment.String())
		comment.Reset()
		if !keepComments || c == "" {
			return
		}
		for len(n.Comments) <= size {
			n.Comments = append(n.Comments, nil)
		}
		n.Comments[i] = []string{c}
	}
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		line := strings.TrimLeftFunc(lines[i], unicode.IsSpace)
		if line == "" {
			continue
		}
		if line[0] == '#' || line[0] == ';' {
			comment.WriteString(line)
			continue
		}
		if line[0] == '[' {
			end := strings.LastIndexByte(line, ']')
			if end < 0 {
				return nil, fmt.Errorf("line %d: unclosed section header", lineNo)
			}
			sectionName := line[1:end]
			if sectionName == "" {
				return nil, fmt.Errorf("line %d: empty section name", lineNo)
			}
			if c := strings.IndexAny(line[end+1:], "#;"); c >= 0 {
				comment.WriteString(line[end+1+c:])
			}
			takeComment(root, len(root.Entries), len(root.Entries))
			section = &Node{Kind: Map}
			root.Entries = append(root.Entries, Entry{Key: sectionName, Value: section})
			seen = map[string]bool{}
			autoIncrement = 1
			continue
		}
		name, offset, err := readINIKey(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
		value, inline, consumed, err := readINIValue(line[offset:], lines[i+1:])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
		comment.WriteString(inline)
		i += consumed
		if name == "-" {
			name = "#" + strconv.Itoa(autoIncrement)
			autoIncrement++
		}
		if seen[name] {
			return nil, fmt.Errorf("line %d: the key is defined twice in its section", lineNo)
		}
		seen[name] = true
		takeComment(section, len(section.Entries), len(section.Entries))
		section.Entries = append(section.Entries, Entry{Key: name, Value: &Node{Kind: String, Text: value}})
	}
	return root, nil
}

// readINIKey returns a line's key name and the offset just past its delimiter.
func readINIKey(line string) (string, int, error) {
	var quote string
	switch {
	case len(line) > 6 && strings.HasPrefix(line, `"""`):
		quote = `"""`
	case line[0] == '"':
		quote = `"`
	case line[0] == '`':
		quote = "`"
	}
	if quote != "" {
		start := len(quote)
		pos := strings.Index(line[start:], quote)
		if pos < 0 {
			return "", 0, fmt.Errorf("missing closing quote of a key name")
		}
		pos += start
		delim := strings.IndexAny(line[pos+start:], iniKeyDelimiters)
		if delim < 0 {
			return "", 0, fmt.Errorf("expected key = value")
		}
		return strings.TrimSpace(line[start:pos]), pos + delim + start + 1, nil
	}
	delim := strings.IndexAny(line, iniKeyDelimiters)
	if delim < 0 {
		return "", 0, fmt.Errorf("expected key = value")
	}
	if delim == 0 {
		return "", 0, fmt.Errorf("empty key name")
	}
	return strings.TrimSpace(line[:delim]), delim + 1, nil
}

// readINIValue reads a value starting on the current line; following lines are consulted for
// multi-line quotes and continuations. It returns the value, the comment after it, and how
// many following lines it used.
func readINIValue(in string, following []string) (value, comment string, used int, err error) {
	line := strings.TrimLeftFunc(in, unicode.IsSpace)
	if line == "" {
		return "", "", 0, nil
	}
	var quote string
	switch {
	case len(line) > 3 && strings.HasPrefix(line, `"""`):
		quote = `"""`
	case line[0] == '`':
		quote = "`"
	}
	if quote != "" {
		start := len(quote)
		if pos := strings.LastIndex(line[start:], quote); pos >= 0 {
			return line[start : start+pos], "", 0, nil
		}
		value := line[start:]
		for used, next := range following {
			if pos := strings.LastIndex(next, quote); pos >= 0 {
				return value + next[:pos], "", used + 1, nil
			}
			value += next
		}
		return "", "", 0, fmt.Errorf("missing closing %s", quote)
	}

	line = strings.TrimSpace(line)
	if strings.HasSuffix(line, `\`) {
		value := line[:len(line)-1]
		for _, next := range following {
			used++
			next = strings.TrimSpace(next)
			if next == "" {
				break
			}
			value += next
			if !strings.HasSuffix(value, `\`) {
				break
			}
			value = value[:len(value)-1]
		}
		return value, "", used, nil
	}
	if i := inlineCommentStart(line); i >= 0 {
		line, comment = strings.TrimSpace(line[:i]), line[i+1:]
	}
	if surroundedBy(line, '\'') || surroundedBy(line, '"') {
		line = line[1 : len(line)-1]
	}
	return line, comment, 0, nil
}

// inlineCommentStart finds a "#" or ";" preceded by whitespace.
func inlineCommentStart(line string) int {
	for i := 1; i < len(line); i++ {
		if (line[i] == '#' || line[i] == ';') && (line[i-1] == ' ' || line[i-1] == '\t') {
			return i - 1
		}
	}
	return -1
}

// surroundedBy reports whether s is quote, text without quote, quote.
func surroundedBy(s string, quote byte) bool {
	return len(s) >= 2 && s[0] == quote && s[len(s)-1] == quote &&
		strings.IndexByte(s[1:], quote) == len(s)-2
}

// lookupINI finds "key" (outside any section, or a whole section) or "section/key". A key that
// can be read more than one way (a repeated section, a "/" in a section or key name) is refused.
func lookupINI(root *Node, key string) (*Node, error) {
	var found []*Node
	if !strings.Contains(key, "/") {
		found = iniKeys(root, DefaultSection, key, found)
		for _, s := range root.Entries {
			if s.Key == key {
				found = append(found, s.Value)
			}
		}
		switch len(found) {
		case 0:
			return nil, &KeyError{Key: key, Reason: fmt.Sprintf("no key %q outside a section and no section %q", key, key)}
		case 1:
			return found[0], nil
		}
		return nil, ambiguous(key)
	}
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			found = iniKeys(root, key[:i], key[i+1:], found)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
	default:
		return nil, ambiguous(key)
	}
	section, name, _ := strings.Cut(key, "/")
	for _, s := range root.Entries {
		if s.Key == section {
			return nil, &KeyError{Key: key, Reason: fmt.Sprintf("section %q has no key %q", section, name)}
		}
	}
	return nil, &KeyError{Key: key, Reason: fmt.Sprintf("no section %q", section)}
}

// iniKeys appends every value of key name in the sections called section.
func iniKeys(root *Node, section, name string, found []*Node) []*Node {
	for _, s := range root.Entries {
		if s.Key != section || s.Value.Kind != Map {
			continue
		}
		for _, e := range s.Value.Entries {
			if e.Key == name {
				found = append(found, e.Value)
			}
		}
	}
	return found
}

// emitINI writes sections the way ini.v1 (and so sops) does: keys aligned on " = ", a blank
// line between sections, the default section without a header (and not at all when empty),
// and values quoted when they would not read back otherwise.
func emitINI(sections []Entry, comments func(i int) []string) ([]byte, error) {
	var buf bytes.Buffer
	for i, s := range sections {
		if s.Value.Kind != Map {
			return nil, fmt.Errorf("INI section %q holds a %s, not keys", s.Key, s.Value.Kind)
		}
		writeINIComment(&buf, comments(i), false)
		if i == 0 && strings.ToUpper(s.Key) == DefaultSection {
			if len(s.Value.Entries) == 0 {
				continue
			}
		} else {
			buf.WriteString("[" + s.Key + "]\n")
		}
		names := make([]string, len(s.Value.Entries))
		align := 0
		for j, e := range s.Value.Entries {
			if !e.Value.IsScalar() {
				return nil, fmt.Errorf("INI key %q in section %q holds a %s", e.Key, s.Key, e.Value.Kind)
			}
			names[j] = quoteINIKey(e.Key)
			align = max(align, len(names[j]))
		}
		for j, e := range s.Value.Entries {
			writeINIComment(&buf, s.Value.CommentsBefore(j), true)
			buf.WriteString(names[j])
			buf.WriteString(strings.Repeat(" ", align-len(names[j])))
			buf.WriteString(" = ")
			buf.WriteString(quoteINIValue(string(scalarBytes(e.Value))))
			buf.WriteByte('\n')
		}
		if i != len(sections)-1 {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes(), nil
}

// writeINIComment writes a section's or key's comment lines as ini.v1 does: "; " before a line
// that starts with neither "#" nor ";", one space after the character of one that does.
func writeINIComment(buf *bytes.Buffer, comments []string, trim bool) {
	if len(comments) == 0 {
		return
	}
	for _, line := range strings.Split(strings.Join(comments, "\n"), "\n") {
		switch {
		case line != "" && (line[0] == '#' || line[0] == ';'):
			line = line[:1] + " " + strings.TrimSpace(line[1:])
		case trim:
			line = "; " + strings.TrimSpace(line)
		default:
			line = "; " + line
		}
		buf.WriteString(line + "\n")
	}
}

func quoteINIKey(k string) string {
	switch {
	case strings.Contains(k, `"`) || strings.ContainsAny(k, iniKeyDelimiters):
		return "`" + k + "`"
	case strings.Contains(k, "`"):
		return `"""` + k + `"""`
	}
	return k
}

func quoteINIValue(v string) string {
	switch {
	case strings.ContainsAny(v, "\n`"):
		return `"""` + v + `"""`
	case strings.ContainsAny(v, "#;"):
		return "`" + v + "`"
	case len(strings.TrimSpace(v)) != len(v):
		return `"` + v + `"`
	}
	return v
}
