package sops

// Reading and writing the plaintext and encrypted forms of each format as sops' stores do.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// yamlIndent is sops' default YAML indentation.
const yamlIndent = 4

// writtenMetadata is the sops metadata Seal and UpdateKeys write.
type writtenMetadata struct {
	ageKeys           []ageKey
	lastModified, mac string
	settings          Settings
	// binary files carry no encryption rule, as sops writes them.
	binary bool
}

// node builds the metadata tree, its keys in sops' order (alphabetical).
func (m *writtenMetadata) node() *yaml.Node {
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	ages := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, k := range m.ageKeys {
		ages.Content = append(ages.Content, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
			str("recipient"), str(k.recipient), str("enc"), {Kind: yaml.ScalarNode, Tag: "!!str", Value: k.enc, Style: yaml.LiteralStyle},
		}})
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	add := func(k string, v *yaml.Node) { out.Content = append(out.Content, str(k), v) }
	add("age", ages)
	add("lastmodified", str(m.lastModified))
	add("mac", str(m.mac))
	s := m.settings
	if s.MACOnlyEncrypted {
		add("mac_only_encrypted", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	}
	if !m.binary {
		switch {
		case s.EncryptedRegex != "":
			add("encrypted_regex", str(s.EncryptedRegex))
		case s.EncryptedSuffix != "":
			add("encrypted_suffix", str(s.EncryptedSuffix))
		case s.UnencryptedRegex != "":
			add("unencrypted_regex", str(s.UnencryptedRegex))
		case s.UnencryptedSuffix != "":
			add("unencrypted_suffix", str(s.UnencryptedSuffix))
		default:
			add("unencrypted_suffix", str(defaultUnencryptedSuffix))
		}
	}
	add("version", str(Version))
	sortMapping(out)
	return out
}

func sortMapping(m *yaml.Node) {
	type pair struct{ k, v *yaml.Node }
	var pairs []pair
	for i := 0; i+1 < len(m.Content); i += 2 {
		pairs = append(pairs, pair{m.Content[i], m.Content[i+1]})
	}
	sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].k.Value < pairs[j].k.Value })
	m.Content = m.Content[:0]
	for _, p := range pairs {
		m.Content = append(m.Content, p.k, p.v)
	}
}

// toYAML converts a tree read by the reading side's loaders; numbers in JSON are floats to
// sops.
func toYAML(n *structured.Node, sourceFormat string) *yaml.Node {
	switch n.Kind {
	case structured.Map:
		out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, e := range n.Entries {
			out.Content = append(out.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: e.Key}, toYAML(e.Value, sourceFormat))
		}
		return out
	case structured.List:
		out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, item := range n.Items {
			out.Content = append(out.Content, toYAML(item, sourceFormat))
		}
		return out
	case structured.Int, structured.Float:
		if sourceFormat == manifest.FormatJSON {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: n.Text}
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: n.Text}
	case structured.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: n.Text}
	case structured.Null:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: n.Text}
}

// parsePlain reads plaintext as sops reads a file to encrypt.
func parsePlain(format string, plain []byte) ([]*yaml.Node, error) {
	switch format {
	case manifest.FormatYAML:
		docs, err := decodeYAML(plain)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if err := refuseMetadataKey(d); err != nil {
				return nil, err
			}
		}
		return docs, nil
	case manifest.FormatJSON:
		if len(bytes.TrimSpace(plain)) == 0 {
			return []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}, nil
		}
		dec := json.NewDecoder(bytes.NewReader(plain))
		dec.UseNumber()
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return nil, errors.New("the JSON document must be an object")
		}
		root, err := readJSONObject(dec, plain, nil)
		if err != nil {
			return nil, err
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, errors.New("trailing data after the JSON object")
		}
		doc := toYAML(root, manifest.FormatJSON)
		return []*yaml.Node{doc}, refuseMetadataKey(doc)
	case manifest.FormatDotenv:
		return parseDotenvLines(plain, false)
	case manifest.FormatINI:
		doc, err := structured.Parse(manifest.FormatINI, plain)
		if err != nil {
			return nil, err
		}
		root := toYAML(doc.Roots()[0], manifest.FormatINI)
		return []*yaml.Node{root}, refuseMetadataKey(root)
	case manifest.FormatBinary:
		return []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: "data"}, {Kind: yaml.ScalarNode, Tag: "!!str", Value: string(plain)},
		}}}, nil
	}
	return nil, fmt.Errorf("secretd cannot write sops files in %s format", format)
}

