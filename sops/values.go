package sops

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/structured"
)

// Values come out rendered as `sops --decrypt` prints them: sops turns every value into a Go
// value (int, float64, bool, time.Time, string) and the output store writes that value back,
// so a float reads "2.5" in YAML whatever its original spelling, and a timestamp is written in
// full. The MAC, in turn, covers sops' own spelling of each value (booleans as True/False,
// floats in decimal notation).

// decryptedValue converts a decrypted value of sops type typ into its node (rendered for the
// plaintext format) and the bytes sops feeds the MAC for it.
func decryptedValue(typ string, plain []byte, format string) (*structured.Node, []byte, error) {
	text := string(plain)
	switch typ {
	case "str", "bytes":
		return &structured.Node{Kind: structured.String, Text: text}, []byte(text), nil
	case "int":
		i, err := strconv.Atoi(text)
		if err != nil {
			return nil, nil, errors.New("decrypted value of type int is not an integer")
		}
		s := strconv.Itoa(i)
		return &structured.Node{Kind: structured.Int, Text: s}, []byte(s), nil
	case "float":
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, nil, errors.New("decrypted value of type float is not a number")
		}
		return floatNode(f, format), []byte(strconv.FormatFloat(f, 'f', -1, 64)), nil
	case "bool":
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, nil, errors.New("decrypted value of type bool is not a boolean")
		}
		return boolNode(b), boolBytes(b), nil
	case "time":
		var t time.Time
		if err := t.UnmarshalText(plain); err != nil {
			return nil, nil, errors.New("decrypted value of type time is not a timestamp")
		}
		b, err := t.MarshalText()
		if err != nil {
			return nil, nil, errors.New("decrypted timestamp cannot be re-encoded")
		}
		return timeNode(t, format), b, nil
	}
	return nil, nil, fmt.Errorf("unsupported sops value type %q", typ)
}

// cleartextValue is decryptedValue for a value sops left unencrypted: the value as the file's
// store decoded it (YAML through yaml.v3, JSON numbers as float64, else a string).
func cleartextValue(n *structured.Node, sourceFormat, format string) (*structured.Node, []byte, error) {
	switch sourceFormat {
	case manifest.FormatYAML:
		var v any
		node := &yaml.Node{Kind: yaml.ScalarNode, Tag: n.Tag, Value: n.Text}
		if err := node.Decode(&v); err != nil {
			return nil, nil, errors.New("cleartext value cannot be decoded")
		}
		switch v := v.(type) {
		case string:
			return &structured.Node{Kind: structured.String, Text: v}, []byte(v), nil
		case int:
			s := strconv.Itoa(v)
			return &structured.Node{Kind: structured.Int, Text: s}, []byte(s), nil
		case float64:
			return floatNode(v, format), []byte(strconv.FormatFloat(v, 'f', -1, 64)), nil
		case bool:
			return boolNode(v), boolBytes(v), nil
		case time.Time:
			b, err := v.MarshalText()
			if err != nil {
				return nil, nil, errors.New("cleartext timestamp cannot be encoded")
			}
			return timeNode(v, format), b, nil
		}
		return nil, nil, fmt.Errorf("sops cannot handle a cleartext value of YAML type %s", n.Tag)
	case manifest.FormatJSON:
		switch n.Kind {
		case structured.Int, structured.Float:
			// sops' JSON store reads every number as a float64 (so -0 stays -0 and 2^53+1
			// rounds), and the output store writes it back as one.
			f, err := strconv.ParseFloat(n.Text, 64)
			if err != nil {
				return nil, nil, errors.New("cleartext number is out of range")
			}
			return floatNode(f, format), []byte(strconv.FormatFloat(f, 'f', -1, 64)), nil
		case structured.Bool:
			b := n.Text == "true"
			return boolNode(b), boolBytes(b), nil
		}
	}
	return &structured.Node{Kind: structured.String, Text: n.Text}, []byte(n.Text), nil
}

// boolBytes is how sops spells booleans in the MAC (and in encrypted values).
func boolBytes(b bool) []byte {
	if b {
		return []byte("True")
	}
	return []byte("False")
}

func boolNode(b bool) *structured.Node {
	return &structured.Node{Kind: structured.Bool, Text: strconv.FormatBool(b)}
}

// floatNode renders f as the output store would: yaml.v3's, encoding/json's, or sops'
// ValToString's spelling.
func floatNode(f float64, format string) *structured.Node {
	var text string
	switch format {
	case manifest.FormatYAML:
		text = strconv.FormatFloat(f, 'g', -1, 64)
		switch text {
		case "+Inf":
			text = ".inf"
		case "-Inf":
			text = "-.inf"
		case "NaN":
			text = ".nan"
		}
	case manifest.FormatJSON, manifest.FormatBinary:
		b, err := json.Marshal(f)
		if err != nil {
			text = strconv.FormatFloat(f, 'g', -1, 64)
		} else {
			text = string(b)
		}
	default:
		text = strconv.FormatFloat(f, 'G', -1, 64)
		if !strings.ContainsAny(text, ".E") {
			text = strconv.FormatFloat(f, 'f', 1, 64)
		}
	}
	return &structured.Node{Kind: structured.Float, Text: text}
}

func timeNode(t time.Time, format string) *structured.Node {
	if format == manifest.FormatDotenv || format == manifest.FormatINI {
		return &structured.Node{Kind: structured.String, Text: t.Format(time.RFC3339)}
	}
	return &structured.Node{Kind: structured.String, Tag: structured.TagTimestamp, Text: t.Format(time.RFC3339Nano)}
}
