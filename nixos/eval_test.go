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
	Warnings             []string                 `json:"warnings"`
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
	Path            []string       `json:"path"`
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
		"api-token":          {file: literal("/var/lib/secrets/app.env"), format: "dotenv", key: "API_TOKEN", owner: "root", group: "root", mode: "0400", path: "/etc/app/token"},
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
	// Inactive once done, so that restarting sysinit-reactivation.target reruns it on every switch.
	if sc["Type"] != "oneshot" || sc["RemainAfterExit"] != false || sc["ExecStart"] != execStart {
		t.Errorf("%s: Type %v RemainAfterExit %v ExecStart %v; want oneshot, false, %q", name, sc["Type"], sc["RemainAfterExit"], sc["ExecStart"], execStart)
	}
	if !slices.Contains(u.After, "local-fs.target") {
		t.Errorf("%s: not after local-fs.target (after %v), where identities on service-mounted file systems appear", name, u.After)
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
	if !slices.Equal(main.After, []string{"local-fs.target", "userborn.service"}) {
		t.Errorf("secretd: after %v, want [local-fs.target userborn.service] so that owners exist", main.After)
	}
	for _, consumer := range []string{"nginx.service", "grafana.service", "gitlab-runner.service", "tailscaled.service"} {
		if !slices.Contains(main.Before, consumer) {
			t.Errorf("secretd: not before %s, which reads its secrets (before %v)", consumer, main.Before)
		}
	}
	mounts := anyStrings(main.UnitConfig["RequiresMountsFor"])
	wantMounts := []string{"/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ed25519_key", "/etc/app", "/home/alice", "/etc/nginx"}
	if !slices.Equal(mounts, wantMounts) {
		t.Errorf("secretd: RequiresMountsFor %v, want the keys and the directories of the symlinks and copies %v", mounts, wantMounts)
	}

	users, ok := r.Units["secretd-for-users"]
	if !ok {
		t.Fatal("no secretd-for-users service although a secret is neededForUsers and sysusers is on")
	}
	checkActivationUnit(t, "secretd-for-users", users, stubBinary+" activate --for-users --manifest "+stubManifestForUser, stubManifestForUser)
	if !slices.Contains(users.Before, "userborn.service") || !slices.Equal(users.After, []string{"local-fs.target"}) {
		t.Errorf("secretd-for-users: before %v after %v; want before userborn.service, after local-fs.target only", users.Before, users.After)
	}
	if got := anyStrings(users.UnitConfig["RequiresMountsFor"]); !slices.Equal(got, []string{"/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ed25519_key"}) {
		t.Errorf("secretd-for-users: RequiresMountsFor %v", got)
	}
	if _, ok := r.ActivationScripts["secretd-for-users"]; ok {
		t.Error("an activation snippet runs too, although userborn creates the users")
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
		// Not wanted: starting the consumer would rerun secretd.service, inactive once done.
		if !slices.Equal(u.After, []string{"secretd.service"}) || len(u.Wants) != 0 {
			t.Errorf("%s: after %v wants %v, want after secretd.service only", svc, u.After, u.Wants)
		}
	}
	if r.CredentialNames["tailscale/authkey"] != "tailscale_authkey" {
		t.Errorf("credentialName of tailscale/authkey is %q", r.CredentialNames["tailscale/authkey"])
	}
	if want := []string{"gitlab-runner", "grafana", "nginx", "secretd", "secretd-for-users", "tailscaled"}; !slices.Equal(keys(r.Units), want) {
		t.Errorf("units %v, want %v: the module adds no unit but its own", keys(r.Units), want)
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
	bashParses(t, "secretd-for-users", snippet.Text)
	wantRun := stubBinary + " activate --for-users --manifest " + stubManifestForUser
	if !strings.Contains(snippet.Text, wantRun) {
		t.Errorf("snippet does not run %q:\n%s", wantRun, snippet.Text)
	}
	if !slices.Contains(r.ActivationScripts["users"].Deps, "secretd-for-users") {
		t.Errorf("the users script does not depend on the snippet: deps %v", r.ActivationScripts["users"].Deps)
	}
	if u := r.Units["secretd"]; !slices.Equal(u.After, []string{"local-fs.target"}) {
		t.Errorf("secretd: after %v, want local-fs.target only without sysusers or userborn", u.After)
	}
	if !strings.Contains(snippet.Text, "--no-signal") {
		t.Errorf("the snippet may restart units before switch-to-configuration reloaded systemd:\n%s", snippet.Text)
	}
	dry, ok := r.ActivationScripts["secretd"]
	if !ok || !strings.Contains(dry.Text, "dry-activate") || !strings.Contains(dry.Text, stubBinary+" activate --dry-run --manifest "+stubManifest) {
		t.Errorf("no snippet printing secretd's dry run under nixos-rebuild dry-activate: %+v", dry)
	}
	decodeManifest(t, r.Manifest)
	decodeManifest(t, r.ManifestForUsers)
}

func TestUserborn(t *testing.T) {
	r := evalGood(t, "userborn")
	if !slices.Equal(r.Units["secretd"].After, []string{"local-fs.target", "userborn.service"}) {
		t.Errorf("secretd: after %v, want [local-fs.target userborn.service]", r.Units["secretd"].After)
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
	if m.SecretsDir != "/run/secrets" || !slices.Equal(m.Identities, []string{"/etc/ssh/ssh_host_ed25519_key", "/var/lib/sops-nix/key.txt", "/etc/ssh/ssh_host_rsa_key"}) {
		t.Errorf("secretsDir %q identities %v, want /run/secrets, sops-nix's ed25519 host key, age.keyFile and its RSA host key for PGP", m.SecretsDir, m.Identities)
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

// TestEarlyReaders: secretd.service is ordered before the units that restart on its secrets
// and before units without default dependencies (started before sysinit.target) that name a
// secret's path, but not before ordinary units that do.
func TestEarlyReaders(t *testing.T) {
	r := evalGood(t, "early-readers")
	before := r.Units["secretd"].Before
	for _, want := range []string{"app.service", "wg-setup.service"} {
		if !slices.Contains(before, want) {
			t.Errorf("secretd: not before %s (before %v)", want, before)
		}
	}
	if !slices.Contains(before, "systemd-networkd.service") {
		t.Errorf("secretd: not before systemd-networkd.service, which reads a WireGuard key from it (before %v)", before)
	}
	if slices.Contains(before, "wireguard-*") {
		t.Errorf("secretd: before the pattern wireguard-*, which NixOS refuses as a unit name")
	}
	if slices.Contains(before, "late-reader.service") {
		t.Errorf("secretd: before late-reader.service, which starts after sysinit.target anyway")
	}
}

// TestFlakeModulesCompose imports nixosModules.default next to both compatibility modules, as
// users add them: the package is defined once, and the build-time check runs validationPackage.
func TestFlakeModulesCompose(t *testing.T) {
	r := evalGood(t, "flake-modules")
	if len(r.SystemPackages) != 1 || !strings.HasSuffix(r.SystemPackages[0], "-secretd-0.1.0") {
		t.Errorf("system packages %v, want the flake's secretd once", r.SystemPackages)
	}
	if !strings.Contains(r.CheckCommand, "secretd check --manifest") {
		t.Errorf("the manifest is not checked: %q", r.CheckCommand)
	}
	m := decodeManifest(t, r.Manifest)
	if s := secretByName(t, m, "github/oauth_token"); s.Key != "github/oauth_token" {
		t.Errorf("github/oauth_token: %+v", s)
	}
}

func TestPlugins(t *testing.T) {
	r := evalGood(t, "plugins")
	u := r.Units["secretd"]
	if u.ServiceConfig["DevicePolicy"] != "auto" {
		t.Errorf("DevicePolicy %v with plugins, want auto so they reach their devices", u.ServiceConfig["DevicePolicy"])
	}
	if !slices.ContainsFunc(u.Path, func(p string) bool { return strings.HasSuffix(p, "-age-plugin-yubikey") }) {
		t.Errorf("path %v lacks the plugin", u.Path)
	}
	if r := evalGood(t, "empty"); r.Units["secretd"].ServiceConfig["DevicePolicy"] != "closed" || len(r.Units["secretd"].Path) != 0 {
		t.Errorf("without plugins: DevicePolicy %v path %v, want closed and none", r.Units["secretd"].ServiceConfig["DevicePolicy"], r.Units["secretd"].Path)
	}
}

func TestCrossValidation(t *testing.T) {
	if r := evalGood(t, "cross"); !strings.HasPrefix(r.CheckCommand, "/usr/local/build/bin/secretd check") {
		t.Errorf("a cross-compiled system checks its manifest with %q, want the build platform's secretd", r.CheckCommand)
	}
	if r := evalGood(t, "empty"); !strings.HasPrefix(r.CheckCommand, stubBinary+" check") {
		t.Errorf("a native system checks its manifest with %q, want its own secretd", r.CheckCommand)
	}
}

func TestLatePasswordFileWarns(t *testing.T) {
	r := evalGood(t, "late-password")
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], `secretd.secrets."bob-password" is a user's hashedPasswordFile but not neededForUsers`) {
		t.Errorf("warnings %q", r.Warnings)
	}
	if r := evalGood(t, "realistic"); len(r.Warnings) != 0 {
		t.Errorf("a neededForUsers password file draws warnings %q", r.Warnings)
	}
}

// bashParses fails when an activation snippet is not valid bash (the activation script is).
func bashParses(t *testing.T, name, text string) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	cmd := exec.Command(bash, "-n")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("snippet %s is not valid bash: %v\n%s\n%s", name, err, out, text)
	}
}

