package nixos_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/secretd/secretd/internal/testenv"
	"github.com/secretd/secretd/manifest"
)

var updateGolden = flag.Bool("update", false, "rewrite vmtest/golden from nixos/module.nix")

// The stub paths that tests/eval.nix gives the package and the checked manifests.
const (
	stubBinary          = "/usr/local/bin/secretd"
	stubManifest        = "/etc/secretd/manifest.json"
	stubManifestForUser = "/etc/secretd/manifest-for-users.json"
)

// evalReport is what tests/eval.nix reports for a configuration.
type evalReport struct {
	FailedAssertions     []string                 `json:"failedAssertions"`
	Manifest             json.RawMessage          `json:"manifest"`
	ManifestForUsers     json.RawMessage          `json:"manifestForUsers"`
	ManifestFile         string                   `json:"manifestFile"`
	ManifestFileForUsers string                   `json:"manifestFileForUsers"`
	CheckCommand         string                   `json:"checkCommand"`
	Placeholders         map[string]string        `json:"placeholders"`
	CredentialNames      map[string]string        `json:"credentialNames"`
	SecretPaths          map[string]string        `json:"secretPaths"`
	Units                map[string]unit          `json:"units"`
	UnitTexts            map[string]string        `json:"unitTexts"`
	ActivationScripts    map[string]activationRun `json:"activationScripts"`
	SystemPackages       []string                 `json:"systemPackages"`
}

type unit struct {
	Description     string         `json:"description"`
	WantedBy        []string       `json:"wantedBy"`
	RequiredBy      []string       `json:"requiredBy"`
	Wants           []string       `json:"wants"`
	Requires        []string       `json:"requires"`
	After           []string       `json:"after"`
	Before          []string       `json:"before"`
	Conflicts       []string       `json:"conflicts"`
	UnitConfig      map[string]any `json:"unitConfig"`
	ServiceConfig   map[string]any `json:"serviceConfig"`
	RestartTriggers []string       `json:"restartTriggers"`
}

type activationRun struct {
	Deps []string `json:"deps"`
	Text string   `json:"text"`
}

// evalCase evaluates one configuration of tests/eval.nix into v.
func evalCase(t *testing.T, name string, v any) {
	t.Helper()
	lib := testenv.NixpkgsLib(t)
	instantiate := lookNix(t, "nix-instantiate")
	root := repoRoot(t)
	cmd := exec.Command(instantiate, "--eval", "--strict", "--json", "--readonly-mode",
		filepath.Join(root, "nixos", "tests", "eval.nix"),
		"--argstr", "nixpkgsLib", lib, "--argstr", "case", name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("evaluating case %s: %v\n%s", name, err, stderr.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("case %s: decoding the evaluation: %v", name, err)
	}
}

// evalGood evaluates a configuration that must pass every assertion.
func evalGood(t *testing.T, name string) *evalReport {
	t.Helper()
	var r evalReport
	evalCase(t, name, &r)
	if len(r.FailedAssertions) > 0 {
		t.Fatalf("case %s: unexpected failed assertions:\n%s", name, strings.Join(r.FailedAssertions, "\n"))
	}
	return &r
}

// decodeManifest decodes as the daemon does, so anything the module emits that the daemon
// would refuse fails here.
func decodeManifest(t *testing.T, raw json.RawMessage) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Decode(raw)
	if err != nil {
		t.Fatalf("the emitted manifest does not decode: %v\n%s", err, raw)
	}
	return m
}

