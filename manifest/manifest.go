// Package manifest defines the secretd manifest (version 1), the JSON contract between the
// NixOS module and the daemon, and decodes and validates it strictly.
package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
)

// Version is the only manifest version this build understands.
const Version = 1

// Defaults applied to optional fields.
const (
	DefaultOwner           = "root"
	DefaultGroup           = "root"
	DefaultMode            = "0400"
	DefaultFormat          = FormatBinary
	DefaultKeepGenerations = 1
	DefaultSecretsDir      = "/run/secrets"
	DefaultMountPoint      = "/run/secrets.d"
)

// Formats of a secret's plaintext, selecting how Key is looked up.
const (
	FormatBinary = "binary"
	FormatYAML   = "yaml"
	FormatJSON   = "json"
	FormatDotenv = "dotenv"
	FormatINI    = "ini"
)

// Formats lists every accepted format.
var Formats = []string{FormatBinary, FormatYAML, FormatJSON, FormatDotenv, FormatINI}

// Manifest is a whole activation: where secrets go, which identities decrypt them, and each
// secret and template.
type Manifest struct {
	Version         int               `json:"version"`
	SecretsDir      string            `json:"secretsDir"`
	MountPoint      string            `json:"mountPoint"`
	KeepGenerations int               `json:"keepGenerations"`
	Identities      []string          `json:"identities"`
	Secrets         []Secret          `json:"secrets"`
	Placeholders    map[string]string `json:"placeholders,omitempty"`
	Templates       []Template        `json:"templates"`
}

// Ownership is who owns an output file and with which permission bits. Owner and Group are
// names; UID and GID, when set, are numbers used instead of a name lookup.
type Ownership struct {
	Owner string `json:"owner,omitempty"`
	Group string `json:"group,omitempty"`
	UID   *int   `json:"uid,omitempty"`
	GID   *int   `json:"gid,omitempty"`
	Mode  string `json:"mode,omitempty"`
}

// Consumers are the systemd units told about a change of an output file.
type Consumers struct {
	RestartUnits []string `json:"restartUnits,omitempty"`
	ReloadUnits  []string `json:"reloadUnits,omitempty"`
}

// Secret is one output file decrypted from an encrypted file.
type Secret struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Format string `json:"format,omitempty"`
	Key    string `json:"key,omitempty"`
	Ownership
	// Path is an optional extra symlink pointing at <secretsDir>/<name>.
	Path string `json:"path,omitempty"`
	Consumers
}

// Template is one output file rendered from text whose placeholders stand for secrets.
type Template struct {
	Name    string `json:"name"`
	Content string `json:"content"`
	Ownership
	Path string `json:"path,omitempty"`
	Consumers
}

// Load reads and decodes the manifest at path. See Decode.
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	m, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}

// Decode parses a manifest strictly (unknown fields, trailing data and a missing or unknown
// version are errors), fills in defaults and validates it. Every problem found is reported in
// one error, each naming its JSON location.
func Decode(data []byte) (*Manifest, error) {
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, describeJSONError(data, "", err)
	}
	if probe.Version == nil {
		return nil, errors.New("version: missing (this secretd reads version 1)")
	}
	if *probe.Version != Version {
		return nil, fmt.Errorf("version: %d is not supported (this secretd reads version %d)", *probe.Version, Version)
	}
	// Secrets and templates are decoded one by one so that an error can name its element.
	var top struct {
		Manifest
		Secrets   []json.RawMessage `json:"secrets"`
		Templates []json.RawMessage `json:"templates"`
	}
	if err := decodeStrict(data, &top, jsonFields(reflect.TypeOf(top))); err != nil {
		return nil, describeJSONError(data, "", err)
	}
	m := top.Manifest
	var p Problems
	secretFields, templateFields := jsonFields(reflect.TypeOf(Secret{})), jsonFields(reflect.TypeOf(Template{}))
	for i, raw := range top.Secrets {
		var s Secret
		if err := decodeStrict(raw, &s, secretFields); err != nil {
			p = append(p, describeJSONError(raw, fmt.Sprintf("secrets[%d]", i), err).Error())
		}
		m.Secrets = append(m.Secrets, s)
	}
	for i, raw := range top.Templates {
		var t Template
		if err := decodeStrict(raw, &t, templateFields); err != nil {
			p = append(p, describeJSONError(raw, fmt.Sprintf("templates[%d]", i), err).Error())
		}
		m.Templates = append(m.Templates, t)
	}
	if len(p) > 0 {
		return nil, p
	}
	m.applyDefaults()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// decodeStrict decodes one JSON object into v, refusing unknown fields, fields spelt in
