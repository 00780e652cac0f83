package nixos_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// compatFacts is what tests/compat-facts.nix reports for one configuration of
// tests/compat-configs.nix.
type compatFacts struct {
	Tool             string                  `json:"tool"`
	FailedAssertions []string                `json:"failedAssertions"`
	Warnings         []string                `json:"warnings"`
	Secrets          map[string]outputFacts  `json:"secrets"`
	Templates        map[string]outputFacts  `json:"templates"`
	Users            map[string]passwordFile `json:"users"`
	Snippets         []string                `json:"snippets"`
	UnitAfter        []string                `json:"unitAfter"`
	UsersBy          string                  `json:"usersBy"`
	UnitNames        []string                `json:"unitNames"`
	Identities       []string                `json:"identities"`
	GnuPGHome        *string                 `json:"gnupgHome"`
}

type outputFacts struct {
	Path         string   `json:"path"`
	Location     string   `json:"location"`
	Linked       bool     `json:"linked"`
	File         string   `json:"file"`
	Format       string   `json:"format"`
	Key          string   `json:"key"`
	User         string   `json:"user"`
	Group        string   `json:"group"`
	Mode         string   `json:"mode"`
	ModeOctal    string   `json:"modeOctal"`
	Content      string   `json:"content"`
	RestartUnits []string `json:"restartUnits"`
	ReloadUnits  []string `json:"reloadUnits"`
}

type passwordFile struct {
	File             string `json:"file"`
	ReadyBeforeUsers bool   `json:"readyBeforeUsers"`
}

// The activation snippets of agenix and sops-nix that other modules name in their deps.
var orderedAgainst = []string{"agenix", "agenixInstall", "setupSecrets", "setupSecretsForUsers", "generate-age-key"}

// TestCompatMatchesUpstream evaluates each configuration of tests/compat-configs.nix through
// secretd's compatibility module and compares it with what the upstream module produced for it
// (tests/golden/upstream.json, recorded by tests/golden/regenerate.sh): the same files at the
// same paths with the same owners, modes, keys and units, every password file ready before
// users are created (also where upstream's is not), the same snippet names to order against,
// and the activation unit after what upstream's is after.
func TestCompatMatchesUpstream(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "nixos", "tests", "golden", "upstream.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Configurations map[string]compatFacts `json:"configurations"`
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Compat []string `json:"compat"`
	}
	evalCase(t, "list", &list)
	if len(list.Compat) != len(golden.Configurations) {
		t.Errorf("compat-configs.nix has %d configurations, golden/upstream.json %d: run golden/regenerate.sh", len(list.Compat), len(golden.Configurations))
	}
	for _, name := range list.Compat {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, ok := golden.Configurations[name]
			if !ok {
				t.Fatal("not in golden/upstream.json: run golden/regenerate.sh")
			}
			var got compatFacts
			evalCase(t, "compat:"+name, &got)
			if len(got.FailedAssertions) > 0 {
				t.Fatalf("failed assertions: %q", got.FailedAssertions)
			}
			compareOutputs(t, "secret", want.Secrets, got.Secrets)
			compareOutputs(t, "template", want.Templates, got.Templates)
			for user, w := range want.Users {
				g := got.Users[user]
				if g.File != w.File || !g.ReadyBeforeUsers {
					t.Errorf("user %s: password file %q ready before users: %v; upstream %q, ready %v (secretd's must be)", user, g.File, g.ReadyBeforeUsers, w.File, w.ReadyBeforeUsers)
				}
			}
			if !slices.Equal(got.Identities, want.Identities) || !equalJSON(t, got.GnuPGHome, want.GnuPGHome) {
				t.Errorf("keys %v, GnuPG home %v; upstream %v, %v", got.Identities, deref(got.GnuPGHome), want.Identities, deref(want.GnuPGHome))
			}
			for _, w := range want.Warnings {
				if !slices.Contains(got.Warnings, w) {
					t.Errorf("upstream warns %q; secretd's warnings: %q", w, got.Warnings)
				}
			}
			for _, snippet := range orderedAgainst {
				if slices.Contains(want.Snippets, snippet) && !slices.Contains(got.Snippets, snippet) {
					t.Errorf("no activation snippet %q for other modules to order against (snippets %v)", snippet, got.Snippets)
				}
			}
			for _, name := range want.UnitNames {
				if !slices.Contains(got.UnitNames, name) {
					t.Errorf("no unit %s.service for units to order against (secretd.service's names %v)", name, got.UnitNames)
				}
			}
			for _, after := range want.UnitAfter {
				if (after == "local-fs.target" || after == want.UsersBy) && !slices.Contains(got.UnitAfter, after) {
					t.Errorf("secretd.service is after %v, upstream's unit after %s", got.UnitAfter, after)
				}
			}
			if got.UsersBy != "activation script" && !slices.Contains(got.UnitAfter, got.UsersBy) {
				t.Errorf("secretd.service is after %v, not after %s, which creates owners", got.UnitAfter, got.UsersBy)
			}
		})
	}
}