func secretByName(t *testing.T, m *manifest.Manifest, name string) manifest.Secret {
	t.Helper()
	for _, s := range m.Secrets {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no secret %q in the manifest", name)
	return manifest.Secret{}
}

func templateByName(t *testing.T, m *manifest.Manifest, name string) manifest.Template {
	t.Helper()
	for _, tpl := range m.Templates {
		if tpl.Name == name {
			return tpl
		}
	}
	t.Fatalf("no template %q in the manifest", name)
	return manifest.Template{}
}

func names(secrets []manifest.Secret) []string {
	var out []string
	for _, s := range secrets {
		out = append(out, s.Name)
	}
	return out
}

func intp(v int) *int { return &v }

func describeInt(p *int) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// Store paths of the fixtures, as evaluation copies them (nothing is written with
// --readonly-mode).
var (
	storeToken = regexp.MustCompile(`^/nix/store/[0-9a-z]{32}-token\.age$`)
	storeSops  = regexp.MustCompile(`^/nix/store/[0-9a-z]{32}-secrets\.sops\.yaml$`)
)

func TestRealisticManifest(t *testing.T) {
	r := evalGood(t, "realistic")
	m := decodeManifest(t, r.Manifest)

	if m.SecretsDir != "/run/secrets" || m.MountPoint != "/run/secrets.d" || m.KeepGenerations != 2 {
		t.Errorf("secretsDir %q, mountPoint %q, keepGenerations %d; want /run/secrets, /run/secrets.d, 2", m.SecretsDir, m.MountPoint, m.KeepGenerations)
	}
	wantIdentities := []string{"/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ed25519_key"}
	if !slices.Equal(m.Identities, wantIdentities) {
		t.Errorf("identities %v, want the openssh host keys %v", m.Identities, wantIdentities)
	}
	wantNames := []string{"api-token", "github/oauth_token", "gitlab-token", "grafana-db", "npmrc", "tailscale/authkey", "token"}
	if got := names(m.Secrets); !slices.Equal(got, wantNames) {
		t.Errorf("secrets %v, want %v (neededForUsers ones go to the other manifest)", got, wantNames)
	}

	type want struct {
		file         *regexp.Regexp
		format, key  string
		owner, group string
		uid, gid     *int
		mode, path   string
		restart      []string
		reload       []string
	}
	literal := func(s string) *regexp.Regexp { return regexp.MustCompile("^" + regexp.QuoteMeta(s) + "$") }
	cases := map[string]want{
		"token":              {file: storeToken, format: "binary", owner: "nginx", group: "nginx", mode: "0440", restart: []string{"nginx.service"}},
		"github/oauth_token": {file: storeSops, format: "yaml", key: "github/oauth_token", owner: "alice", group: "root", mode: "0400"},
		"gitlab-token":       {file: storeSops, format: "yaml", key: "gitlab/oauth_token", owner: "root", group: "root", mode: "0400", restart: []string{"gitlab-runner.service"}},
		"tailscale/authkey":  {file: storeSops, format: "yaml", key: "tailscale/authkey", owner: "root", group: "root", mode: "0400", restart: []string{"tailscaled.service"}, reload: []string{"tailscaled.service"}},
		"npmrc":              {file: storeSops, format: "yaml", key: "npmrc", owner: "alice", group: "users", mode: "0400", path: "/home/alice/.npmrc"},
		"grafana-db":         {file: storeSops, format: "yaml", key: "number", uid: intp(472), gid: intp(472), mode: "0400"},
		"api-token":          {file: literal("/var/lib/secrets/app.env"), format: "dotenv", key: "API_TOKEN", owner: "root", group: "root", mode: "0400"},
	}
	for name, w := range cases {
		s := secretByName(t, m, name)
		if !w.file.MatchString(s.File) {
			t.Errorf("%s: file %q does not match %s", name, s.File, w.file)
		}
		if s.Format != w.format || s.Key != w.key {
			t.Errorf("%s: format %q key %q, want %q %q", name, s.Format, s.Key, w.format, w.key)
		}
		if s.Owner != w.owner || s.Group != w.group || describeInt(s.UID) != describeInt(w.uid) || describeInt(s.GID) != describeInt(w.gid) {
			t.Errorf("%s: owner %q group %q uid %s gid %s, want %q %q %s %s", name, s.Owner, s.Group, describeInt(s.UID), describeInt(s.GID), w.owner, w.group, describeInt(w.uid), describeInt(w.gid))
		}
		if s.Mode != w.mode || s.Path != w.path {
			t.Errorf("%s: mode %q path %q, want %q %q", name, s.Mode, s.Path, w.mode, w.path)
		}
		if !slices.Equal(s.RestartUnits, w.restart) || !slices.Equal(s.ReloadUnits, w.reload) {
			t.Errorf("%s: restartUnits %v reloadUnits %v, want %v %v", name, s.RestartUnits, s.ReloadUnits, w.restart, w.reload)
		}
	}

	// Every secret has a placeholder for templates; the manifest lists those the templates use.
	if len(r.Placeholders) != 8 {
		t.Errorf("secretd.placeholder has %d entries, want one per secret (8)", len(r.Placeholders))
	}
	for name, tok := range r.Placeholders {
		if manifest.PlaceholderPattern.FindString(tok) != tok {
			t.Errorf("placeholder of %s is %q, not of the form the daemon looks for", name, tok)
		}
	}
	wantUsed := []string{"github/oauth_token", "grafana-db", "token"}
	var used []string
	for name, tok := range m.Placeholders {
		used = append(used, name)
		if tok != r.Placeholders[name] {
			t.Errorf("manifest placeholder of %s is %q, secretd.placeholder says %q", name, tok, r.Placeholders[name])
		}
	}
	slices.Sort(used)
	if !slices.Equal(used, wantUsed) {
		t.Errorf("manifest placeholders %v, want those the templates use %v", used, wantUsed)
	}

	ini := templateByName(t, m, "grafana.ini")
	wantINI := "[database]\npassword = " + r.Placeholders["grafana-db"] + "\n[github]\ntoken = " + r.Placeholders["github/oauth_token"] + "\n"
	if ini.Content != wantINI || ini.Owner != "grafana" || ini.Mode != "0440" || ini.Path != "" || !slices.Equal(ini.RestartUnits, []string{"grafana.service"}) {
		t.Errorf("grafana.ini template: %+v", ini)
	}
	htpasswd := templateByName(t, m, "nginx/htpasswd")
	if htpasswd.Path != "/etc/nginx/htpasswd" || htpasswd.Owner != "nginx" || !slices.Equal(htpasswd.ReloadUnits, []string{"nginx.service"}) {
		t.Errorf("nginx/htpasswd template: %+v", htpasswd)
	}

	forUsers := decodeManifest(t, r.ManifestForUsers)
	if forUsers.SecretsDir != "/run/secrets-for-users" || forUsers.MountPoint != "/run/secrets-for-users.d" {
		t.Errorf("for-users manifest: secretsDir %q mountPoint %q", forUsers.SecretsDir, forUsers.MountPoint)
	}
	if got := names(forUsers.Secrets); !slices.Equal(got, []string{"alice-password"}) || len(forUsers.Templates) != 0 {
		t.Errorf("for-users manifest: secrets %v, %d templates; want [alice-password] and none", got, len(forUsers.Templates))
	}
	pw := secretByName(t, forUsers, "alice-password")
	if pw.Owner != "root" || pw.Group != "root" || pw.Key != "flag" || pw.Format != "yaml" || pw.Path != "" {
		t.Errorf("alice-password: %+v", pw)
	}
	if got := r.SecretPaths["alice-password"]; got != "/run/secrets-for-users/alice-password" {
		t.Errorf("secretd.secrets.alice-password.path = %q, want it under /run/secrets-for-users", got)
	}
	if got := r.SecretPaths["github/oauth_token"]; got != "/run/secrets/github/oauth_token" {
		t.Errorf("default path %q, want /run/secrets/github/oauth_token", got)
	}
	if got := r.SecretPaths["npmrc"]; got != "/home/alice/.npmrc" {
		t.Errorf("npmrc path %q", got)
	}

	if r.ManifestFile != stubManifest || r.ManifestFileForUsers != stubManifestForUser {
		t.Errorf("manifest files %q %q: the checked manifests should be used", r.ManifestFile, r.ManifestFileForUsers)
	}
	wantCheck := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(stubBinary) + ` check --manifest /nix/store/[0-9a-z]{32}-secretd-manifest\.json$`)
	if !wantCheck.MatchString(r.CheckCommand) {
		t.Errorf("the manifest is not checked at build time with secretd check; build command:\n%s", r.CheckCommand)
	}
	if !slices.Contains(r.SystemPackages, "/usr/local") {
		t.Errorf("secretd is not in environment.systemPackages: %v", r.SystemPackages)
	}
}

