package manifest

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// RenderedDir is the directory under secretsDir that holds rendered templates; no secret may
// be named inside it.
const RenderedDir = "rendered"

// PlaceholderPattern matches a placeholder token in template content.
var PlaceholderPattern = regexp.MustCompile(`<SECRETD:[^<>\s]*>`)

// Problems is every validation failure of a manifest, each prefixed with its JSON location.
type Problems []string

func (p Problems) Error() string {
	if len(p) == 1 {
		return p[0]
	}
	return fmt.Sprintf("%d problems:\n  %s", len(p), strings.Join(p, "\n  "))
}

func (p *Problems) add(location, format string, args ...any) {
	*p = append(*p, location+": "+fmt.Sprintf(format, args...))
}

// nameASCII are the ASCII bytes a segment of an output name may hold: every printable one but
// "/". sops-nix takes any string as a name ("passwords.sops.minion.json:minion"); control
// characters are refused because a name is also a line of logs, status and systemd settings.
var nameASCII = byteSet(" !\"#$%&'()*+,-.0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~")

func byteSet(chars string) (set [256]bool) {
	for i := 0; i < len(chars); i++ {
		set[chars[i]] = true
	}
	return set
}

// allIn reports whether every byte of s is in set.
func allIn(s string, set *[256]bool) bool {
	for i := 0; i < len(s); i++ {
		if !set[s[i]] {
			return false
		}
	}
	return true
}

// CheckName reports why name is not a valid output name, or nil: segments of UTF-8 text without
// control characters joined by "/", none empty, "." or "..", not absolute.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("name is empty")
	}
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("%q is absolute; names are relative to secretsDir", name)
	}
	for rest, more := name, true; more; {
		var seg string
		seg, rest, more = strings.Cut(rest, "/")
		switch {
		case seg == "":
			return fmt.Errorf("%q has an empty path segment", name)
		case seg == "." || seg == "..":
			return fmt.Errorf("%q has a %q segment", name, seg)
		case !validSegment(seg):
			return fmt.Errorf("%q: segment %q must be UTF-8 text without control characters", name, seg)
		}
	}
	return nil
}