func compareOutputs(t *testing.T, kind string, want, got map[string]outputFacts) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s %q: missing (have %v)", kind, name, keys(got))
			continue
		}
		// Upstream's mode is what chmod made of it; secretd's manifest holds octal bits.
		g.ModeOctal, g.Mode = g.Mode, w.Mode
		if len(g.ModeOctal) == 3 {
			g.ModeOctal = "0" + g.ModeOctal
		}
		w.RestartUnits, g.RestartUnits = systemctlNames(w.RestartUnits), nonNil(g.RestartUnits)
		w.ReloadUnits, g.ReloadUnits = systemctlNames(w.ReloadUnits), nonNil(g.ReloadUnits)
		if !equalJSON(t, w, g) {
			t.Errorf("%s %q differs from upstream:\nupstream %+v\nsecretd  %+v", kind, name, w, g)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s %q: not in upstream's output", kind, name)
		}
	}
}

// systemctlNames are unit names as systemctl, which sops-nix hands them to, reads them: a
// name without a unit type is a service.
func systemctlNames(units []string) []string {
	out := []string{}
	for _, u := range units {
		if i := strings.LastIndexByte(u, '.'); i < 0 || !slices.Contains(unitTypes, u[i+1:]) {
			u += ".service"
		}
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

var unitTypes = []string{"service", "socket", "target", "timer", "path", "mount", "automount", "swap", "slice", "scope", "device"}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

// TestTemplateFile: a sops-nix template whose file is a derivation is handed to secretd by
// path (no import from derivation), with every secret's placeholder declared; a
// pkgs.writeText's text is taken as content.
func TestTemplateFile(t *testing.T) {
	r := evalGood(t, "template-file")
	m := decodeManifest(t, r.Manifest)
	app := templateByName(t, m, "app.ini")
	if app.File != "/nix/store/00000000000000000000000000000000-app.ini" || app.Content != "" {
		t.Errorf("app.ini: file %q content %q, want the derivation's path and no content", app.File, app.Content)
	}
	tok := m.Placeholders["github/oauth_token"]
	if tok == "" {
		t.Errorf("placeholders %v: the file's placeholders are unknown, so every secret's must be declared", m.Placeholders)
	}
	if inline := templateByName(t, m, "inline.conf"); inline.File != "" || inline.Content != "token="+tok {
		t.Errorf("inline.conf: file %q content %q", inline.File, inline.Content)
	}
}

// TestAgenixPasswordFile: the password secret of agenix's tutorial is activated into
// /run/agenix before users only when /run/agenix does not exist yet (a boot), so that a switch
// never replaces the live secrets with a generation holding just the password; secretd.service
// activates it again with the others.
func TestAgenixPasswordFile(t *testing.T) {
	r := evalGood(t, "agenix-password")
	for _, m := range []json.RawMessage{r.Manifest, r.ManifestForUsers} {
		if secretByName(t, decodeManifest(t, m), "secret1").Name == "" {
			t.Fatal("secret1 missing")
		}
	}
	if p := r.Units["secretd"].Path; !slices.Equal(p, []string{"/nix/store/00000000000000000000000000000000-rage-0.11"}) {
		t.Errorf("secretd.service path %v, want age.ageBin's package for its plugins", p)
	}
	forUsers := decodeManifest(t, r.ManifestForUsers)
	if forUsers.SecretsDir != "/run/agenix" || forUsers.MountPoint != "/run/agenix.d" || len(forUsers.Secrets) != 1 {
		t.Errorf("for-users manifest: dir %s mount %s secrets %d, want /run/agenix, /run/agenix.d and the password only", forUsers.SecretsDir, forUsers.MountPoint, len(forUsers.Secrets))
	}
	snippet := r.ActivationScripts["secretd-for-users"].Text
	bashParses(t, "secretd-for-users", snippet)
	if !strings.Contains(snippet, "elif [ -e /run/agenix ]") {
		t.Errorf("the snippet activates the password alone even when /run/agenix exists:\n%s", snippet)
	}
	if !slices.Contains(r.ActivationScripts["agenixInstall"].Deps, "secretd-for-users") || !slices.Contains(r.ActivationScripts["users"].Deps, "agenixInstall") {
		t.Errorf("agenixInstall deps %v, users deps %v", r.ActivationScripts["agenixInstall"].Deps, r.ActivationScripts["users"].Deps)
	}

	r = evalGood(t, "agenix-password-userborn")
	u, ok := r.Units["secretd-for-users"]
	if !ok || u.UnitConfig["ConditionPathExists"] != "!/run/agenix" || !slices.Contains(u.Before, "userborn.service") {
		t.Errorf("secretd-for-users.service: present %v, condition %v, before %v", ok, u.UnitConfig["ConditionPathExists"], u.Before)
	}
}

// TestSopsOptions: sops-nix options without a secretd counterpart of the same name each get
// their meaning here, or a warning saying what is ignored.
func TestSopsOptions(t *testing.T) {
	var r struct {
		FailedAssertions []string `json:"failedAssertions"`
		Warnings         []string `json:"warnings"`
		SopsFileHash     string   `json:"sopsFileHash"`
		ManifestBuild    string   `json:"manifestBuild"`
		KeepGenerations  int      `json:"keepGenerations"`
		GenerateKey      struct {
			Deps []string `json:"deps"`
			Text string   `json:"text"`
		} `json:"generateKey"`
		SnippetDeps map[string][]string `json:"snippetDeps"`
		Unit        struct {
			Environment map[string]string `json:"environment"`
			Path        []string          `json:"path"`
		} `json:"unit"`
	}
	evalCase(t, "sops-options", &r)
	if len(r.FailedAssertions) > 0 {
		t.Fatalf("failed assertions: %q", r.FailedAssertions)
	}
	fixture, err := os.ReadFile(filepath.Join(repoRoot(t), "nixos", "tests", "fixtures", "secrets.sops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256(fixture)); r.SopsFileHash != want {
		t.Errorf("sopsFileHash %q, want the file's SHA-256 %q", r.SopsFileHash, want)
	}
	if r.ManifestBuild != stubManifest {
		t.Errorf("system.build.sops-nix-manifest is %q, want secretd's checked manifest", r.ManifestBuild)
	}
	if r.KeepGenerations != 0 {
		t.Errorf("keepGenerations %d, want sops-nix's 0 (never prune)", r.KeepGenerations)
	}
	if !strings.Contains(r.GenerateKey.Text, "age-keygen -o /var/lib/sops-nix/key.txt") || !strings.Contains(r.GenerateKey.Text, "if [[ ! -f /var/lib/sops-nix/key.txt ]]") {
		t.Errorf("generate-age-key does not create a missing key file:\n%s", r.GenerateKey.Text)
	}
	bashParses(t, "generate-age-key", r.GenerateKey.Text)
	if !slices.Contains(r.SnippetDeps["setupSecrets"], "secretd") {
		t.Errorf("setupSecrets deps %v: modules ordered after it expect secretd's snippet done", r.SnippetDeps["setupSecrets"])
	}
	if r.Unit.Environment["SOPS_AGE_KEY_CMD"] != "true" || len(r.Unit.Path) != 1 || !strings.HasSuffix(r.Unit.Path[0], "-age-plugin-yubikey") {
		t.Errorf("unit environment %v path %v, want sops.environment and sops.age.plugins", r.Unit.Environment, r.Unit.Path)
	}
	for _, option := range []string{"sops.package", "sops.validationPackage", "sops.useTmpfs", "sops.useSystemdActivation", "sops.log"} {
		if !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.HasPrefix(w, option+" ") }) {
			t.Errorf("no warning about %s: %q", option, r.Warnings)
		}
	}
}

// TestChmodModes: agenix passes `mode` to chmod on a file it made with umask u=r,g=,o= (mode
// 0400); agenixCompat's octal bits for each mode are what the real chmod gives such a file.
func TestChmodModes(t *testing.T) {
	var r struct {
		FailedAssertions []string          `json:"failedAssertions"`
		Modes            map[string]string `json:"modes"`
	}
	evalCase(t, "chmod-modes", &r)
	if len(r.FailedAssertions) > 0 {
		t.Fatalf("failed assertions: %q", r.FailedAssertions)
	}
	chmod, err := exec.LookPath("chmod")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	for mode, got := range r.Modes {
		if err := os.Chmod(file, 0o400); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(chmod, mode, file).CombinedOutput(); err != nil {
			t.Fatalf("chmod %s: %v\n%s", mode, err, out)
		}
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%04o", fi.Mode().Perm()); got != want {
			t.Errorf("mode %q: agenixCompat gives %s, chmod gives %s", mode, got, want)
		}
	}
}

// TestGnuPGHome: with sops.gnupg.home the manifest names the home (keys open PGP recipients
// through gpg), and gpg is on the units' PATH, only then.
func TestGnuPGHome(t *testing.T) {
	r := evalGood(t, "gnupg-home")
	var m struct {
		GnuPGHome string `json:"gnupgHome"`
	}
	if err := json.Unmarshal(r.Manifest, &m); err != nil || m.GnuPGHome != "/var/lib/sops" {
		t.Errorf("manifest gnupgHome %q (%v), want /var/lib/sops", m.GnuPGHome, err)
	}
	u := r.Units["secretd"]
	if !slices.Equal(u.Path, []string{"/nix/store/00000000000000000000000000000000-gnupg"}) {
		t.Errorf("path %v, want gnupg's", u.Path)
	}
	if mounts := anyStrings(u.UnitConfig["RequiresMountsFor"]); !slices.Contains(mounts, "/var/lib/sops") {
		t.Errorf("RequiresMountsFor %v lacks the GnuPG home", mounts)
	}
}