func refuseMetadataKey(m *yaml.Node) error {
	for i := 0; i < len(m.Content); i += 2 {
		if m.Content[i].Value == metadataKey {
			return fmt.Errorf("the top-level key %q is reserved for sops metadata", metadataKey)
		}
	}
	return nil
}

// parseDotenvLines reads dotenv as sops' store does: KEY=value split at the first "=", "\n"
// meaning a newline, "#" lines as comments. Keys starting with "sops_" are metadata: dropped
// from an encrypted file (withMetadata), refused in plaintext.
func parseDotenvLines(data []byte, withMetadata bool) ([]*yaml.Node, error) {
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	var comments []string
	seen := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case line == "":
			continue
		case line[0] == '#':
			comments = append(comments, line)
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("dotenv line %d: expected KEY=value", i+1)
		}
		if strings.HasPrefix(key, metadataKey+"_") {
			if withMetadata {
				continue
			}
			return nil, fmt.Errorf("dotenv line %d: keys starting with %q are reserved for sops metadata", i+1, metadataKey+"_")
		}
		// A file with the variable twice would be refused when read: which one a consumer
		// sees is ambiguous.
		if seen[key] {
			return nil, fmt.Errorf("dotenv line %d: the variable is defined twice", i+1)
		}
		seen[key] = true
		k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, HeadComment: strings.Join(comments, "\n")}
		comments = nil
		root.Content = append(root.Content, k, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.ReplaceAll(value, `\n`, "\n")})
	}
	root.FootComment = strings.Join(comments, "\n")
	return []*yaml.Node{root}, nil
}

// emitPlain writes decrypted trees as `sops -d` prints them.
func emitPlain(format string, docs []*yaml.Node) ([]byte, error) {
	switch format {
	case manifest.FormatYAML:
		return emitYAMLDocs(docs)
	case manifest.FormatJSON:
		return emitJSON(docs[0])
	case manifest.FormatDotenv:
		return emitDotenv(docs[0], nil), nil
	case manifest.FormatINI:
		return emitINI(docs[0], nil)
	case manifest.FormatBinary:
		if len(docs[0].Content) == 2 {
			return []byte(docs[0].Content[1].Value), nil
		}
	}
	return nil, fmt.Errorf("secretd cannot write sops files in %s format", format)
}

// emitEncrypted writes encrypted trees with their metadata as sops writes them.
func emitEncrypted(format string, docs []*yaml.Node, m *writtenMetadata) ([]byte, error) {
	meta := m.node()
	withMeta := func(d *yaml.Node) *yaml.Node {
		c := *d
		c.Content = append(append([]*yaml.Node{}, d.Content...), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: metadataKey}, meta)
		return &c
	}
	switch format {
	case manifest.FormatYAML:
		var out []*yaml.Node
		for _, d := range docs {
			out = append(out, withMeta(d))
		}
		return emitYAMLDocs(out)
	case manifest.FormatJSON, manifest.FormatBinary:
		return emitJSON(withMeta(docs[0]))
	case manifest.FormatDotenv:
		return emitDotenv(docs[0], meta), nil
	case manifest.FormatINI:
		return emitINI(docs[0], meta)
	}
	return nil, fmt.Errorf("secretd cannot write sops files in %s format", format)
}

