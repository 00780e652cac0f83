package manifest

import (
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Manifests were first read with encoding/json (v1), in several passes; its syntax, its
// leniencies (null accepted for any field, "version" matched in any case when the version is
// checked, invalid UTF-8 turned into U+FFFD) and its error texts are what the NixOS module, the
// activation and users rely on. Reading a manifest that way took a large part of activation
// time, so this decoder reads the same language in one pass, filling the Manifest directly, and
// reports the same errors in the same order of precedence the passes gave them:
//
//  1. malformed JSON anywhere (encoding/json checks the whole document first);
//  2. the version: a top level that is not an object, a "version" (matched in any case, the
//     last one winning) that is not an integer, missing, or not Version;
//  3. the first unknown, case-variant or repeated top-level key, else the first wrongly typed
//     top-level value;
//  4. for each secret, then each template: its first unknown or repeated key, else its first
//     wrongly typed value, all listed together.

// maxDepth is encoding/json's limit on the nesting of arrays and objects.
const maxDepth = 10000

// probeType is how encoding/json named the type the version was first decoded into.
const probeType = `struct { Version *int "json:\"version\"" }`

// syntaxError is a malformed document; offset counts the bytes read when it was found, as in
// encoding/json's SyntaxError.
type syntaxError struct {
	msg    string
	offset int
}

// mismatch is a JSON value of the wrong type for its field, in encoding/json's words.
type mismatch struct {
	field, typ, value string
}

func (t *mismatch) set(field, typ, value string) {
	if t.typ == "" {
		*t = mismatch{field, typ, value}
	}
}

// element collects what is wrong with one secret or template.
type element struct {
	keyErr string
	typ    mismatch
}

func (e *element) failed() bool { return e.keyErr != "" || e.typ.typ != "" }

// problem reports what is wrong with element i of list.
func (e *element) problem(list string, i int) string {
	prefix := list + "[" + strconv.Itoa(i) + "]"
	switch {
	case e.keyErr != "":
		return prefix + ": " + e.keyErr
	case e.typ.field == "":
		return prefix + ": expected " + e.typ.typ + ", got JSON " + e.typ.value
	}
	return prefix + "." + e.typ.field + ": expected " + e.typ.typ + ", got JSON " + e.typ.value
}

type decoder struct {
	data []byte
	// src is data as a string; values without escapes are substrings of it, which spares an
	// allocation per value.
	src string
	i   int

	topKind     string // the JSON kind of a top-level value that is not an object
	versionErr  mismatch
	version     int
	haveVersion bool
	keyErr      string // the first unknown or repeated top-level key
	typ         mismatch
	problems    Problems  // the secrets'
	templProbs  Problems  // the templates', listed after the secrets'
	elemTyp     mismatch  // the first wrongly typed value of the element being read
	cur         *mismatch // where a wrongly typed value is recorded: &d.typ or &d.elemTyp

	m Manifest
}

// decode reads a manifest without applying defaults (but keepGenerations') or validating it.
func decode(data []byte) (*Manifest, error) {
	// An absent keepGenerations means the default; an explicit 0 keeps every generation.
	d := &decoder{data: data, src: string(data), m: Manifest{KeepGenerations: DefaultKeepGenerations}}
	d.cur = &d.typ
	if serr := d.document(); serr != nil {
		line, col := position(data, int64(serr.offset-1))
		return nil, fmt.Errorf("malformed JSON at line %d, column %d: %s", line, col, serr.msg)
	}
	switch {
	case d.topKind == "null":
		return nil, errors.New("version: missing (this secretd reads version 1)")
	case d.topKind != "":
		return nil, errors.New("(top level): expected " + probeType + ", got JSON " + d.topKind)
	case d.versionErr.typ != "":
		return nil, errors.New("version: expected int, got JSON " + d.versionErr.value)
	case !d.haveVersion:
		return nil, errors.New("version: missing (this secretd reads version 1)")
	case d.version != Version:
		return nil, fmt.Errorf("version: %d is not supported (this secretd reads version %d)", d.version, Version)
	case d.keyErr != "":
		return nil, errors.New(d.keyErr)
	case d.typ.typ != "":
		return nil, errors.New(d.typ.field + ": expected " + d.typ.typ + ", got JSON " + d.typ.value)
	}
	if p := append(d.problems, d.templProbs...); len(p) > 0 {
		return nil, p
	}
	return &d.m, nil
}

// document reads the whole input, returning the first syntax error. Other errors are recorded
// in d and reported only if the document is well formed.
func (d *decoder) document() (serr *syntaxError) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(*syntaxError)
			if !ok {
				panic(r)
			}
			serr = e
		}
	}()
	if c := d.beginValue(); c == '{' {
		d.topObject()
	} else {
		d.topKind = kindOf(c)
		d.skip(0)
	}
	d.space()
	if d.i < len(d.data) {
		d.fail(d.i, "after top-level value")
	}
	return nil
}