// TestPackageNeedsGoOfGoMod: with a nixpkgs whose Go is older than go.mod's, package.nix fails
// saying which Go it needs, instead of a toolchain download refused in the build sandbox.
func TestPackageNeedsGoOfGoMod(t *testing.T) {
	lib := testenv.NixpkgsLib(t)
	instantiate := lookNix(t, "nix-instantiate")
	pkg := filepath.Join(repoRoot(t), "nixos", "package.nix")
	eval := func(goVersion string) (string, error) {
		expr := fmt.Sprintf(`let lib = import %s; in (import %s {
			inherit lib; vendorHash = null; go = { version = %q; };
			buildGoModule = args: args.pname + "-" + args.version; })`, lib, pkg, goVersion)
		out, err := exec.Command(instantiate, "--eval", "--strict", "--readonly-mode", "-E", expr).CombinedOutput()
		return string(out), err
	}
	if out, err := eval("1.20.4"); err == nil || !strings.Contains(out, "secretd needs Go") || !strings.Contains(out, "this nixpkgs has Go 1.20.4") {
		t.Errorf("Go 1.20.4: %v\n%s", err, out)
	}
	if out, err := eval("99.0"); err != nil || !strings.Contains(out, "secretd-0.1.0") {
		t.Errorf("Go 99.0: %v\n%s", err, out)
	}
}

// TestCopies: symlink = false asks for a copy at path (the manifest's "symlink": false); a
// secret left where secretd puts it needs neither.
func TestCopies(t *testing.T) {
	r := evalGood(t, "copies")
	var m struct {
		Secrets []map[string]any `json:"secrets"`
	}
	if err := json.Unmarshal(r.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{
		"copied":        {"path": "/etc/app/token", "symlink": false},
		"linked":        {"path": "/etc/app/linked"},
		"default-place": {},
	}
	for _, s := range m.Secrets {
		name, _ := s["name"].(string)
		w, ok := want[name]
		if !ok {
			t.Errorf("unexpected secret %q", name)
			continue
		}
		for _, field := range []string{"path", "symlink"} {
			if s[field] != w[field] {
				t.Errorf("%s: %s = %v, want %v", name, field, s[field], w[field])
			}
		}
	}
	if mounts := anyStrings(r.Units["secretd"].UnitConfig["RequiresMountsFor"]); !slices.Contains(mounts, "/etc/app") {
		t.Errorf("RequiresMountsFor %v lacks the copy's directory", mounts)
	}
}
