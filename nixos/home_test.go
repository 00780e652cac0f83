package nixos_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/internal/testenv"
	"github.com/secretd/secretd/manifest"
)

var upstreamCheckouts = flag.String("upstream", "", "regenerate tests/golden/home-manager-upstream.json from checkouts: sops=DIR,agenix=DIR (sops-nix and agenix trees)")

// homeReport is what tests/eval-home.nix reports for a configuration.
type homeReport struct {
	FailedAssertions []string                  `json:"failedAssertions"`
	Warnings         []string                  `json:"warnings"`
	Manifest         json.RawMessage           `json:"manifest"`
	ManifestFile     string                    `json:"manifestFile"`
	CheckCommand     string                    `json:"checkCommand"`
	Placeholders     map[string]string         `json:"placeholders"`
	SecretPaths      map[string]string         `json:"secretPaths"`
	TemplatePaths    map[string]string         `json:"templatePaths"`
	Units            map[string]map[string]any `json:"units"`
	UnitTexts        map[string]string         `json:"unitTexts"`
	Activation       map[string]struct {
		After  []string `json:"after"`
		Before []string `json:"before"`
		Data   string   `json:"data"`
	} `json:"activation"`
	Packages []string       `json:"packages"`
	Compat   *upstreamPaths `json:"compat"`
}

// upstreamPaths is where a module declares each file to be.
type upstreamPaths struct {
	SecretPaths   map[string]string `json:"secretPaths"`
	TemplatePaths map[string]string `json:"templatePaths"`
	SecretsDir    string            `json:"secretsDir"`
	MountPoint    string            `json:"mountPoint"`
	Identities    []string          `json:"identities"`
}