// namespacingOptions give a unit its own mount namespace, hiding the ramfs it mounts from
// the rest of the system.
var namespacingOptions = []string{
	"ProtectSystem", "ProtectHome", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths",
	"PrivateTmp", "PrivateDevices", "PrivateIPC", "ProtectKernelTunables", "ProtectKernelModules",
	"ProtectKernelLogs", "ProtectControlGroups", "ProtectProc", "ProcSubset", "BindPaths",
	"BindReadOnlyPaths", "TemporaryFileSystem", "RootDirectory", "MountAPIVFS",
}

func checkActivationUnit(t *testing.T, name string, u unit, execStart, trigger string) {
	t.Helper()
	if !slices.Equal(u.WantedBy, []string{"sysinit.target"}) || !slices.Equal(u.RequiredBy, []string{"sysinit-reactivation.target"}) {
		t.Errorf("%s: wantedBy %v requiredBy %v", name, u.WantedBy, u.RequiredBy)
	}
	for _, target := range []string{"sysinit.target", "sysinit-reactivation.target", "shutdown.target"} {
		if !slices.Contains(u.Before, target) {
			t.Errorf("%s: not ordered before %s (before %v)", name, target, u.Before)
		}
	}
	if !slices.Equal(u.Conflicts, []string{"shutdown.target"}) {
		t.Errorf("%s: conflicts %v", name, u.Conflicts)
	}
	if u.UnitConfig["DefaultDependencies"] != false {
		t.Errorf("%s: DefaultDependencies = %v, want false", name, u.UnitConfig["DefaultDependencies"])
	}
	if !slices.Equal(u.RestartTriggers, []string{trigger}) {
		t.Errorf("%s: restartTriggers %v, want [%s]", name, u.RestartTriggers, trigger)
	}
	sc := u.ServiceConfig
	if sc["Type"] != "oneshot" || sc["RemainAfterExit"] != true || sc["ExecStart"] != execStart {
		t.Errorf("%s: Type %v RemainAfterExit %v ExecStart %v; want oneshot, true, %q", name, sc["Type"], sc["RemainAfterExit"], sc["ExecStart"], execStart)
	}
	for _, opt := range namespacingOptions {
		if _, ok := sc[opt]; ok {
			t.Errorf("%s: %s would put the unit in its own mount namespace, hiding the ramfs", name, opt)
		}
	}
	if sc["PrivateNetwork"] == true && sc["PrivateMounts"] != false {
		t.Errorf("%s: PrivateNetwork without PrivateMounts=false implies a mount namespace since systemd 254", name)
	}
	if sc["MountFlags"] != nil {
		t.Errorf("%s: MountFlags = %v", name, sc["MountFlags"])
	}
	if caps, _ := sc["CapabilityBoundingSet"].(string); !strings.Contains(caps, "CAP_SYS_ADMIN") || !strings.Contains(caps, "CAP_CHOWN") {
		t.Errorf("%s: CapabilityBoundingSet %q lacks what mounting and chowning need", name, caps)
	}
	if sc["LimitMEMLOCK"] != "infinity" || sc["UMask"] != "0077" || sc["NoNewPrivileges"] != true {
		t.Errorf("%s: LimitMEMLOCK %v UMask %v NoNewPrivileges %v", name, sc["LimitMEMLOCK"], sc["UMask"], sc["NoNewPrivileges"])
	}
}

