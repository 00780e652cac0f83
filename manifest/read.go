package manifest

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// A manifest is read with github.com/go-json-experiment/json, which is strict by default:
// member names match exactly, a repeated name, invalid UTF-8 and trailing data are errors, and
// with RejectUnknownMembers so is a member the manifest does not define. Its errors locate a
// problem by a JSON Pointer ("/secrets/0/mode"), which is spelt here as the rest of secretd
// spells locations ("secrets[0] (name).mode").

// decode reads a manifest without applying defaults (but keepGenerations') or validating it. The version is checked
// first: a manifest of another version is reported as such, not by the first field this build
// does not know.
func decode(data []byte) (*Manifest, error) {
	// An absent keepGenerations means the default; an explicit 0 keeps every generation.
	m := Manifest{KeepGenerations: DefaultKeepGenerations}
	err := json.Unmarshal(data, &m, json.RejectUnknownMembers(true), json.WithUnmarshalers(nullKeepsDefault))
	if err != nil || m.Version != Version {
		if verr := checkVersion(data); verr != nil {
			return nil, verr
		}
	}
	if err != nil {
		return nil, describeJSONError(data, &m, err)
	}
	return &m, nil
}

// nullKeepsDefault reads a null keepGenerations as no value, as an absent one, rather than as 0,
// which keeps every generation.
var nullKeepsDefault = json.UnmarshalFromFunc(func(dec *jsontext.Decoder, n *int) error {
	if dec.StackPointer() != "/keepGenerations" || dec.PeekKind() != 'n' {
		return errors.ErrUnsupported
	}
	_, err := dec.ReadToken()
	return err
})

// checkVersion reports a missing or unsupported version, reading data leniently; it returns
// nil when the version is right or cannot be read (the strict decoding then says why).
func checkVersion(data []byte) error {
	var probe struct {
		Version *int `json:"version"`
	}
	switch err := json.Unmarshal(data, &probe); {
	case err != nil:
		return nil
	case probe.Version == nil:
		return fmt.Errorf("version: missing (this secretd reads version %d)", Version)
	case *probe.Version != Version:
		return fmt.Errorf("version: %d is not supported (this secretd reads version %d)", *probe.Version, Version)
	}
	return nil
}

// describeJSONError turns an error of the JSON decoder into one naming its location. m is what
// was decoded before the error, which gives the names of the secrets and templates read.
// The decoder's own texts are not used: they vary between runs by design.
func describeJSONError(data []byte, m *Manifest, err error) error {
	var syntax *jsontext.SyntacticError
	var semantic *json.SemanticError
	switch {
	case errors.As(err, &syntax) && errors.Is(syntax.Err, jsontext.ErrDuplicateName):
		return fmt.Errorf("%s: field %s appears twice", m.location(syntax.JSONPointer.Parent()), quote(syntax.JSONPointer.LastToken()))
	case errors.As(err, &syntax):
		line, col := position(data, syntax.ByteOffset)
		what := syntax.Err
		if errors.Is(what, io.ErrUnexpectedEOF) {
			what = errors.New("unexpected end of JSON input")
		}
		return fmt.Errorf("malformed JSON at line %d, column %d: %v", line, col, what)
	case errors.As(err, &semantic) && errors.Is(semantic.Err, json.ErrUnknownName):
		return fmt.Errorf("%s: unknown field %s", m.location(semantic.JSONPointer.Parent()), quote(semantic.JSONPointer.LastToken()))
	case errors.As(err, &semantic):
		return fmt.Errorf("%s: %s", m.location(semantic.JSONPointer), mismatch(semantic))
	}
	return fmt.Errorf("malformed manifest: %w", err)
}

// mismatch says what was wrong with a value of the wrong type or out of range.
func mismatch(e *json.SemanticError) string {
	want := "a value of another type"
	if t := e.GoType; t != nil {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.String:
			want = "a string"
		case reflect.Int:
			want = "an integer"
		case reflect.Bool:
			want = "a boolean"
		case reflect.Slice:
			want = "an array"
		case reflect.Struct, reflect.Map:
			want = "an object"
		}
	}
	got := map[jsontext.Kind]string{'n': "null", 't': "true", 'f': "false", '"': "a string", '0': "a number", '{': "an object", '[': "an array"}[e.JSONKind]
	if e.JSONKind == '0' && len(e.JSONValue) > 0 {
		number := string(e.JSONValue)
		if len(number) > 40 {
			number = number[:40] + "…"
		}
		if errors.Is(e.Err, strconv.ErrRange) {
			return number + " is out of range"
		}
		got = number
	}
	if got == "" {
		return "expected " + want
	}
	return "expected " + want + ", got " + got
}

// location spells a JSON Pointer into m the way validation does: secrets[0] (name).mode,
// placeholders["name"], (top level) for the whole document.
func (m *Manifest) location(ptr jsontext.Pointer) string {
	var b strings.Builder
	var parent string
	for tok := range ptr.Tokens() {
		i, err := strconv.Atoi(tok)
		switch {
		case parent == "placeholders":
			b.WriteString("[" + strconv.Quote(tok) + "]")
		case err == nil && i >= 0 && (parent == "secrets" || parent == "templates"):
			b.WriteString(strings.TrimPrefix(place{parent, i, m.elementName(parent, i)}.String(), parent))
		case err == nil && i >= 0:
			b.WriteString("[" + tok + "]")
		case b.Len() == 0:
			b.WriteString(quoteIfUnprintable(tok))
		default:
			b.WriteString("." + quoteIfUnprintable(tok))
		}
		parent = tok
	}
	if b.Len() == 0 {
		return "(top level)"
	}
	return b.String()
}

// elementName is the name of a secret or template decoded so far, or "".
func (m *Manifest) elementName(list string, i int) string {
	switch {
	case list == "secrets" && i < len(m.Secrets):
		return m.Secrets[i].Name
	case list == "templates" && i < len(m.Templates):
		return m.Templates[i].Name
	}
	return ""
}

// quote quotes a name taken from the manifest, cut short if it is long.
func quote(s string) string {
	if len(s) > 100 {
		return strconv.Quote(s[:100]) + "…"
	}
	return strconv.Quote(s)
}

// quoteIfUnprintable leaves a name as it is unless it holds a character that would garble a
// message (a newline, a control character), or is long.
func quoteIfUnprintable(s string) string {
	if len(s) > 100 {
		return quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return quote(s)
		}
	}
	return s
}
