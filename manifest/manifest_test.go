package manifest_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/secretd/secretd/manifest"
)

// minimal is the smallest valid manifest: everything else has a default.
const minimal = `{
  "version": 1,
  "identities": ["/etc/ssh/ssh_host_ed25519_key"],
  "secrets": [
    {"name": "db/password", "file": "/nix/store/x-db.age"},
    {"name": "api", "file": "/nix/store/x-api.age", "uid": 1000, "gid": 100}
  ],
  "templates": [{"name": "app.conf", "content": "no placeholders"}]
}`

func TestDecodeAppliesDefaults(t *testing.T) {
	m, err := manifest.Decode([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if m.SecretsDir != "/run/secrets" || m.MountPoint != "/run/secrets.d" || m.KeepGenerations != 1 {
		t.Errorf("directories %q %q, keep %d", m.SecretsDir, m.MountPoint, m.KeepGenerations)
	}
	db := m.Secrets[0]
	if db.Owner != "root" || db.Group != "root" || db.Mode != "0400" || db.Format != "binary" || db.UID != nil || db.GID != nil {
		t.Errorf("secret defaults: %+v", db)
	}
	// A numeric owner is not also given a default name.
	api := m.Secrets[1]
	if api.Owner != "" || api.Group != "" || *api.UID != 1000 || *api.GID != 100 || api.Mode != "0400" {
		t.Errorf("numeric owner: %+v", api)
	}
	tmpl := m.Templates[0]
	if tmpl.Owner != "root" || tmpl.Group != "root" || tmpl.Mode != "0400" {
		t.Errorf("template defaults: %+v", tmpl)
	}
}

func TestDecodeKeepsExplicitValues(t *testing.T) {
	m, err := manifest.Decode([]byte(`{
	  "version": 1, "secretsDir": "/run/keys", "mountPoint": "/run/keys.d", "keepGenerations": 3,
	  "identities": ["/k"],
	  "secrets": [{"name": "a", "file": "/a.age", "format": "yaml", "key": "x/y", "owner": "alice",
	               "group": "users", "mode": "0440", "path": "/home/alice/a",
	               "restartUnits": ["a.service"], "reloadUnits": ["b.socket"]}]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	s := m.Secrets[0]
	if m.SecretsDir != "/run/keys" || m.MountPoint != "/run/keys.d" || m.KeepGenerations != 3 ||
		s.Format != "yaml" || s.Key != "x/y" || s.Owner != "alice" || s.Group != "users" || s.Mode != "0440" ||
		s.Path != "/home/alice/a" || s.RestartUnits[0] != "a.service" || s.ReloadUnits[0] != "b.socket" {
		t.Errorf("decoded %+v", m)
	}
}

// Every problem is reported at once, each on its own line, starting with its JSON location.
func TestDecodeReportsEveryProblemWithItsLocation(t *testing.T) {
	data := `{
	  "version": 1, "keepGenerations": -2, "identities": ["relative/key"],
	  "secrets": [
	    {"name": "a", "file": "/a.age", "mode": "0999"},
	    {"name": "b", "file": "/b.age", "mode": "abc"},
	    {"name": "c", "file": "/c.age", "mode": "01777"},
	    {"name": "", "file": "/d.age", "mode": "0999"},
	    {"name": "a", "file": "e.age", "format": "toml"},
	    {"name": "x/../y", "file": "/f.age", "restartUnits": ["nginx"]}
	  ],
	  "placeholders": {"ghost": "<SECRETD:ghost>"},
	  "templates": [{"name": "t", "content": "<SECRETD:nope>", "path": "/run/secrets.d/t"}]
	}`
	want := []string{
		`keepGenerations: -2 must be at least 0`,
		`identities[0]: "relative/key" must be an absolute path`,
		`secrets[0] (a).mode: "0999" is not an octal mode`,
		`secrets[1] (b).mode: "abc" is not an octal mode`,
		`secrets[2] (c).mode: "01777" has bits beyond 0777`,
		`secrets[3].name: name is empty`,
		`secrets[3].mode: "0999" is not an octal mode`,
		`secrets[4] (a).name: "a" is already used by secrets[0] (a)`,
		`secrets[4] (a).file: "e.age" must be an absolute path`,
		`secrets[4] (a).format: "toml" is not one of binary, yaml, json, dotenv, ini`,
		`secrets[5] (x/../y).name: "x/../y" has a ".." segment`,
		`secrets[5] (x/../y).restartUnits[0]: "nginx" is not a systemd unit name`,
		`templates[0] (t).content: <SECRETD:nope> is not a declared placeholder`,
		`templates[0] (t).path: "/run/secrets.d/t" is inside mountPoint "/run/secrets.d"`,
		`placeholders["ghost"]: no secret is named "ghost"`,
	}
	_, err := manifest.Decode([]byte(data))
	var problems manifest.Problems
	if !errors.As(err, &problems) {
		t.Fatalf("error %v is not Problems", err)
	}
	for _, w := range want {
		found := false
		for _, p := range problems {
			if strings.HasPrefix(p, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem %q", w)
		}
	}
	if len(problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(problems), len(want), err)
	}
	if !strings.HasPrefix(err.Error(), "15 problems:\n  ") {
		t.Errorf("error does not start with the count: %q", err.Error()[:min(40, len(err.Error()))])
	}
}

// Names are what sops-nix accepts (any string) as long as they are safe file names.
func TestCheckName(t *testing.T) {
	for _, good := range []string{"a", "a/b/c", "db-password", "a.b@c+d-e_f", ".hidden", "..a", "a..b", "UPPER/lower/09",
		"passwords.sops.minion.json:minion", "a b", "ä", `a\b`, "a:b", "*", "wg/peer=1,2", "~user's (key)", "日本"} {
		if err := manifest.CheckName(good); err != nil {
			t.Errorf("CheckName(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", ".", "..", "a/..", "../a", "a/./b", "a\x00b", "a\nb", "a\tb", "a\x7fb", "a\u0085b", "a\xffb"} {
		if err := manifest.CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
}

func TestParseMode(t *testing.T) {
	for s, want := range map[string]uint32{"0400": 0o400, "400": 0o400, "0": 0, "0777": 0o777, "0440": 0o440, "0000400": 0o400} {
		if got, err := manifest.ParseMode(s); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %o, %v; want %o", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "0999", "8", "abc", "01777", "04400", "02755", "-1", "+400", "0o400", " 0400", "0400 ", "u+r", "99999999999999999999999"} {
		if _, err := manifest.ParseMode(bad); err == nil {
			t.Errorf("ParseMode(%q) accepted", bad)
		}
	}
}

// decodeWith decodes a manifest with the given secrets, placeholders and templates.
func decodeWith(t *testing.T, secrets, placeholders, templates string) error {
	t.Helper()
	_, err := manifest.Decode([]byte(`{"version": 1, "identities": ["/k"], "secrets": ` + secrets +
		`, "placeholders": ` + placeholders + `, "templates": ` + templates + `}`))
	return err
}

func TestPlaceholdersAndTemplates(t *testing.T) {
	secrets := `[{"name": "gh/token", "file": "/gh.age"}, {"name": "db", "file": "/db.age"}]`
	ok := `{"gh/token": "<SECRETD:1:gh/token>", "db": "<SECRETD:2:db>"}`
	if err := decodeWith(t, secrets, ok, `[{"name": "app.conf", "content": "a=<SECRETD:1:gh/token> b=<SECRETD:2:db> c=<SECRETD:2:db>", "owner": "nobody"}]`); err != nil {
		t.Fatalf("valid templates rejected: %v", err)
	}
	m, _ := manifest.Decode([]byte(`{"version": 1, "identities": ["/k"], "secrets": ` + secrets + `, "placeholders": ` + ok + `}`))
	if name, found := m.PlaceholderSecret("<SECRETD:2:db>"); !found || name != "db" {
		t.Errorf("PlaceholderSecret: %q %v", name, found)
	}
	if _, found := m.PlaceholderSecret("<SECRETD:3:none>"); found {
		t.Error("PlaceholderSecret found an undeclared token")
	}
	for _, c := range []struct {
		name, placeholders, templates string
		want                          []string
	}{
		{"undeclared placeholder", ok, `[{"name": "t", "content": "<SECRETD:9:x>"}]`,
			[]string{`templates[0] (t).content: <SECRETD:9:x> is not a declared placeholder`}},
		{"placeholder of no secret", `{"nope": "<SECRETD:nope>"}`, `[]`,
			[]string{`placeholders["nope"]: no secret is named "nope"`}},
		{"token not a placeholder", `{"db": "${db}"}`, `[]`,
			[]string{`placeholders["db"]: "${db}" is not of the form <SECRETD:…>`}},
		{"token with more around it", `{"db": "x<SECRETD:db>"}`, `[]`,
			[]string{`placeholders["db"]`, "not of the form"}},
		{"two templates of one name", ok, `[{"name": "t", "content": ""}, {"name": "t", "content": ""}]`,
			[]string{`templates[1] (t).name: "t" is already used by templates[0] (t)`}},
		{"template a directory of another", ok, `[{"name": "t", "content": ""}, {"name": "t/u", "content": ""}]`,
			[]string{`templates[1] (t/u).name`, `needs "rendered/t" to be a directory`}},
		{"template with a bad name", ok, `[{"name": "../t", "content": ""}]`,
			[]string{`templates[0] (../t).name`, `".." segment`}},
		{"template with a bad mode and unit", ok, `[{"name": "t", "content": "", "mode": "0800", "reloadUnits": ["x"]}]`,
			[]string{`templates[0] (t).mode`, `templates[0] (t).reloadUnits[0]`}},
		{"template path used by a secret", ok, `[{"name": "t", "content": "", "path": "/etc/x"}, {"name": "u", "content": "", "path": "/etc/x"}]`,
			[]string{`templates[1] (u).path: "/etc/x" is already used by templates[0] (t)`}},
		// One token for two secrets would render either value, whichever came first.
		{"one token for two secrets", `{"gh/token": "<SECRETD:same>", "db": "<SECRETD:same>"}`, `[{"name": "t", "content": "<SECRETD:same>"}]`,
			[]string{`"<SECRETD:same>"`, "db", "gh/token"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := decodeWith(t, secrets, c.placeholders, c.templates)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not hold %q", err, w)
				}
			}
		})
	}
}

// Owners are 32-bit on Linux, and (uid_t)-1 means "leave unchanged" to chown: larger numbers
// would silently become other owners.
func TestNumericOwnersFitInThirtyTwoBits(t *testing.T) {
	for _, c := range []struct{ field, value string }{
		{"uid", "4294967296"}, {"uid", "4294967295"}, {"gid", "4294967295"}, {"gid", "8589934592"},
	} {
		err := decodeWith(t, `[{"name": "a", "file": "/a", "`+c.field+`": `+c.value+`}]`, `{}`, `[]`)
		if err == nil || !strings.Contains(err.Error(), "secrets[0] (a)."+c.field) {
			t.Errorf("%s %s: error %v, want one naming secrets[0] (a).%s", c.field, c.value, err, c.field)
		}
	}
	if err := decodeWith(t, `[{"name": "a", "file": "/a", "uid": 4294967294, "gid": 0}]`, `{}`, `[]`); err != nil {
		t.Errorf("the largest valid uid was refused: %v", err)
	}
}

func TestDirectoriesAndPaths(t *testing.T) {
	for _, c := range []struct {
		top, secret string
		want        string
	}{
		{`"secretsDir": "/"`, ``, `secretsDir: "/" must be a clean absolute path other than /`},
		{`"mountPoint": "/run//secrets.d"`, ``, `mountPoint: "/run//secrets.d" must be a clean absolute path`},
		{`"secretsDir": "/run/s", "mountPoint": "/run/s/d"`, ``, `secretsDir: "/run/s" and mountPoint "/run/s/d" must not contain one another`},
		{``, `, "path": "/run/secrets.d"`, `secrets[0] (a).path: "/run/secrets.d" is inside mountPoint`},
		{``, `, "path": "/run/secrets/b"`, `secrets[0] (a).path: "/run/secrets/b" is inside secretsDir`},
		{``, `, "path": "/run/secrets"`, `secrets[0] (a).path: "/run/secrets" is inside secretsDir`},
		{``, `, "path": "run/a"`, `secrets[0] (a).path: "run/a" must be a clean absolute path`},
		{``, `, "path": "/home/a/"`, `secrets[0] (a).path: "/home/a/" must be a clean absolute path`},
		{``, `, "uid": -1, "owner": ""`, `secrets[0] (a).uid: -1 is negative`},
		{``, `, "uid": 3, "owner": "alice"`, `secrets[0] (a).uid: set owner or uid, not both`},
	} {
		top := c.top
		if top != "" {
			top += ", "
		}
		_, err := manifest.Decode([]byte(`{"version": 1, ` + top + `"identities": ["/k"], "secrets": [{"name": "a", "file": "/a"` + c.secret + `}]}`))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s%s: error %v, want %q", c.top, c.secret, err, c.want)
		}
	}
	// The boundaries are path segments, not string prefixes.
	_, err := manifest.Decode([]byte(`{"version": 1, "secretsDir": "/run/secrets", "mountPoint": "/run/secrets.d", "identities": ["/k"],
	  "secrets": [{"name": "a", "file": "/a", "path": "/run/secrets-extra/a"}]}`))
	if err != nil {
		t.Errorf("a path beside secretsDir was refused: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	m, err := manifest.Decode([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := manifest.Decode(data)
	if err != nil {
		t.Fatalf("a decoded manifest, encoded again, is refused: %v", err)
	}
	if !reflect.DeepEqual(m, again) {
		t.Errorf("round trip changed the manifest:\n%+v\n%+v", m, again)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(minimal), 0o644)
	if _, err := manifest.Load(good); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"version": 1}`), 0o644)
	if _, err := manifest.Load(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "identities") {
		t.Errorf("bad manifest: %v", err)
	}
	missing := filepath.Join(dir, "missing.json")
	if _, err := manifest.Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing manifest: %v", err)
	}
}

// keepGenerations 0 keeps every generation (sops-nix's meaning), unlike an absent one; symlink
// false makes a path a copy (agenix's meaning).
func TestKeepEveryGenerationAndCopies(t *testing.T) {
	m, err := manifest.Decode([]byte(`{"version": 1, "keepGenerations": 0, "identities": ["/k"],
	  "secrets": [{"name": "a", "file": "/a", "path": "/etc/a", "symlink": false},
	              {"name": "b", "file": "/b", "path": "/etc/b", "symlink": true}, {"name": "c", "file": "/c", "symlink": null}],
	  "templates": [{"name": "t", "content": "x", "path": "/etc/t", "symlink": false}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.KeepGenerations != 0 {
		t.Errorf("keepGenerations %d, want 0", m.KeepGenerations)
	}
	s := m.Secrets
	if !manifest.CopyToPath(s[0].Path, s[0].Symlink) || manifest.CopyToPath(s[1].Path, s[1].Symlink) || s[2].Symlink != nil ||
		!manifest.CopyToPath(m.Templates[0].Path, m.Templates[0].Symlink) {
		t.Errorf("symlink decoded as %v %v %v", s[0].Symlink, s[1].Symlink, s[2].Symlink)
	}
	if _, err := manifest.Decode([]byte(`{"version": 1, "identities": ["/k"], "secrets": [{"name": "a", "file": "/a", "symlink": "no"}]}`)); err == nil ||
		!strings.Contains(err.Error(), "symlink: expected") {
		t.Errorf("a string symlink: %v", err)
	}
}

// A template's text may be a file (the NixOS module passes a store path, so that evaluation
// need not build it): Load reads it and checks its placeholders as if it were content; Decode
// alone reads nothing.
func TestLoadReadsTemplateFiles(t *testing.T) {
	dir := t.TempDir()
	text := "token = <SECRETD:1:gh/token>\n"
	if err := os.WriteFile(filepath.Join(dir, "app.tmpl"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.tmpl"), []byte("x = <SECRETD:9:x>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func(templates string) (*manifest.Manifest, error) {
		path := filepath.Join(dir, "manifest.json")
		data := `{"version": 1, "identities": ["/k"], "secrets": [{"name": "gh/token", "file": "/gh.age"}],
			"placeholders": {"gh/token": "<SECRETD:1:gh/token>"}, "templates": ` + templates + `}`
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return manifest.Load(path)
	}
	m, err := load(`[{"name": "app.conf", "file": "` + dir + `/app.tmpl"}]`)
	if err != nil {
		t.Fatal(err)
	}
	if m.Templates[0].Content != text {
		t.Errorf("content %q, want the file's %q", m.Templates[0].Content, text)
	}
	for _, c := range []struct{ templates, want string }{
		{`[{"name": "t", "file": "` + dir + `/bad.tmpl"}]`, `templates[0] (t).content: <SECRETD:9:x> is not a declared placeholder`},
		{`[{"name": "t", "file": "` + dir + `/missing.tmpl"}]`, `templates[0] (t).file: open ` + dir + `/missing.tmpl: no such file`},
		{`[{"name": "t", "file": "` + dir + `/app.tmpl", "content": "x"}]`, `templates[0] (t).file: is set, and so is content`},
		{`[{"name": "t", "file": "app.tmpl"}]`, `templates[0] (t).file: "app.tmpl" must be an absolute path`},
	} {
		if _, err := load(c.templates); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.templates, err, c.want)
		}
	}
	m, err = manifest.Decode([]byte(`{"version": 1, "identities": ["/k"], "templates": [{"name": "t", "file": "` + dir + `/bad.tmpl"}]}`))
	if err != nil || m.Templates[0].Content != "" || m.Templates[0].File != dir+"/bad.tmpl" {
		t.Errorf("Decode: %v, %+v", err, m)
	}
}