// evalHome evaluates one configuration of tests/eval-home.nix into v.
func evalHome(t *testing.T, name string, v any, args ...string) {
	t.Helper()
	lib := testenv.NixpkgsLib(t)
	instantiate := lookNix(t, "nix-instantiate")
	cmd := exec.Command(instantiate, append([]string{"--eval", "--strict", "--json", "--readonly-mode",
		filepath.Join(repoRoot(t), "nixos", "tests", "eval-home.nix"),
		"--argstr", "nixpkgsLib", lib, "--argstr", "case", name}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("evaluating home case %s: %v\n%s", name, err, stderr.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("home case %s: decoding the evaluation: %v", name, err)
	}
}

func evalHomeGood(t *testing.T, name string) *homeReport {
	t.Helper()
	var r homeReport
	evalHome(t, name, &r)
	if len(r.FailedAssertions) > 0 {
		t.Fatalf("home case %s: unexpected failed assertions:\n%s", name, strings.Join(r.FailedAssertions, "\n"))
	}
	return &r
}

// alice is whom the user's manifests are decoded for, as `secretd activate --user` does.
var alice = manifest.User{RuntimeDir: "/run/user/1000", UID: 1000, GID: 100}

func decodeUserManifest(t *testing.T, raw json.RawMessage) *manifest.Manifest {
	t.Helper()
	m, err := manifest.DecodeUser(raw, alice)
	if err != nil {
		t.Fatalf("the emitted user manifest does not decode: %v\n%s", err, raw)
	}
	return m
}

var fixtureStorePath = regexp.MustCompile(`^/nix/store/[0-9a-z]{32}-`)

func TestHomeManagerManifest(t *testing.T) {
	r := evalHomeGood(t, "home")
	m := decodeUserManifest(t, r.Manifest)

	if m.SecretsDir != "/run/user/1000/secrets" || m.MountPoint != "/run/user/1000/secretd.d" {
		t.Errorf("secretsDir %q, mountPoint %q; want them in the runtime directory", m.SecretsDir, m.MountPoint)
	}
	wantIDs := []string{"/home/alice/.config/sops/age/keys.txt", "/home/alice/.ssh/id_ed25519", "/home/alice/.ssh/id_rsa"}
	if !slices.Equal(m.Identities, wantIDs) {
		t.Errorf("identities %v, want %v", m.Identities, wantIDs)
	}
	npmrc := secretByName(t, m, "npmrc")
	if npmrc.Path != "/home/alice/.npmrc" || npmrc.Mode != "0600" || npmrc.Format != "yaml" || npmrc.Key != "npmrc" || !storeSops.MatchString(npmrc.File) {
		t.Errorf("npmrc: %+v", npmrc)
	}
	gh := secretByName(t, m, "github/oauth_token")
	if gh.Path != "" || !slices.Equal(gh.RestartUnits, []string{"gh-sync.service"}) || *gh.UID != 1000 {
		t.Errorf("github/oauth_token: %+v", gh)
	}
	if got := r.SecretPaths["github/oauth_token"]; got != "${XDG_RUNTIME_DIR}/secrets/github/oauth_token" {
		t.Errorf("secretd.secrets.\"github/oauth_token\".path = %q", got)
	}
	tpl := templateByName(t, m, "gitconfig")
	tok := m.Placeholders["github/oauth_token"]
	if tok == "" || tok != r.Placeholders["github/oauth_token"] || !strings.Contains(tpl.Content, "https://oauth2:"+tok+"@github.com/") || tpl.Path != "/home/alice/.config/git/secrets.inc" {
		t.Errorf("gitconfig %+v, placeholders %v", tpl, m.Placeholders)
	}

	// The manifest's encrypted files and keys pass secretd check, as the build runs it.
	for i := range m.Secrets {
		m.Secrets[i].File = fixtureStorePath.ReplaceAllString(m.Secrets[i].File, filepath.Join(repoRoot(t), "nixos", "tests", "fixtures")+"/")
	}
	if problems := activation.Check(m, nil); len(problems) > 0 {
		t.Errorf("secretd check: %v", problems)
	}
	if !strings.Contains(r.CheckCommand, "/usr/local/bin/secretd check --user --manifest ") {
		t.Errorf("the build does not check the user's manifest: %q", r.CheckCommand)
	}
}

func TestHomeManagerUnit(t *testing.T) {
	r := evalHomeGood(t, "home")
	u, ok := r.Units["secretd"]
	if !ok {
		t.Fatalf("no secretd user unit: %v", r.Units)
	}
	unit := func(section, key string) any { s, _ := u[section].(map[string]any); return s[key] }
	if unit("Service", "Type") != "oneshot" || unit("Service", "ExecStart") != "/usr/local/bin/secretd activate --user --manifest "+r.ManifestFile {
		t.Errorf("Service %v", u["Service"])
	}
	if got := unit("Install", "WantedBy"); !equalAny(got, "default.target") {
		t.Errorf("WantedBy %v, want default.target", got)
	}
	if got := unit("Unit", "Before"); !equalAny(got, "gh-sync.service", "git-maintenance.service") {
		t.Errorf("Before %v, want the user units that consume secrets", got)
	}
	if got := unit("Unit", "X-Restart-Triggers"); !equalAny(got, r.ManifestFile) {
		t.Errorf("X-Restart-Triggers %v, want the manifest", got)
	}
	verifyUserUnit(t, "secretd.service", r.UnitTexts["secretd"])
	a, ok := r.Activation["secretd"]
	if !ok || !slices.Equal(a.After, []string{"reloadSystemd"}) || !strings.Contains(a.Data, "run /run/current-system/sw/bin/systemctl --user restart secretd.service") || !strings.Contains(a.Data, "is-system-running") {
		t.Errorf("home.activation.secretd = %+v; want a restart of the unit after reloadSystemd when the user's manager runs", a)
	}
	if !slices.Equal(r.Packages, []string{"/usr/local"}) {
		t.Errorf("home.packages %v, want secretd", r.Packages)
	}

	var empty homeReport
	evalHome(t, "empty", &empty)
	if len(empty.Units) != 0 || len(empty.Activation) != 0 {
		t.Errorf("without secrets: units %v, activation %v", empty.Units, empty.Activation)
	}
}

// TestHomeFlakeModulesCompose imports homeManagerModules.default next to both compatibility
// modules, as users add them: the package is defined once, and it checks the manifest.
func TestHomeFlakeModulesCompose(t *testing.T) {
	r := evalHomeGood(t, "flake-modules")
	if len(r.Packages) != 1 || !strings.HasSuffix(r.Packages[0], "-secretd-0.1.0") {
		t.Errorf("home.packages %v, want the flake's secretd once", r.Packages)
	}
	if !strings.Contains(r.CheckCommand, "-secretd-0.1.0/bin/secretd check --user --manifest ") {
		t.Errorf("the manifest is not checked by the flake's secretd: %q", r.CheckCommand)
	}
	m := decodeUserManifest(t, r.Manifest)
	if s := secretByName(t, m, "github/oauth_token"); s.Key != "github/oauth_token" {
		t.Errorf("github/oauth_token: %+v", s)
	}
}

func equalAny(v any, want ...string) bool {
	list, ok := v.([]any)
	if !ok {
		return false
	}
	var got []string
	for _, x := range list {
		s, _ := x.(string)
		got = append(got, s)
	}
	sort.Strings(got)
	sort.Strings(want)
	return slices.Equal(got, want)
}

func TestHomeManagerAssertions(t *testing.T) {
	var list struct {
		Bad []string `json:"bad"`
	}
	evalHome(t, "list", &list)
	for _, name := range list.Bad {
		t.Run(name, func(t *testing.T) {
			var r struct {
				Expect           []string `json:"expect"`
				FailedAssertions []string `json:"failedAssertions"`
			}
			evalHome(t, name, &r)
			if len(r.FailedAssertions) != len(r.Expect) {
				t.Errorf("%d assertions failed, want %d:\n%s", len(r.FailedAssertions), len(r.Expect), strings.Join(r.FailedAssertions, "\n"))
			}
			for _, want := range r.Expect {
				if !slices.ContainsFunc(r.FailedAssertions, func(m string) bool { return strings.Contains(m, want) }) {
					t.Errorf("no failed assertion says %q; failed:\n%s", want, strings.Join(r.FailedAssertions, "\n"))
				}
			}
		})
	}
}

const upstreamGolden = "nixos/tests/golden/home-manager-upstream.json"

// TestHomeManagerCompatMatchesUpstream evaluates the compat modules on the configurations that
// sops-nix's and agenix's own home-manager modules were evaluated on (the golden file), and
// checks that every option path agrees and that the manifest puts every file at that path.
// go test ./nixos -run CompatMatchesUpstream -upstream sops=DIR,agenix=DIR regenerates it.
func TestHomeManagerCompatMatchesUpstream(t *testing.T) {
	goldenPath := filepath.Join(repoRoot(t), upstreamGolden)
	if *upstreamCheckouts != "" {
		regenerateUpstream(t, goldenPath)
	}
	data, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string]upstreamPaths
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sops", "agenix"} {
		t.Run(name, func(t *testing.T) {
			want, ok := golden[name]
			if !ok {
				t.Fatalf("%s has no %s entry", upstreamGolden, name)
			}
			r := evalHomeGood(t, name)
			gotJSON, _ := json.Marshal(r.Compat)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("option paths differ from upstream's:\n got  %s\n want %s", gotJSON, wantJSON)
			}
			var raw struct {
				SecretsDir string `json:"secretsDir"`
				MountPoint string `json:"mountPoint"`
			}
			json.Unmarshal(r.Manifest, &raw)
			if raw.SecretsDir != want.SecretsDir || raw.MountPoint != want.MountPoint {
				t.Errorf("manifest secretsDir %q, mountPoint %q; upstream %q, %q", raw.SecretsDir, raw.MountPoint, want.SecretsDir, want.MountPoint)
			}
			m := decodeUserManifest(t, r.Manifest)
			var placed []string
			for _, s := range m.Secrets {
				placed = append(placed, placeOf(s.Path, m.SecretsDir+"/"+s.Name))
			}
			for _, tpl := range m.Templates {
				placed = append(placed, placeOf(tpl.Path, m.SecretsDir+"/rendered/"+tpl.Name))
			}
			var declared []string
			for _, paths := range []map[string]string{want.SecretPaths, want.TemplatePaths} {
				for _, p := range paths {
					declared = append(declared, expandRuntime(p))
				}
			}
			sort.Strings(placed)
			sort.Strings(declared)
			if !slices.Equal(placed, declared) {
				t.Errorf("secretd places files at\n %v\nupstream at\n %v", placed, declared)
			}
		})
	}
}