func anyStrings(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestRealisticUnits(t *testing.T) {
	r := evalGood(t, "realistic")

	main, ok := r.Units["secretd"]
	if !ok {
		t.Fatal("no secretd service")
	}
	checkActivationUnit(t, "secretd", main, stubBinary+" activate --manifest "+stubManifest, stubManifest)
	if !slices.Equal(main.After, []string{"systemd-sysusers.service"}) {
		t.Errorf("secretd: after %v, want [systemd-sysusers.service] so that owners exist", main.After)
	}
	mounts := anyStrings(main.UnitConfig["RequiresMountsFor"])
	wantMounts := []string{"/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ed25519_key", "/home/alice", "/etc/nginx"}
	if !slices.Equal(mounts, wantMounts) {
		t.Errorf("secretd: RequiresMountsFor %v, want the keys and the symlinks' directories %v", mounts, wantMounts)
	}

	users, ok := r.Units["secretd-for-users"]
	if !ok {
		t.Fatal("no secretd-for-users service although a secret is neededForUsers and sysusers is on")
	}
	checkActivationUnit(t, "secretd-for-users", users, stubBinary+" activate --for-users --manifest "+stubManifestForUser, stubManifestForUser)
	if !slices.Contains(users.Before, "systemd-sysusers.service") || len(users.After) != 0 {
		t.Errorf("secretd-for-users: before %v after %v; want before systemd-sysusers.service", users.Before, users.After)
	}
	if got := anyStrings(users.UnitConfig["RequiresMountsFor"]); !slices.Equal(got, []string{"/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ed25519_key"}) {
		t.Errorf("secretd-for-users: RequiresMountsFor %v", got)
	}
	if _, ok := r.ActivationScripts["secretd-for-users"]; ok {
		t.Error("an activation snippet runs too, although systemd-sysusers creates the users")
	}

	credentials := map[string]string{
		"gitlab-runner": "gitlab-token:/run/secrets/gitlab-token",
		"tailscaled":    "tailscale_authkey:/run/secrets/tailscale/authkey",
	}
	for svc, want := range credentials {
		u, ok := r.Units[svc]
		if !ok {
			t.Errorf("no LoadCredential added to %s", svc)
			continue
		}
		if got := anyStrings(u.ServiceConfig["LoadCredential"]); !slices.Equal(got, []string{want}) {
			t.Errorf("%s: LoadCredential %v, want [%s]", svc, got, want)
		}
		if !slices.Equal(u.After, []string{"secretd.service"}) || !slices.Equal(u.Wants, []string{"secretd.service"}) {
			t.Errorf("%s: after %v wants %v, want secretd.service", svc, u.After, u.Wants)
		}
	}
	if r.CredentialNames["tailscale/authkey"] != "tailscale_authkey" {
		t.Errorf("credentialName of tailscale/authkey is %q", r.CredentialNames["tailscale/authkey"])
	}
	if len(r.Units) != 4 {
		t.Errorf("units %v: want only secretd, secretd-for-users and the two credential users", keys(r.Units))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestClassicUserCreation(t *testing.T) {
	r := evalGood(t, "classic")
	if _, ok := r.Units["secretd-for-users"]; ok {
		t.Error("secretd-for-users.service exists, but the users activation script runs before any unit")
	}
	snippet, ok := r.ActivationScripts["secretd-for-users"]
	if !ok {
		t.Fatal("no secretd-for-users activation snippet")
	}
	if !slices.Equal(snippet.Deps, []string{"specialfs"}) {
		t.Errorf("snippet deps %v, want [specialfs] (it needs /run)", snippet.Deps)
	}
	wantRun := stubBinary + " activate --for-users --manifest " + stubManifestForUser
	if !strings.Contains(snippet.Text, wantRun) {
		t.Errorf("snippet does not run %q:\n%s", wantRun, snippet.Text)
	}
	if !slices.Contains(r.ActivationScripts["users"].Deps, "secretd-for-users") {
		t.Errorf("the users script does not depend on the snippet: deps %v", r.ActivationScripts["users"].Deps)
	}
	if u := r.Units["secretd"]; len(u.After) != 0 {
		t.Errorf("secretd: after %v, want nothing without sysusers or userborn", u.After)
	}
	decodeManifest(t, r.Manifest)
	decodeManifest(t, r.ManifestForUsers)
}

func TestUserborn(t *testing.T) {
	r := evalGood(t, "userborn")
	if !slices.Equal(r.Units["secretd"].After, []string{"userborn.service"}) {
		t.Errorf("secretd: after %v, want [userborn.service]", r.Units["secretd"].After)
	}
	users, ok := r.Units["secretd-for-users"]
	if !ok || !slices.Contains(users.Before, "userborn.service") || slices.Contains(users.Before, "systemd-sysusers.service") {
		t.Errorf("secretd-for-users: present %v, before %v; want before userborn.service only", ok, users.Before)
	}
	if _, ok := r.ActivationScripts["secretd-for-users"]; ok {
		t.Error("activation snippet present with userborn")
	}
}

func TestDisabled(t *testing.T) {
	r := evalGood(t, "disabled")
	if len(r.Units) != 0 || len(r.SystemPackages) != 0 {
		t.Errorf("secretd.enable = false still adds units %v, packages %v", keys(r.Units), r.SystemPackages)
	}
	if _, ok := r.ActivationScripts["secretd-for-users"]; ok {
		t.Error("secretd.enable = false still adds an activation snippet")
	}
}

func TestNothingDeclared(t *testing.T) {
	r := evalGood(t, "empty")
	// The unit still runs, so that removing the last secret also empties /run/secrets.
	if _, ok := r.Units["secretd"]; !ok {
		t.Error("no secretd service when no secret is declared")
	}
	if _, ok := r.Units["secretd-for-users"]; ok {
		t.Error("secretd-for-users service without any neededForUsers secret")
	}
	m := decodeManifest(t, r.Manifest)
	if len(m.Secrets) != 0 || len(m.Templates) != 0 || m.Placeholders != nil {
		t.Errorf("empty configuration gives %d secrets, %d templates, placeholders %v", len(m.Secrets), len(m.Templates), m.Placeholders)
	}
}

func TestFormats(t *testing.T) {
	r := evalGood(t, "formats")
	m := decodeManifest(t, r.Manifest)
	want := map[string][2]string{ // name: format, key
		"inferred-yaml":   {"yaml", "inferred-yaml"},
		"inferred-binary": {"binary", ""},
		"env-file":        {"dotenv", ""},
		"json-file":       {"json", "json-file"},
		"ini-file":        {"ini", "ini-file"},
		"sops-binary":     {"binary", ""},
	}
	for name, w := range want {
		s := secretByName(t, m, name)
		if s.Format != w[0] || s.Key != w[1] {
			t.Errorf("%s: format %q key %q, want %q %q", name, s.Format, s.Key, w[0], w[1])
		}
	}

	r = evalGood(t, "default-format")
	m = decodeManifest(t, r.Manifest)
	for _, name := range []string{"a", "b"} {
		if s := secretByName(t, m, name); s.Format != "json" || s.Key != name {
			t.Errorf("%s: format %q key %q, want defaultFormat json and key %q", name, s.Format, s.Key, name)
		}
	}
	if s := secretByName(t, m, "a"); s.File != "/srv/secrets.json" {
		t.Errorf("a: file %q, want defaultFile", s.File)
	}
}

func TestUndeclaredOwnerWithMutableUsers(t *testing.T) {
	r := evalGood(t, "mutable-unknown-owner")
	s := secretByName(t, decodeManifest(t, r.Manifest), "token")
	if s.Owner != "ghost" || s.Group != "ghosts" {
		t.Errorf("token: owner %q group %q", s.Owner, s.Group)
	}
}

// TestAssertions evaluates each bad configuration of tests/eval.nix on its own and checks it
// fails exactly the assertions it is meant to.
func TestAssertions(t *testing.T) {
	var list struct {
		Bad []string `json:"bad"`
	}
	evalCase(t, "list", &list)
	if len(list.Bad) < 15 {
		t.Fatalf("only %d bad configurations: %v", len(list.Bad), list.Bad)
	}
	for _, name := range list.Bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var r struct {
				Expect           []string `json:"expect"`
				FailedAssertions []string `json:"failedAssertions"`
			}
			evalCase(t, name, &r)
			if len(r.Expect) == 0 {
				t.Fatal("the case expects nothing")
			}
			if len(r.FailedAssertions) != len(r.Expect) {
				t.Errorf("%d assertions failed, want %d:\n%s", len(r.FailedAssertions), len(r.Expect), strings.Join(r.FailedAssertions, "\n"))
			}
			for _, want := range r.Expect {
				found := false
				for _, msg := range r.FailedAssertions {
					found = found || strings.Contains(msg, want)
				}
				if !found {
					t.Errorf("no failed assertion says %q; failed:\n%s", want, strings.Join(r.FailedAssertions, "\n"))
				}
			}
		})
	}
}