func validSegment(seg string) bool {
	if allIn(seg, &nameASCII) {
		return true
	}
	if !utf8.ValidString(seg) {
		return false
	}
	for _, r := range seg {
		if r < utf8.RuneSelf && !nameASCII[r] || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// ParseMode parses an octal permission string such as "0440".
func ParseMode(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || s == "" {
		return 0, fmt.Errorf("%q is not an octal mode", s)
	}
	if v > 0o777 {
		return 0, fmt.Errorf("%q has bits beyond 0777 (setuid, setgid and sticky make no sense on a secret)", s)
	}
	return uint32(v), nil
}

// place is where a secret or template is declared; it is spelt out as its JSON location only
// when a problem is reported, which spares formatting one per output.
type place struct {
	list string // "secrets" or "templates"
	i    int
	name string
}

func (pl place) String() string {
	loc := pl.list + "[" + strconv.Itoa(pl.i) + "]"
	if pl.name != "" {
		loc += " (" + quoteIfUnprintable(pl.name) + ")"
	}
	return loc
}

// Validate checks a decoded manifest and returns Problems listing every failure, or nil.
func (m *Manifest) Validate() error {
	var p Problems
	checkAbsDir := func(loc, dir string) {
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/" {
			p.add(loc, "%q must be a clean absolute path other than /", dir)
		}
	}
	checkAbsDir("secretsDir", m.SecretsDir)
	checkAbsDir("mountPoint", m.MountPoint)
	if within(m.SecretsDir, m.MountPoint) || within(m.MountPoint, m.SecretsDir) {
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

	// No secret may be named under rendered/, where every template's output is, so the
	// outputs from list "secrets" are exactly the names placeholders may stand for.
	outputs := make(map[string]place, len(m.Secrets)+len(m.Templates)) // output name -> where
	linkPaths := map[string]place{}                                    // path symlink -> where
	for i := range m.Secrets {
		s := &m.Secrets[i]
		pl := place{"secrets", i, s.Name}
		if err := CheckName(s.Name); err != nil {
			p.add(pl.String()+".name", "%v", err)
		} else if first, _, _ := strings.Cut(s.Name, "/"); first == RenderedDir {
			p.add(pl.String()+".name", "%q is inside %q, which holds rendered templates", s.Name, RenderedDir+"/")
		} else {
			if prev, dup := outputs[s.Name]; dup {
				p.add(pl.String()+".name", "%q is already used by %s", s.Name, prev)
			}
			outputs[s.Name] = pl
		}
		if s.File == "" {
			p.add(pl.String()+".file", "missing: which encrypted file holds this secret?")
		} else if !filepath.IsAbs(s.File) {
			p.add(pl.String()+".file", "%q must be an absolute path", s.File)
		}
		if !contains(Formats, s.Format) {
			p.add(pl.String()+".format", "%q is not one of %s", s.Format, strings.Join(Formats, ", "))
		} else if s.Format == FormatBinary && s.Key != "" {
			p.add(pl.String()+".key", "%q is set, but a binary secret is the whole plaintext: set format to yaml, json, dotenv or ini", s.Key)
		}
		m.checkOutput(&p, pl, &s.Ownership, s.Path, &s.Consumers, linkPaths)
	}
	var declared map[string]bool // placeholder tokens, gathered when a template first uses one
	for i := range m.Templates {
		t := &m.Templates[i]
		pl := place{"templates", i, t.Name}
		if err := CheckName(t.Name); err != nil {
			p.add(pl.String()+".name", "%v", err)
		} else {
			out := RenderedDir + "/" + t.Name
			if prev, dup := outputs[out]; dup {
				p.add(pl.String()+".name", "%q is already used by %s", t.Name, prev)
			}
			outputs[out] = pl
		}
		if t.File != "" && !filepath.IsAbs(t.File) {
			p.add(pl.String()+".file", "%q must be an absolute path", t.File)
		}
		if strings.Contains(t.Content, placeholderPrefix) {
			if declared == nil {
				declared = make(map[string]bool, len(m.Placeholders))
				for _, tok := range m.Placeholders {
					declared[tok] = true
				}
			}
			for _, tok := range PlaceholderPattern.FindAllString(t.Content, -1) {
				if !declared[tok] {
					p.add(pl.String()+".content", "%s is not a declared placeholder", quoteIfUnprintable(tok))
				}
			}
		}
		m.checkOutput(&p, pl, &t.Ownership, t.Path, &t.Consumers, linkPaths)
	}
	tokens := map[string]string{}
	for _, name := range sortedKeys(m.Placeholders) {
		tok := m.Placeholders[name]
		loc := fmt.Sprintf("placeholders[%q]", name)
		if other, dup := tokens[tok]; dup {
			p.add(loc, "%q already stands for secret %q", tok, other)
		}
		tokens[tok] = name
		if pl, ok := outputs[name]; !ok || pl.list != "secrets" {
			p.add(loc, "no secret is named %q", name)
		}
		if !PlaceholderPattern.MatchString(tok) || PlaceholderPattern.FindString(tok) != tok {
			p.add(loc, "%q is not of the form <SECRETD:…>", tok)
		}
	}
	checkNesting(&p, outputs)
	if len(p) > 0 {
		return p
	}
	return nil
}

// placeholderPrefix starts every match of PlaceholderPattern.
const placeholderPrefix = "<SECRETD:"

// PlaceholderSecret returns the secret a placeholder token stands for.
func (m *Manifest) PlaceholderSecret(token string) (string, bool) {
	for name, tok := range m.Placeholders {
		if tok == token {
			return name, true
		}
	}
	return "", false
}

func (m *Manifest) checkOutput(p *Problems, pl place, o *Ownership, path string, c *Consumers, linkPaths map[string]place) {
	at := func(field string) string { return pl.String() + "." + field }
	if o.Owner != "" && o.UID != nil {
		p.add(at("uid"), "set owner or uid, not both")
	}
	if o.Group != "" && o.GID != nil {
		p.add(at("gid"), "set group or gid, not both")
	}
	// 2^32-1 is (uid_t)-1, which chown reads as "leave unchanged".
	checkID := func(field string, id *int) {
		switch {
		case id == nil:
		case *id < 0:
			p.add(at(field), "%d is negative", *id)
		case *id >= 1<<32-1:
			p.add(at(field), "%d is out of range (0 to 4294967294)", *id)
		}
	}
	checkID("uid", o.UID)
	checkID("gid", o.GID)
	if _, err := ParseMode(o.Mode); err != nil {
		p.add(at("mode"), "%v", err)
	}
	if path != "" {
		switch {
		case !filepath.IsAbs(path) || filepath.Clean(path) != path:
			p.add(at("path"), "%q must be a clean absolute path", path)
		case path == m.MountPoint || within(path, m.MountPoint):
			p.add(at("path"), "%q is inside mountPoint %q", path, m.MountPoint)
		case path == m.SecretsDir || within(path, m.SecretsDir):
			p.add(at("path"), "%q is inside secretsDir %q, which secretd replaces whole", path, m.SecretsDir)
		default:
			if prev, dup := linkPaths[path]; dup {
				p.add(at("path"), "%q is already used by %s", path, prev)
			}
			linkPaths[path] = pl
		}
	}
	for j, u := range c.RestartUnits {
		if err := checkUnit(u); err != nil {
			p.add(fmt.Sprintf("%s.restartUnits[%d]", pl, j), "%v", err)
		}
	}
	for j, u := range c.ReloadUnits {
		if err := checkUnit(u); err != nil {
			p.add(fmt.Sprintf("%s.reloadUnits[%d]", pl, j), "%v", err)
		}
	}
}

// unitBytes are the bytes a systemd unit name may hold here; unitTypes are the suffixes, after
// a '.', that it must end with.
var (
	unitBytes = byteSet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:_.\\@-")
	unitTypes = []string{"service", "socket", "target", "timer", "path", "mount", "automount", "swap", "slice", "scope", "device"}
)

func checkUnit(u string) error {
	if allIn(u, &unitBytes) {
		for _, t := range unitTypes {
			if n := len(u) - len(t); n > 1 && u[n-1] == '.' && u[n:] == t {
				return nil
			}
		}
	}
	return fmt.Errorf("%q is not a systemd unit name (such as foo.service)", u)
}

// checkNesting reports an output name that is a directory of another ("a" and "a/b"), in the
// order of the names.
func checkNesting(p *Problems, outputs map[string]place) {
	var clashing []string
	for name := range outputs {
		if strings.IndexByte(name, '/') < 0 {
			continue // filepath.Dir(name) is "."
		}
		for dir := filepath.Dir(name); dir != "."; dir = filepath.Dir(dir) {
			if _, clash := outputs[dir]; clash {
				clashing = append(clashing, name)
				break
			}
		}
	}
	sort.Strings(clashing)
	for _, name := range clashing {
		for dir := filepath.Dir(name); dir != "."; dir = filepath.Dir(dir) {
			if pl, clash := outputs[dir]; clash {
				p.add(outputs[name].String()+".name", "%q needs %q to be a directory, but %s is a file of that name", name, dir, pl)
			}
		}
	}
}

// within reports whether path is below dir.
func within(path, dir string) bool {
	return len(path) > len(dir) && path[len(dir)] == '/' && path[:len(dir)] == dir
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