func placeOf(link, location string) string {
	if link != "" {
		return link
	}
	return location
}

func expandRuntime(p string) string {
	for _, v := range manifest.RuntimeDirVars {
		p = strings.ReplaceAll(p, v, alice.RuntimeDir)
	}
	return p
}

// regenerateUpstream evaluates sops-nix's and agenix's home-manager modules, from checkouts
// outside this repository, on the compat configurations and writes the golden file.
func regenerateUpstream(t *testing.T, goldenPath string) {
	golden := map[string]json.RawMessage{}
	for _, pair := range strings.Split(*upstreamCheckouts, ",") {
		name, dir, ok := strings.Cut(pair, "=")
		if !ok {
			t.Fatalf("-upstream %q: want name=DIR pairs", *upstreamCheckouts)
		}
		var v json.RawMessage
		evalHome(t, "upstream-"+name, &v, "--argstr", "upstream", dir)
		golden[name] = v
	}
	data, err := json.MarshalIndent(golden, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenPath, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// verifyUserUnit runs systemd-analyze --user verify on a user unit, with ExecStart pointed at
// an existing binary, and fails on any complaint.
func verifyUserUnit(t *testing.T, name, text string) {
	t.Run("verify "+name, func(t *testing.T) {
		analyze := testenv.Tool(t, "systemd-analyze", "Debian package systemd")
		dir := t.TempDir()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, stubBinary, "/bin/true")), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(analyze, "--user", "verify", "--man=no", path)
		// A user manager, even the one verify loads, needs a runtime directory.
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze --user verify %s: %v\n%s\n%s", name, err, out, text)
		}
	})
}

// TestGoldenUserUnit keeps vmtest/golden/secretd-user.service, the user unit the VM test runs
// for a lingering user, equal to what nixos/home-manager.nix renders (-update rewrites it).
func TestGoldenUserUnit(t *testing.T) {
	r := evalHomeGood(t, "home")
	text := r.UnitTexts["secretd"]
	if strings.Contains(text, "/nix/store") {
		t.Errorf("the user unit names a store path: the VM has none")
	}
	path := filepath.Join(repoRoot(t), "vmtest", "golden", "secretd-user.service")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./nixos -run Golden -update)", err)
	}
	if string(have) != text {
		t.Errorf("vmtest/golden/secretd-user.service differs from what nixos/home-manager.nix renders (run go test ./nixos -run Golden -update):\n--- golden\n%s\n--- rendered\n%s", have, text)
	}
}