// emitINI writes sections through structured's INI writer (ini.v1's layout, as sops' INI store
// uses), meta flattened into a last "[sops]" section with newlines written as "\n". Comments
// are not kept: the INI reader does not keep them.
func emitINI(root, meta *yaml.Node) ([]byte, error) {
	sections := &structured.Node{Kind: structured.Map}
	for i := 0; i+1 < len(root.Content); i += 2 {
		section := &structured.Node{Kind: structured.Map}
		v := root.Content[i+1]
		if v.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("INI: %q is not a section", root.Content[i].Value)
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			section.Entries = append(section.Entries, structured.Entry{Key: v.Content[j].Value, Value: &structured.Node{Kind: structured.String, Text: v.Content[j+1].Value}})
		}
		sections.Entries = append(sections.Entries, structured.Entry{Key: root.Content[i].Value, Value: section})
	}
	if meta != nil {
		section := &structured.Node{Kind: structured.Map}
		flatten(meta, "", func(k, v string) {
			section.Entries = append(section.Entries, structured.Entry{Key: k, Value: &structured.Node{Kind: structured.String, Text: strings.ReplaceAll(v, "\n", `\n`)}})
		})
		sections.Entries = append(sections.Entries, structured.Entry{Key: metadataKey, Value: section})
	}
	doc, err := structured.NewDocument(manifest.FormatINI, sections)
	if err != nil {
		return nil, err
	}
	out, err := doc.Value("")
	if err != nil {
		return nil, err
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out, nil
}

func emitYAMLDocs(docs []*yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(yamlIndent)
	for _, d := range docs {
		if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{d}}); err != nil {
			return nil, fmt.Errorf("writing YAML: %w", err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("writing YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// emitJSON writes compact JSON and indents it with tabs, as sops' JSON store does.
func emitJSON(root *yaml.Node) ([]byte, error) {
	var compact bytes.Buffer
	if err := writeJSON(&compact, root); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact.Bytes(), "", "\t"); err != nil {
		return nil, fmt.Errorf("writing JSON: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func writeJSON(buf *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				buf.WriteByte(',')
			}
			k, _ := json.Marshal(n.Content[i].Value)
			buf.Write(k)
			buf.WriteByte(':')
			if err := writeJSON(buf, n.Content[i+1]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, item := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, item); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	}
	var v any
	switch n.ShortTag() {
	case "!!null":
		v = nil
	case "!!bool":
		v = n.Value == "true"
	case "!!int", "!!float":
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil {
			return errors.New("writing JSON: a number cannot be read")
		}
		v = f
	default:
		v = n.Value
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	buf.Write(b)
	return nil
}

// emitDotenv writes KEY=value lines, comments before their key, then meta flattened under
// "sops_" in sorted order.
func emitDotenv(root, meta *yaml.Node) []byte {
	var buf bytes.Buffer
	escape := func(s string) string { return strings.ReplaceAll(s, "\n", `\n`) }
	comments := func(c string) {
		if c != "" {
			buf.WriteString(c)
			buf.WriteByte('\n')
		}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		comments(k.HeadComment)
		fmt.Fprintf(&buf, "%s=%s\n", k.Value, escape(v.Value))
	}
	comments(root.FootComment)
	if meta != nil {
		var lines []string
		flatten(meta, metadataKey+"_", func(k, v string) { lines = append(lines, k+"="+escape(v)) })
		sort.Strings(lines)
		for _, l := range lines {
			buf.WriteString(l + "\n")
		}
	}
	return buf.Bytes()
}

// flatten names each scalar of n as sops' flattened metadata does.
func flatten(n *yaml.Node, prefix string, emit func(k, v string)) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := prefix + n.Content[i].Value
			if prefix != metadataKey+"_" && prefix != "" {
				p = prefix + flatMapSeparator + n.Content[i].Value
			}
			flatten(n.Content[i+1], p, emit)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			flatten(item, prefix+flatListSeparator+strconv.Itoa(i), emit)
		}
	default:
		emit(prefix, n.Value)
	}
}