// Top-level keys, as bits recording which were seen.
const (
	topVersion uint16 = 1 << iota
	topSecretsDir
	topMountPoint
	topKeepGenerations
	topIdentities
	topGnuPGHome
	topSecrets
	topPlaceholders
	topTemplates
)

func topKey(name string) uint16 {
	switch name {
	case "version":
		return topVersion
	case "secretsDir":
		return topSecretsDir
	case "mountPoint":
		return topMountPoint
	case "keepGenerations":
		return topKeepGenerations
	case "identities":
		return topIdentities
	case "gnupgHome":
		return topGnuPGHome
	case "secrets":
		return topSecrets
	case "placeholders":
		return topPlaceholders
	case "templates":
		return topTemplates
	}
	return 0
}

func (d *decoder) topObject() {
	if d.openObject(1) {
		return
	}
	var seen uint16
	for {
		val, name := d.key()
		bit := topKey(name)
		switch {
		case bit == 0:
			if d.keyErr == "" {
				d.keyErr = "(top level): unknown field " + strconv.Quote(name)
			}
		case seen&bit != 0:
			if d.keyErr == "" {
				d.keyErr = "malformed manifest: field " + strconv.Quote(name) + " appears twice"
			}
		}
		seen |= bit
		switch {
		case foldsToVersion(val):
			d.versionValue(bit == topVersion)
		case d.keyErr != "":
			// The decoded value can no longer matter; only the syntax can.
			d.beginValue()
			d.skip(1)
		case bit == topSecretsDir:
			d.stringValue(&d.m.SecretsDir, "secretsDir", 1)
		case bit == topMountPoint:
			d.stringValue(&d.m.MountPoint, "mountPoint", 1)
		case bit == topKeepGenerations:
			if n, ok := d.intValue("keepGenerations", 1); ok {
				d.m.KeepGenerations = n
			}
		case bit == topIdentities:
			d.stringsValue(&d.m.Identities, "identities", 1)
		case bit == topGnuPGHome:
			d.stringValue(&d.m.GnuPGHome, "gnupgHome", 1)
		case bit == topPlaceholders:
			d.placeholders()
		case bit == topSecrets:
			d.elements("secrets")
		case bit == topTemplates:
			d.elements("templates")
		}
		if !d.nextKey() {
			return
		}
	}
}

// foldsToVersion reports whether encoding/json would have matched key to the "version" field
// when it probed the version: case-insensitively, Unicode simple folding included.
func foldsToVersion(key string) bool {
	const want = "VERSION"
	j := 0
	for i := 0; i < len(key); {
		var c rune
		if key[i] < utf8.RuneSelf {
			c = rune(key[i])
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			i++
		} else {
			r, n := utf8.DecodeRuneInString(key[i:])
			c = foldRune(r)
			i += n
		}
		if j >= len(want) || c != rune(want[j]) {
			return false
		}
		j++
	}
	return j == len(want)
}

func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// versionValue reads a value of a key matching "version": every such key counts for the
// version check, the last one winning; store says the key is exactly "version".
func (d *decoder) versionValue(store bool) {
	switch c := d.beginValue(); {
	case c == 'n':
		d.literal()
		d.haveVersion = false
	case c == '-' || '0' <= c && c <= '9':
		lit := d.number()
		n, err := strconv.ParseInt(lit, 10, 0)
		if err != nil {
			d.versionErr.set("version", "int", "number "+lit)
			return
		}
		d.version, d.haveVersion = int(n), true
		if store {
			d.m.Version = int(n)
		}
	default:
		d.versionErr.set("version", "int", kindOf(c))
		d.skip(1)
	}
}

