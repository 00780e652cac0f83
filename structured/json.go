package structured

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxJSONDepth bounds nesting so hostile input cannot exhaust the stack.
const maxJSONDepth = 1000

// jsonIndent matches what sops writes.
const jsonIndent = "\t"

func parseJSON(data []byte) (*Node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	// Numbers keep their literal text: a float64 round trip would change large integers and
	// the spelling of decimals.
	dec.UseNumber()
	root, err := readJSONValue(dec, data, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return root, nil
}

// jsonError describes a decoding error by position only: encoding/json messages quote pieces
// of the input, which may be secret.
func jsonError(dec *json.Decoder, data []byte, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("malformed JSON: unexpected end of input")
	}
	offset := dec.InputOffset()
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		offset = syntax.Offset
	}
	return fmt.Errorf("malformed JSON at %s", jsonPosition(data, offset))
}

// jsonPosition gives the line and column of byte offset in data.
func jsonPosition(data []byte, offset int64) string {
	line, col := 1, 1
	for i := int64(0); i < offset && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("line %d, column %d", line, col)
}

// readJSONToken reads the next token of dec, describing errors without quoting the input.
func readJSONToken(dec *json.Decoder, data []byte) (json.Token, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, jsonError(dec, data, err)
	}
	return t, nil
}

func readJSONValue(dec *json.Decoder, data []byte, depth int) (*Node, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("JSON nested more than %d levels deep", maxJSONDepth)
	}
	t, err := readJSONToken(dec, data)
	if err != nil {
		return nil, err
	}
	switch v := t.(type) {
	case json.Delim:
		switch v {
		case '{':
			m := &Node{Kind: Map}
			seen := map[string]bool{}
			for dec.More() {
				kt, err := readJSONToken(dec, data)
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, jsonError(dec, data, errors.New("object key is not a string"))
				}
				if seen[key] {
					return nil, fmt.Errorf("duplicate key at %s", jsonPosition(data, dec.InputOffset()))
				}
				seen[key] = true
				child, err := readJSONValue(dec, data, depth+1)
				if err != nil {
					return nil, err
				}
				m.Entries = append(m.Entries, Entry{Key: key, Value: child})
			}
			if _, err := readJSONToken(dec, data); err != nil {
				return nil, err
			}
			return m, nil
		case '[':
			l := &Node{Kind: List, Items: []*Node{}}
			for dec.More() {
				child, err := readJSONValue(dec, data, depth+1)
				if err != nil {
					return nil, err
				}
				l.Items = append(l.Items, child)
			}
			if _, err := readJSONToken(dec, data); err != nil {
				return nil, err
			}
			return l, nil
		}
		return nil, jsonError(dec, data, errors.New("unexpected delimiter"))
	case string:
		return &Node{Kind: String, Text: v}, nil
	case json.Number:
		return JSONNumber(string(v)), nil
	case bool:
		if v {
			return &Node{Kind: Bool, Text: "true"}, nil
		}
		return &Node{Kind: Bool, Text: "false"}, nil
	case nil:
		return &Node{Kind: Null, Text: "null"}, nil
	}
	return nil, jsonError(dec, data, errors.New("unexpected token"))
}

// JSONNumber returns the node of a JSON number literal: Int unless it has a fraction or
// exponent.
func JSONNumber(literal string) *Node {
	if strings.ContainsAny(literal, ".eE") {
		return &Node{Kind: Float, Text: literal}
	}
	return &Node{Kind: Int, Text: literal}
}

// emitJSON writes n the way sops writes JSON: keys in order, tab-indented.
func emitJSON(n *Node) ([]byte, error) {
	var compact bytes.Buffer
	if err := writeJSON(&compact, n); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact.Bytes(), "", jsonIndent); err != nil {
		return nil, errors.New("writing JSON: internal error while indenting")
	}
	return out.Bytes(), nil
}

func writeJSON(buf *bytes.Buffer, n *Node) error {
	switch n.Kind {
	case Map:
		buf.WriteByte('{')
		for i, e := range n.Entries {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(buf, e.Key)
			buf.WriteString(": ")
			if err := writeJSON(buf, e.Value); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case List:
		buf.WriteByte('[')
		for i, item := range n.Items {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, item); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case Int, Float:
		if isJSONNumber(n.Text) {
			buf.WriteString(n.Text)
		} else {
			writeJSONString(buf, n.Text)
		}
	case Bool:
		if n.Text == "true" || n.Text == "false" {
			buf.WriteString(n.Text)
		} else {
			writeJSONString(buf, n.Text)
		}
	case Null:
		buf.WriteString("null")
	default:
		writeJSONString(buf, n.Text)
	}
	return nil
}

func writeJSONString(buf *bytes.Buffer, s string) {
	// json.Marshal of a string cannot fail.
	b, _ := json.Marshal(s)
	buf.Write(b)
}

// isJSONNumber reports whether s is a JSON number literal.
func isJSONNumber(s string) bool {
	if s == "" {
		return false
	}
	var n json.Number
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return false
	}
	_, err := dec.Token()
	return errors.Is(err, io.EOF) && string(n) == s
}