var goldenOnce sync.Once

// TestGoldenUnits keeps vmtest/golden, the units the VM test boots, equal to what
// nixos/module.nix renders (go test ./nixos -run Golden -update rewrites them), and checks
// systemd accepts them.
func TestGoldenUnits(t *testing.T) {
	r := evalGood(t, "golden")
	dir := filepath.Join(repoRoot(t), "vmtest", "golden")
	for _, name := range []string{"secretd", "secretd-for-users"} {
		text, ok := r.UnitTexts[name]
		if !ok {
			t.Fatalf("the golden configuration has no %s unit", name)
		}
		if strings.Contains(text, "/nix/store") {
			t.Errorf("%s.service names a store path: the VM has none", name)
		}
		path := filepath.Join(dir, name+".service")
		if *updateGolden {
			goldenOnce.Do(func() {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			})
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./nixos -run Golden -update)", err)
		}
		if string(have) != text {
			t.Errorf("vmtest/golden/%s.service differs from what nixos/module.nix renders (run go test ./nixos -run Golden -update):\n--- golden\n%s\n--- rendered\n%s", name, have, text)
		}
		verifyUnit(t, name+".service", text)
	}
}

// verifyUnit runs systemd-analyze verify on a unit, with ExecStart pointed at an existing
// binary, and fails on any complaint (an unknown or misspelt setting is only a warning).
func verifyUnit(t *testing.T, name, text string) {
	t.Run("verify "+name, func(t *testing.T) {
		analyze := testenv.Tool(t, "systemd-analyze", "Debian package systemd")
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, stubBinary, "/bin/true")), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
	})
}