// elements reads the array of secrets or templates.
func (d *decoder) elements(field string) {
	switch c := d.beginValue(); c {
	case 'n':
		d.literal()
	case '[':
		if d.openArray(2) {
			return
		}
		for i := 0; ; i++ {
			var e element
			if field == "secrets" {
				d.m.Secrets = append(d.m.Secrets, Secret{})
				e = d.element(2, &d.m.Secrets[len(d.m.Secrets)-1], nil)
				if e.failed() {
					d.problems = append(d.problems, e.problem(field, i))
				}
			} else {
				d.m.Templates = append(d.m.Templates, Template{})
				e = d.element(2, nil, &d.m.Templates[len(d.m.Templates)-1])
				if e.failed() {
					d.templProbs = append(d.templProbs, e.problem(field, i))
				}
			}
			if !d.nextElem() {
				return
			}
		}
	default:
		d.cur.set(field, "[]json.RawMessage", kindOf(c))
		d.skip(1)
	}
}

// Keys of secrets and templates, as bits recording which were seen.
const (
	keyName uint16 = 1 << iota
	keyFile
	keyFormat
	keyKey
	keyContent
	keyOwner
	keyGroup
	keyUID
	keyGID
	keyMode
	keyPath
	keySymlink
	keyRestartUnits
	keyReloadUnits
)

const (
	secretKeys   = keyName | keyFile | keyFormat | keyKey | outputKeys
	templateKeys = keyName | keyContent | outputKeys
	outputKeys   = keyOwner | keyGroup | keyUID | keyGID | keyMode | keyPath | keySymlink | keyRestartUnits | keyReloadUnits
)

func elementKey(name string) uint16 {
	switch name {
	case "name":
		return keyName
	case "file":
		return keyFile
	case "format":
		return keyFormat
	case "key":
		return keyKey
	case "content":
		return keyContent
	case "owner":
		return keyOwner
	case "group":
		return keyGroup
	case "uid":
		return keyUID
	case "gid":
		return keyGID
	case "mode":
		return keyMode
	case "path":
		return keyPath
	case "symlink":
		return keySymlink
	case "restartUnits":
		return keyRestartUnits
	case "reloadUnits":
		return keyReloadUnits
	}
	return 0
}

// element reads one secret into s or one template into t, at the given nesting of the array
// holding it.
func (d *decoder) element(depth int, s *Secret, t *Template) (e element) {
	var (
		typ     string
		allowed uint16
		name    *string
		o       *Ownership
		path    *string
		symlink **bool
		cons    *Consumers
	)
	if s != nil {
		typ, allowed = "manifest.Secret", secretKeys
		name, o, path, symlink, cons = &s.Name, &s.Ownership, &s.Path, &s.Symlink, &s.Consumers
	} else {
		typ, allowed = "manifest.Template", templateKeys
		name, o, path, symlink, cons = &t.Name, &t.Ownership, &t.Path, &t.Symlink, &t.Consumers
	}
	switch c := d.beginValue(); c {
	case 'n':
		d.literal()
		return e
	case '{':
	default:
		e.typ.set("", typ, kindOf(c))
		d.skip(depth)
		return e
	}
	if d.openObject(depth + 1) {
		return e
	}
	// A syntax error ends decoding, so d.cur need not be restored when one panics.
	d.elemTyp = mismatch{}
	d.cur = &d.elemTyp
	var seen uint16
	for more := true; more; more = d.nextKey() {
		_, key := d.key()
		bit := elementKey(key) & allowed
		switch {
		case bit == 0:
			if e.keyErr == "" {
				e.keyErr = "unknown field " + strconv.Quote(key)
			}
		case seen&bit != 0:
			if e.keyErr == "" {
				e.keyErr = "field " + strconv.Quote(key) + " appears twice"
			}
		}
		seen |= bit
		switch {
		case e.keyErr != "":
			d.beginValue()
			d.skip(depth + 1)
		case bit == keyName:
			d.stringValue(name, "name", depth+1)
		case bit == keyFile:
			d.stringValue(&s.File, "file", depth+1)
		case bit == keyFormat:
			d.stringValue(&s.Format, "format", depth+1)
		case bit == keyKey:
			d.stringValue(&s.Key, "key", depth+1)
		case bit == keyContent:
			d.stringValue(&t.Content, "content", depth+1)
		default:
			d.outputValue(bit, o, path, symlink, cons, depth+1)
		}
	}
	e.typ, d.cur = d.elemTyp, &d.typ
	return e
}

