package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"unicode/utf8"
)

// oracleDecode is the encoding/json-based decoder that Decode replaced, kept as the reference
// Decode must agree with (FuzzDecode compares them): it parses data several times with
// encoding/json, whose behaviour defines the accepted language and the error reports.
func oracleDecode(data []byte) (*Manifest, error) {
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, oracleDescribeJSONError(data, "", err)
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
	top.KeepGenerations = DefaultKeepGenerations
	if err := oracleDecodeStrict(data, &top, oracleJSONFields(reflect.TypeOf(top))); err != nil {
		return nil, oracleDescribeJSONError(data, "", err)
	}
	m := top.Manifest
	var p Problems
	secretFields, templateFields := oracleJSONFields(reflect.TypeOf(Secret{})), oracleJSONFields(reflect.TypeOf(Template{}))
	for i, raw := range top.Secrets {
		var s Secret
		if err := oracleDecodeStrict(raw, &s, secretFields); err != nil {
			p = append(p, oracleDescribeJSONError(raw, fmt.Sprintf("secrets[%d]", i), err).Error())
		}
		m.Secrets = append(m.Secrets, s)
	}
	for i, raw := range top.Templates {
		var t Template
		if err := oracleDecodeStrict(raw, &t, templateFields); err != nil {
			p = append(p, oracleDescribeJSONError(raw, fmt.Sprintf("templates[%d]", i), err).Error())
		}
		m.Templates = append(m.Templates, t)
	}
	if len(p) > 0 {
		return nil, p
	}
	m.applyDefaults()
	if err := m.oracleValidate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// oracleDecodeStrict decodes one JSON object into v, refusing unknown fields, fields spelt in
// another case (encoding/json would accept them) and repeated fields (the last would win).
// data must already be known to be valid JSON.
func oracleDecodeStrict(data []byte, v any, fields map[string]bool) error {
	if err := oracleCheckKeys(data, fields); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// oracleDescribeJSONError turns encoding/json errors into messages with a location: a line and
// column for syntax, the field's path otherwise. prefix is the element the data was decoded as.
func oracleDescribeJSONError(data []byte, prefix string, err error) error {
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
		line, col := oraclePosition(data, syntax.Offset-1)
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

func oraclePosition(data []byte, offset int64) (line, col int) {
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

// oracleCheckKeys checks each key of the JSON object in data against fields, exactly and once.
// data is valid JSON (oracleDecode has checked the whole document), so a small scanner over the
// top-level keys suffices.
func oracleCheckKeys(data []byte, fields map[string]bool) error {
	i := oracleSkipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil // not an object: decoding reports it
	}
	seen := map[string]bool{}
	for i = oracleSkipSpace(data, i+1); i < len(data) && data[i] == '"'; {
		end := oracleSkipString(data, i)
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
		i = oracleSkipSpace(data, end)
		i = oracleSkipSpace(data, oracleSkipValue(data, oracleSkipSpace(data, i+1))) // past ':' and the value
		if i < len(data) && data[i] == ',' {
			i = oracleSkipSpace(data, i+1)
		}
	}
	return nil
}

func oracleSkipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// oracleSkipString returns the index just past the string that starts at data[i].
func oracleSkipString(data []byte, i int) int {
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

// oracleSkipValue returns the index just past the value that starts at data[i].
func oracleSkipValue(data []byte, i int) int {
	depth := 0
	for i < len(data) {
		switch c := data[i]; {
		case c == '"':
			i = oracleSkipString(data, i)
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

// oracleJSONFields lists the JSON names of a struct's fields, embedded structs' included.
func oracleJSONFields(t reflect.Type) map[string]bool {
	fields := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case f.Anonymous && name == "":
			for k := range oracleJSONFields(f.Type) {
				fields[k] = true
			}
		case name != "" && name != "-":
			fields[name] = true
		}
	}
	return fields
}

// oracleSegmentPattern matches text without "/" or control characters (C0, DEL, C1).
var oracleSegmentPattern = regexp.MustCompile(`^[^/\x00-\x1f\x7f\x{80}-\x{9f}]+$`)

// oracleCheckName is CheckName as it was, with a regular expression.
func oracleCheckName(name string) error {
	if name == "" {
		return fmt.Errorf("name is empty")
	}
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("%q is absolute; names are relative to secretsDir", name)
	}
	for _, seg := range strings.Split(name, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%q has an empty path segment", name)
		case seg == "." || seg == "..":
			return fmt.Errorf("%q has a %q segment", name, seg)
		case !utf8.ValidString(seg) || !oracleSegmentPattern.MatchString(seg):
			return fmt.Errorf("%q: segment %q must be UTF-8 text without control characters", name, seg)
		}
	}
	return nil
}

// oracleValidate is Validate as it was before it was made faster, the reference for it.
func (m *Manifest) oracleValidate() error {
	var p Problems
	checkAbsDir := func(loc, dir string) {
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/" {
			p.add(loc, "%q must be a clean absolute path other than /", dir)
		}
	}
	checkAbsDir("secretsDir", m.SecretsDir)
	checkAbsDir("mountPoint", m.MountPoint)
	if oracleWithin(m.SecretsDir, m.MountPoint) || oracleWithin(m.MountPoint, m.SecretsDir) {
		p.add("secretsDir", "%q and mountPoint %q must not contain one another", m.SecretsDir, m.MountPoint)
	}
	if m.GnuPGHome != "" && !filepath.IsAbs(m.GnuPGHome) {
		p.add("gnupgHome", "%q must be an absolute path", m.GnuPGHome)
	}
	if m.KeepGenerations < 0 {
		p.add("keepGenerations", "%d must be at least 0 (0 keeps every generation)", m.KeepGenerations)
	}
	if len(m.Identities) == 0 {
		p.add("identities", "no identity paths: nothing could decrypt the secrets")
	}
	for i, id := range m.Identities {
		if !filepath.IsAbs(id) {
			p.add(fmt.Sprintf("identities[%d]", i), "%q must be an absolute path", id)
		}
	}

	outputs := map[string]string{}   // output name -> location
	linkPaths := map[string]string{} // path symlink -> location
	secretNames := map[string]bool{}
	for i := range m.Secrets {
		s := &m.Secrets[i]
		loc := fmt.Sprintf("secrets[%d]", i)
		if s.Name != "" {
			loc = fmt.Sprintf("secrets[%d] (%s)", i, s.Name)
		}
		if err := oracleCheckName(s.Name); err != nil {
			p.add(loc+".name", "%v", err)
		} else if first, _, _ := strings.Cut(s.Name, "/"); first == RenderedDir {
			p.add(loc+".name", "%q is inside %q, which holds rendered templates", s.Name, RenderedDir+"/")
		} else {
			if prev, dup := outputs[s.Name]; dup {
				p.add(loc+".name", "%q is already used by %s", s.Name, prev)
			}
			outputs[s.Name] = loc
			secretNames[s.Name] = true
		}
		if s.File == "" {
			p.add(loc+".file", "missing: which encrypted file holds this secret?")
		} else if !filepath.IsAbs(s.File) {
			p.add(loc+".file", "%q must be an absolute path", s.File)
		}
		if !contains(Formats, s.Format) {
			p.add(loc+".format", "%q is not one of %s", s.Format, strings.Join(Formats, ", "))
		} else if s.Format == FormatBinary && s.Key != "" {
			p.add(loc+".key", "%q is set, but a binary secret is the whole plaintext: set format to yaml, json, dotenv or ini", s.Key)
		}
		m.oracleCheckOutput(&p, loc, &s.Ownership, s.Path, &s.Consumers, linkPaths)
	}
	for i := range m.Templates {
		t := &m.Templates[i]
		loc := fmt.Sprintf("templates[%d]", i)
		if t.Name != "" {
			loc = fmt.Sprintf("templates[%d] (%s)", i, t.Name)
		}
		if err := oracleCheckName(t.Name); err != nil {
			p.add(loc+".name", "%v", err)
		} else {
			out := RenderedDir + "/" + t.Name
			if prev, dup := outputs[out]; dup {
				p.add(loc+".name", "%q is already used by %s", t.Name, prev)
			}
			outputs[out] = loc
		}
		for _, tok := range PlaceholderPattern.FindAllString(t.Content, -1) {
			if _, ok := m.PlaceholderSecret(tok); !ok {
				p.add(loc+".content", "%s is not a declared placeholder", tok)
			}
		}
		m.oracleCheckOutput(&p, loc, &t.Ownership, t.Path, &t.Consumers, linkPaths)
	}
	tokens := map[string]string{}
	for _, name := range sortedKeys(m.Placeholders) {
		tok := m.Placeholders[name]
		loc := fmt.Sprintf("placeholders[%q]", name)
		if other, dup := tokens[tok]; dup {
			p.add(loc, "%q already stands for secret %q", tok, other)
		}
		tokens[tok] = name
		if !secretNames[name] {
			p.add(loc, "no secret is named %q", name)
		}
		if !PlaceholderPattern.MatchString(tok) || PlaceholderPattern.FindString(tok) != tok {
			p.add(loc, "%q is not of the form <SECRETD:…>", tok)
		}
	}
	oracleCheckNesting(&p, outputs)
	if len(p) > 0 {
		return p
	}
	return nil
}

func (m *Manifest) oracleCheckOutput(p *Problems, loc string, o *Ownership, path string, c *Consumers, linkPaths map[string]string) {
	if o.Owner != "" && o.UID != nil {
		p.add(loc+".uid", "set owner or uid, not both")
	}
	if o.Group != "" && o.GID != nil {
		p.add(loc+".gid", "set group or gid, not both")
	}
	// 2^32-1 is (uid_t)-1, which chown reads as "leave unchanged".
	checkID := func(field string, id *int) {
		switch {
		case id == nil:
		case *id < 0:
			p.add(loc+"."+field, "%d is negative", *id)
		case *id >= 1<<32-1:
			p.add(loc+"."+field, "%d is out of range (0 to 4294967294)", *id)
		}
	}
	checkID("uid", o.UID)
	checkID("gid", o.GID)
	if _, err := ParseMode(o.Mode); err != nil {
		p.add(loc+".mode", "%v", err)
	}
	if path != "" {
		switch {
		case !filepath.IsAbs(path) || filepath.Clean(path) != path:
			p.add(loc+".path", "%q must be a clean absolute path", path)
		case path == m.MountPoint || oracleWithin(path, m.MountPoint):
			p.add(loc+".path", "%q is inside mountPoint %q", path, m.MountPoint)
		case path == m.SecretsDir || oracleWithin(path, m.SecretsDir):
			p.add(loc+".path", "%q is inside secretsDir %q, which secretd replaces whole", path, m.SecretsDir)
		default:
			if prev, dup := linkPaths[path]; dup {
				p.add(loc+".path", "%q is already used by %s", path, prev)
			}
			linkPaths[path] = loc
		}
	}
	for j, u := range c.RestartUnits {
		if err := oracleCheckUnit(u); err != nil {
			p.add(fmt.Sprintf("%s.restartUnits[%d]", loc, j), "%v", err)
		}
	}
	for j, u := range c.ReloadUnits {
		if err := oracleCheckUnit(u); err != nil {
			p.add(fmt.Sprintf("%s.reloadUnits[%d]", loc, j), "%v", err)
		}
	}
}

var oracleUnitPattern = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|timer|path|mount|automount|swap|slice|scope|device)$`)

func oracleCheckUnit(u string) error {
	if !oracleUnitPattern.MatchString(u) {
		return fmt.Errorf("%q is not a systemd unit name (such as foo.service)", u)
	}
	return nil
}

// oracleCheckNesting reports an output name that is a directory of another ("a" and "a/b").
func oracleCheckNesting(p *Problems, outputs map[string]string) {
	for _, name := range sortedKeys(outputs) {
		for dir := filepath.Dir(name); dir != "."; dir = filepath.Dir(dir) {
			if loc, clash := outputs[dir]; clash {
				p.add(outputs[name]+".name", "%q needs %q to be a directory, but %s is a file of that name", name, dir, loc)
			}
		}
	}
}

func oracleWithin(path, dir string) bool {
	return strings.HasPrefix(path, dir+"/")
}