func TestAgenixCompat(t *testing.T) {
	r := evalGood(t, "agenix-compat")
	m := decodeManifest(t, r.Manifest)
	if m.SecretsDir != "/run/agenix" || m.MountPoint != "/run/agenix.d" {
		t.Errorf("secretsDir %q mountPoint %q, want agenix's /run/agenix and /run/agenix.d", m.SecretsDir, m.MountPoint)
	}
	token := secretByName(t, m, "token")
	if !storeToken.MatchString(token.File) || token.Format != "binary" || token.Key != "" || token.Owner != "" || describeInt(token.UID) != "0" || describeInt(token.GID) != "0" || token.Path != "" {
		t.Errorf("token (agenix defaults: owner and group \"0\"): %+v uid %s gid %s", token, describeInt(token.UID), describeInt(token.GID))
	}
	nginx := secretByName(t, m, "nginx-token")
	if nginx.Owner != "nginx" || nginx.Group != "nginx" || nginx.Mode != "0440" || nginx.Path != "/etc/nginx/token" {
		t.Errorf("nginx-token (group defaults to the owner's): %+v", nginx)
	}
	if _, ok := r.Units["secretd"]; !ok {
		t.Error("age.secrets do not enable secretd")
	}
}

func TestSopsCompat(t *testing.T) {
	r := evalGood(t, "sops-compat")
	m := decodeManifest(t, r.Manifest)
	// The key file is given as a Nix path: it must stay where it is, not be copied to the store.
	if m.SecretsDir != "/run/secrets" || !slices.Equal(m.Identities, []string{"/etc/ssh/ssh_host_ed25519_key", "/var/lib/sops-nix/key.txt"}) {
		t.Errorf("secretsDir %q identities %v, want /run/secrets, sops-nix's ed25519 host key and age.keyFile", m.SecretsDir, m.Identities)
	}
	gh := secretByName(t, m, "github/oauth_token")
	if !storeSops.MatchString(gh.File) || gh.Format != "yaml" || gh.Key != "github/oauth_token" || gh.Owner != "grafana" || gh.Group != "grafana" || gh.UID != nil || !slices.Equal(gh.RestartUnits, []string{"grafana.service"}) {
		t.Errorf("github/oauth_token: %+v", gh)
	}
	blob := secretByName(t, m, "blob")
	if blob.Format != "binary" || blob.Key != "" || blob.File != "/srv/blob.sops.json" || describeInt(blob.UID) != "0" || blob.Owner != "" {
		t.Errorf("blob: %+v uid %s", blob, describeInt(blob.UID))
	}
	pw := secretByName(t, decodeManifest(t, r.ManifestForUsers), "root-pw")
	if pw.Key != "flag" || describeInt(pw.UID) != "0" {
		t.Errorf("root-pw: %+v", pw)
	}
	tpl := templateByName(t, m, "grafana.ini")
	tok := m.Placeholders["github/oauth_token"]
	if tok == "" || tpl.Content != "token="+tok || tpl.Owner != "grafana" || tpl.Path != "" {
		t.Errorf("grafana.ini %+v, placeholders %v: sops.placeholder must be secretd's", tpl, m.Placeholders)
	}
	if _, ok := r.ActivationScripts["secretd-for-users"]; !ok {
		t.Error("neededForUsers through sops.secrets gives no activation snippet")
	}
}