// outputValue reads a field secrets and templates share.
func (d *decoder) outputValue(bit uint16, o *Ownership, path *string, symlink **bool, c *Consumers, depth int) {
	switch bit {
	case keyOwner:
		d.stringValue(&o.Owner, "owner", depth)
	case keyGroup:
		d.stringValue(&o.Group, "group", depth)
	case keyMode:
		d.stringValue(&o.Mode, "mode", depth)
	case keyUID:
		d.idValue(&o.UID, "uid", depth)
	case keyGID:
		d.idValue(&o.GID, "gid", depth)
	case keyPath:
		d.stringValue(path, "path", depth)
	case keySymlink:
		d.boolValue(symlink, "symlink", depth)
	case keyRestartUnits:
		d.stringsValue(&c.RestartUnits, "restartUnits", depth)
	case keyReloadUnits:
		d.stringsValue(&c.ReloadUnits, "reloadUnits", depth)
	}
}

// stringValue reads the value of a string field; null leaves it as it is. depth is the
// nesting of the object holding the field.
func (d *decoder) stringValue(dst *string, field string, depth int) {
	switch c := d.beginValue(); c {
	case '"':
		*dst = d.str()
	case 'n':
		d.literal()
	default:
		d.cur.set(field, "string", kindOf(c))
		d.skip(depth)
	}
}

// intValue reads the value of an int field; ok is false for null (and for an error).
func (d *decoder) intValue(field string, depth int) (n int, ok bool) {
	switch c := d.beginValue(); {
	case c == 'n':
		d.literal()
	case c == '-' || '0' <= c && c <= '9':
		lit := d.number()
		v, err := strconv.ParseInt(lit, 10, 0)
		if err != nil {
			d.cur.set(field, "int", "number "+lit)
			return 0, false
		}
		return int(v), true
	default:
		d.cur.set(field, "int", kindOf(c))
		d.skip(depth)
	}
	return 0, false
}

// boolValue reads a bool field held by pointer; null unsets it.
func (d *decoder) boolValue(dst **bool, field string, depth int) {
	switch c := d.beginValue(); c {
	case 'n':
		d.literal()
		*dst = nil
	case 't', 'f':
		d.literal()
		b := c == 't'
		*dst = &b
	default:
		d.cur.set(field, "bool", kindOf(c))
		d.skip(depth)
	}
}

// idValue reads a uid or gid; null unsets it.
func (d *decoder) idValue(dst **int, field string, depth int) {
	if d.peekNull() {
		*dst = nil
		return
	}
	if n, ok := d.intValue(field, depth); ok {
		*dst = &n
	}
}

// stringsValue reads a list of strings; null unsets it, and a null element is "".
func (d *decoder) stringsValue(dst *[]string, field string, depth int) {
	switch c := d.beginValue(); c {
	case 'n':
		d.literal()
		*dst = nil
	case '[':
		list := []string{}
		if !d.openArray(depth + 1) {
			for {
				var s string
				d.stringValue(&s, field, depth+1)
				list = append(list, s)
				if !d.nextElem() {
					break
				}
			}
		}
		*dst = list
	default:
		d.cur.set(field, "[]string", kindOf(c))
		d.skip(depth)
	}
}

