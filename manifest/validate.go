package manifest

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
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

var segmentPattern = regexp.MustCompile(`^[A-Za-z0-9._@+-]+$`)

// CheckName reports why name is not a valid output name, or nil: segments of
// [A-Za-z0-9._@+-] joined by "/", none empty, "." or "..", not absolute.
func CheckName(name string) error {
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
		case !segmentPattern.MatchString(seg):
			return fmt.Errorf("%q: segment %q may only hold A-Z a-z 0-9 . _ @ + -", name, seg)
		}
	}
	return nil
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
	if m.KeepGenerations < 1 {
		p.add("keepGenerations", "%d must be at least 1", m.KeepGenerations)
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
		if err := CheckName(s.Name); err != nil {
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
		m.checkOutput(&p, loc, &s.Ownership, s.Path, &s.Consumers, linkPaths)
	}
	for i := range m.Templates {
		t := &m.Templates[i]
		loc := fmt.Sprintf("templates[%d]", i)
		if t.Name != "" {
			loc = fmt.Sprintf("templates[%d] (%s)", i, t.Name)
		}
		if err := CheckName(t.Name); err != nil {
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
		m.checkOutput(&p, loc, &t.Ownership, t.Path, &t.Consumers, linkPaths)
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
	checkNesting(&p, outputs)
	if len(p) > 0 {
		return p
	}
	return nil
}

// PlaceholderSecret returns the secret a placeholder token stands for.
func (m *Manifest) PlaceholderSecret(token string) (string, bool) {
	for name, tok := range m.Placeholders {
		if tok == token {
			return name, true
		}
	}
	return "", false
}

func (m *Manifest) checkOutput(p *Problems, loc string, o *Ownership, path string, c *Consumers, linkPaths map[string]string) {
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
		case path == m.MountPoint || within(path, m.MountPoint):
			p.add(loc+".path", "%q is inside mountPoint %q", path, m.MountPoint)
		case path == m.SecretsDir || within(path, m.SecretsDir):
			p.add(loc+".path", "%q is inside secretsDir %q, which secretd replaces whole", path, m.SecretsDir)
		default:
			if prev, dup := linkPaths[path]; dup {
				p.add(loc+".path", "%q is already used by %s", path, prev)
			}
			linkPaths[path] = loc
		}
	}
	for j, u := range c.RestartUnits {
		if err := checkUnit(u); err != nil {
			p.add(fmt.Sprintf("%s.restartUnits[%d]", loc, j), "%v", err)
		}
	}
	for j, u := range c.ReloadUnits {
		if err := checkUnit(u); err != nil {
			p.add(fmt.Sprintf("%s.reloadUnits[%d]", loc, j), "%v", err)
		}
	}
}

var unitPattern = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|timer|path|mount|automount|swap|slice|scope|device)$`)

func checkUnit(u string) error {
	if !unitPattern.MatchString(u) {
		return fmt.Errorf("%q is not a systemd unit name (such as foo.service)", u)
	}
	return nil
}

// checkNesting reports an output name that is a directory of another ("a" and "a/b").
func checkNesting(p *Problems, outputs map[string]string) {
	for _, name := range sortedKeys(outputs) {
		for dir := filepath.Dir(name); dir != "."; dir = filepath.Dir(dir) {
			if loc, clash := outputs[dir]; clash {
				p.add(outputs[name]+".name", "%q needs %q to be a directory, but %s is a file of that name", name, dir, loc)
			}
		}
	}
}

func within(path, dir string) bool {
	return strings.HasPrefix(path, dir+"/")
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