// another case (encoding/json would accept them) and repeated fields (the last would win).
// data must already be known to be valid JSON.
func decodeStrict(data []byte, v any, fields map[string]bool) error {
	if err := checkKeys(data, fields); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// describeJSONError turns encoding/json errors into messages with a location: a line and column
// for syntax, the field's path otherwise. prefix is the element the data was decoded as.
func describeJSONError(data []byte, prefix string, err error) error {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	location := func(field string) string {
		// Embedded structs show up in the path; the JSON has no such level.
		field = strings.NewReplacer("Ownership.", "", "Consumers.", "", "Manifest.", "").Replace(field)
		switch {
		case prefix == "" && field == "":
			return "(top level)"
		case prefix == "":
			return field
		case field == "":
			return prefix
		}
		return prefix + "." + field
	}
	switch {
	case errors.As(err, &syntax):
		line, col := position(data, syntax.Offset-1)
		return fmt.Errorf("malformed JSON at line %d, column %d: %v", line, col, syntax)
	case errors.As(err, &typeErr):
		return fmt.Errorf("%s: expected %s, got JSON %s", location(typeErr.Field), typeErr.Type, typeErr.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("malformed JSON: unexpected end of input")
	}
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("%s: unknown field %s", location(""), field)
	}
	if prefix != "" {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	return fmt.Errorf("malformed manifest: %w", err)
}

func position(data []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < offset && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func (m *Manifest) applyDefaults() {
	if m.SecretsDir == "" {
		m.SecretsDir = DefaultSecretsDir
	}
	if m.MountPoint == "" {
		m.MountPoint = DefaultMountPoint
	}
	if m.KeepGenerations == 0 {
		m.KeepGenerations = DefaultKeepGenerations
	}
	for i := range m.Secrets {
		s := &m.Secrets[i]
		s.Ownership.applyDefaults()
		if s.Format == "" {
			s.Format = DefaultFormat
		}
	}
	for i := range m.Templates {
		m.Templates[i].Ownership.applyDefaults()
	}
}

func (o *Ownership) applyDefaults() {
	if o.Owner == "" && o.UID == nil {
		o.Owner = DefaultOwner
	}
	if o.Group == "" && o.GID == nil {
		o.Group = DefaultGroup
	}
	if o.Mode == "" {
		o.Mode = DefaultMode
	}
}

// checkKeys checks each key of the JSON object in data against fields, exactly and once. data
// is valid JSON (Decode has checked the whole document), so a small scanner over the top-level
// keys suffices; it is several times faster than encoding/json's tokenizer, which matters for
// manifests of thousands of secrets.
func checkKeys(data []byte, fields map[string]bool) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil // not an object: decoding reports it
	}
	seen := map[string]bool{}
	for i = skipSpace(data, i+1); i < len(data) && data[i] == '"'; {
		end := skipString(data, i)
		key := string(data[i+1 : end-1])
		if strings.IndexByte(key, '\\') >= 0 {
			if err := json.Unmarshal(data[i:end], &key); err != nil {
				return err
			}
		}
		if !fields[key] {
			return fmt.Errorf("json: unknown field %q", key)
		}
		if seen[key] {
			return fmt.Errorf("field %q appears twice", key)
		}
		seen[key] = true
		i = skipSpace(data, end)
		i = skipSpace(data, skipValue(data, skipSpace(data, i+1))) // past ':' and the value
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at data[i].
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(data)
}

// skipValue returns the index just past the value that starts at data[i].
func skipValue(data []byte, i int) int {
	depth := 0
	for i < len(data) {
		switch c := data[i]; {
		case c == '"':
			i = skipString(data, i)
		case c == '{' || c == '[':
			depth++
			i++
		case c == '}' || c == ']':
			if depth == 0 {
				return i
			}
			depth--
			i++
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return i
		default:
			i++
		}
		if depth == 0 && i > 0 && (data[i-1] == '"' || data[i-1] == '}' || data[i-1] == ']') {
			return i
		}
	}
	return i
}

// jsonFields lists the JSON names of a struct's fields, embedded structs' included.
func jsonFields(t reflect.Type) map[string]bool {
	fields := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case f.Anonymous && name == "":
			for k := range jsonFields(f.Type) {
				fields[k] = true
			}
		case name != "" && name != "-":
			fields[name] = true
		}
	}
	return fields
}