// placeholders reads the placeholders map; a repeated key's last value wins, a null value is "".
func (d *decoder) placeholders() {
	switch c := d.beginValue(); c {
	case 'n':
		d.literal()
		d.m.Placeholders = nil
	case '{':
		if d.m.Placeholders == nil {
			d.m.Placeholders = map[string]string{}
		}
		if d.openObject(2) {
			return
		}
		for {
			name, _ := d.key()
			var tok string
			d.stringValue(&tok, "placeholders", 2)
			d.m.Placeholders[name] = tok
			if !d.nextKey() {
				return
			}
		}
	default:
		d.cur.set("placeholders", "map[string]string", kindOf(c))
		d.skip(1)
	}
}

// kindOf names the JSON value starting with c as encoding/json's type errors do.
func kindOf(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// The tokenizer. Its checks, their order and their messages are those of encoding/json's
// scanner, so that the first error found and its position are the same: at the end of the
// input, a token that needs more is told it got a space (encoding/json's scanner does that to
// end a top-level number), and anything else is "unexpected end of JSON input".

func (d *decoder) fail(i int, context string) {
	c, offset := byte(' '), len(d.data)
	if i < len(d.data) {
		c, offset = d.data[i], i+1
	}
	panic(&syntaxError{"invalid character " + quoteChar(c) + " " + context, offset})
}

func (d *decoder) unexpectedEnd() {
	panic(&syntaxError{"unexpected end of JSON input", len(d.data)})
}

// quoteChar formats c as encoding/json's syntax errors do.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

func (d *decoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// beginValue skips space up to a value and returns its first byte, which it leaves unread.
func (d *decoder) beginValue() byte {
	d.space()
	if d.i >= len(d.data) {
		d.unexpectedEnd()
	}
	switch c := d.data[d.i]; c {
	case '{', '[', '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 't', 'f', 'n':
		return c
	}
	d.fail(d.i, "looking for beginning of value")
	return 0
}

// peekNull reports whether the next value is null, reading it if so.
func (d *decoder) peekNull() bool {
	if d.beginValue() != 'n' {
		return false
	}
	d.literal()
	return true
}

// openArray reads the '[' of an array at the given nesting, and the ']' if it is empty.
func (d *decoder) openArray(depth int) (empty bool) {
	if depth > maxDepth {
		d.fail(d.i, "exceeded max depth")
	}
	d.i++
	d.space()
	if d.i >= len(d.data) {
		d.unexpectedEnd()
	}
	if d.data[d.i] == ']' {
		d.i++
		return true
	}
	return false
}

// nextElem reads what follows an array element: true for ',', false for the closing ']'.
func (d *decoder) nextElem() bool {
	d.space()
	if d.i >= len(d.data) {
		d.unexpectedEnd()
	}
	switch d.data[d.i] {
	case ',':
		d.i++
		return true
	case ']':
		d.i++
		return false
	}
	d.fail(d.i, "after array element")
	return false
}

// openObject reads the '{' of an object at the given nesting, and the '}' if it is empty.
func (d *decoder) openObject(depth int) (empty bool) {
	if depth > maxDepth {
		d.fail(d.i, "exceeded max depth")
	}
	d.i++
	d.space()
	if d.i >= len(d.data) {
		d.unexpectedEnd()
	}
	switch d.data[d.i] {
	case '}':
		d.i++
		return true
	case '"':
		return false
	}
	d.fail(d.i, "looking for beginning of object key string")
	return false
}

// key reads an object key and the ':' after it. val is the key as encoding/json decodes it;
// name is how the key is shown in errors: as written unless it holds escapes.
func (d *decoder) key() (val, name string) {
	start := d.i + 1
	end, plain := d.scanString()
	name = d.src[start:end]
	val = name
	if !plain {
		val = unquote(name)
		if hasEscape(name) {
			name = val
		}
	}
	d.space()
	if d.i >= len(d.data) {
		d.unexpectedEnd()
	}
	if d.data[d.i] != ':' {
		d.fail(d.i, "after object key")
	}
	d.i++
	return val, name
}

// nextKey reads what follows an object's value: true for ',' (the next key's '"' is then
// checked), false for the closing '}'.
func (d *decoder) nextKey() bool {
	d.space()
	if d.i >= len(d.data) {
		d.unexpectedEnd()
	}
	switch d.data[d.i] {
	case ',':
		d.i++
		d.space()
		if d.i >= len(d.data) {
			d.unexpectedEnd()
		}
		if d.data[d.i] != '"' {
			d.fail(d.i, "looking for beginning of object key string")
		}
		return true
	case '}':
		d.i++
		return false
	}
	d.fail(d.i, "after object key:value pair")
	return false
}

// plainByte marks the bytes that stand for themselves in a string: printable ASCII but the
// quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString reads the string starting at d.i (its '"') and returns the index of its closing
// quote; plain says it holds neither escapes nor anything but ASCII.
func (d *decoder) scanString() (end int, plain bool) {
	data := d.data
	i := d.i + 1
	plain = true
	for {
		for i < len(data) && plainByte[data[i]] {
			i++
		}
		if i >= len(data) {
			d.unexpectedEnd()
		}
		switch c := data[i]; {
		case c == '"':
			d.i = i + 1
			return i, plain
		case c == '\\':
			plain = false
			i++
			if i >= len(data) {
				d.fail(i, "in string escape code")
			}
			switch data[i] {
			case 'b', 'f', 'n', 'r', 't', '\\', '/', '"':
			case 'u':
				for k := 0; k < 4; k++ {
					i++
					if i >= len(data) || !isHex(data[i]) {
						d.fail(i, `in \u hexadecimal character escape`)
					}
				}
			default:
				d.fail(i, "in string escape code")
			}
			i++
		case c < 0x20:
			d.fail(i, "in string literal")
		default:
			plain = false
			i++
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hasEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			return true
		}
	}
	return false
}

// str reads a string value.
func (d *decoder) str() string {
	start := d.i + 1
	end, plain := d.scanString()
	s := d.src[start:end]
	if plain {
		return s
	}
	return unquote(s)
}

// unquote decodes the content of a well-formed JSON string as encoding/json does: invalid
// UTF-8 and unpaired surrogates become U+FFFD.
func unquote(s string) string {
	if !hasEscape(s) && utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	for r := 0; r < len(s); {
		switch c := s[r]; {
		case c == '\\':
			switch e := s[r+1]; e {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != unicode.ReplacementChar {
						r += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRuneInString(s[r:])
			b = utf8.AppendRune(b, rr)
			r += size
		}
	}
	return string(b)
}

// getu4 decodes the \uXXXX escape at the start of s, or returns -1.
func getu4(s string) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range []byte(s[2:6]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number reads a number and returns its text.
func (d *decoder) number() string {
	data := d.data
	start := d.i
	i := start
	if data[i] == '-' {
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.fail(i, "in numeric literal")
		}
	}
	if data[i] == '0' {
		i++
	} else {
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.fail(i, "after decimal point in numeric literal")
		}
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.fail(i, "in exponent of numeric literal")
		}
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	d.i = i
	return d.src[start:i]
}

// literal reads true, false or null.
func (d *decoder) literal() {
	var word, what string
	switch d.data[d.i] {
	case 't':
		word, what = "true", "in literal true (expecting '"
	case 'f':
		word, what = "false", "in literal false (expecting '"
	default:
		word, what = "null", "in literal null (expecting '"
	}
	for k := 1; k < len(word); k++ {
		i := d.i + k
		if i >= len(d.data) || d.data[i] != word[k] {
			d.fail(i, what+word[k:k+1]+"')")
		}
	}
	d.i += len(word)
}

// skip reads a value whatever it holds, checking only its syntax; depth is the nesting of the
// array or object holding it.
func (d *decoder) skip(depth int) {
	switch d.data[d.i] {
	case '"':
		d.scanString()
	case '{':
		if d.openObject(depth + 1) {
			return
		}
		for {
			d.key()
			d.beginValue()
			d.skip(depth + 1)
			if !d.nextKey() {
				return
			}
		}
	case '[':
		if d.openArray(depth + 1) {
			return
		}
		for {
			d.beginValue()
			d.skip(depth + 1)
			if !d.nextElem() {
				return
			}
		}
	case 't', 'f', 'n':
		d.literal()
	default:
		d.number()
	}
}
