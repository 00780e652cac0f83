package structured

import (
	"bytes"
	"fmt"
	"strings"
)

// parseDotenv reads KEY=value lines.
//
//   - Blank lines and lines starting with "#" are skipped; CRLF line ends are accepted.
//   - An "export " prefix is ignored; spaces around the name are trimmed.
//   - 'single quoted' values are literal; "double quoted" values understand \n, \r, \t, \", \\
//     and \$; the quotes must enclose the whole value.
//   - Any other value is taken verbatim after the "=" with "\n" read as a newline, the way sops
//     writes dotenv files.
//
// A variable defined twice is an error: which one a consumer would see is ambiguous.
func parseDotenv(data []byte) (*Node, error) {
	root := &Node{Kind: Map}
	seen := map[string]bool{}
	for i, rawLine := range bytes.Split(data, []byte("\n")) {
		line := strings.TrimSuffix(string(rawLine), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			return nil, fmt.Errorf("line %d: expected NAME=value", i+1)
		}
		name := strings.TrimSpace(line[:eq])
		if rest, ok := strings.CutPrefix(name, "export "); ok {
			name = strings.TrimSpace(rest)
		}
		if name == "" {
			return nil, fmt.Errorf("line %d: empty variable name", i+1)
		}
		if seen[name] {
			return nil, fmt.Errorf("line %d: the variable is defined twice", i+1)
		}
		seen[name] = true
		value, err := dotenvValue(line[eq+1:])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		root.Entries = append(root.Entries, Entry{Key: name, Value: &Node{Kind: String, Text: value}})
	}
	return root, nil
}

func dotenvValue(raw string) (string, error) {
	v := strings.TrimLeft(raw, " \t")
	trimmed := strings.TrimRight(v, " \t")
	if len(trimmed) >= 2 {
		switch {
		case trimmed[0] == '\'' && trimmed[len(trimmed)-1] == '\'':
			return trimmed[1 : len(trimmed)-1], nil
		case trimmed[0] == '"' && trimmed[len(trimmed)-1] == '"':
			return unescapeDoubleQuoted(trimmed[1 : len(trimmed)-1])
		}
	}
	return strings.ReplaceAll(raw, `\n`, "\n"), nil
}

func unescapeDoubleQuoted(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			return "", fmt.Errorf("unescaped double quote inside a double-quoted value")
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("double-quoted value ends with a lone backslash")
		}
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '"', '\\', '$':
			b.WriteByte(s[i])
		default:
			// Unknown escapes stay as written, as shells do inside double quotes.
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}

// emitDotenv writes one NAME=value line per variable, newlines as "\n", the way sops does.
func emitDotenv(root *Node) ([]byte, error) {
	var buf bytes.Buffer
	comments := func(i int) {
		for _, c := range root.CommentsBefore(i) {
			buf.WriteString("#" + c + "\n")
		}
	}
	for i, e := range root.Entries {
		comments(i)
		if !e.Value.IsScalar() {
			return nil, fmt.Errorf("variable %q holds a %s, which dotenv cannot express", e.Key, e.Value.Kind)
		}
		buf.WriteString(e.Key)
		buf.WriteByte('=')
		buf.WriteString(strings.ReplaceAll(string(scalarBytes(e.Value)), "\n", `\n`))
		buf.WriteByte('\n')
	}
	comments(len(root.Entries))
	return buf.Bytes(), nil
}
