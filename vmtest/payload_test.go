package vmtest_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/vmtest/internal/vm"
)

// Guest paths shared with testdata/guest/run.sh.
const (
	guestData    = "/var/lib/vmtest"
	guestSecrets = guestData + "/secrets"
	guestLib     = "/usr/local/lib/vmtest"
	unitDir      = "/etc/systemd/system"
	hostKeyPath  = "/etc/ssh/ssh_host_ed25519_key"
	// wg-key's encrypted file lives outside the store: the switch scenario rewrites it in
	// place, with the manifest unchanged.
	wgKeyFile = guestData + "/external/wg-key.age"
)

// activationUnit is secretd.service or secretd-for-users.service with what its ExecStart
// needs in place: the binary and the manifest, at the paths the unit names.
type activationUnit struct {
	name     string
	text     []byte
	source   string
	binary   string
	manifest string
}

// loadActivationUnits takes the units rendered from nixos/module.nix (vmtest/golden), so
// the VM runs exactly what NixOS would.
func loadActivationUnits(t *testing.T, here string) map[string]*activationUnit {
	t.Helper()
	out := map[string]*activationUnit{}
	for _, name := range []string{"secretd.service", "secretd-for-users.service"} {
		path := filepath.Join(here, "golden", name)
		text := readFile(t, path)
		binary, manifestPath, err := parseExecStart(text)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rel, _ := filepath.Rel(here, path)
		out[name] = &activationUnit{name: name, text: text, source: "vmtest/" + rel, binary: binary, manifest: manifestPath}
	}
	return out
}

// parseExecStart finds the secretd binary and the --manifest argument of a unit's
// ExecStart.
func parseExecStart(unit []byte) (binary, manifestPath string, err error) {
	for _, line := range strings.Split(string(unit), "\n") {
		value, ok := strings.CutPrefix(strings.TrimSpace(line), "ExecStart=")
		if !ok {
			continue
		}
		fields := strings.Fields(strings.Trim(value, `"`))
		if len(fields) == 0 {
			continue
		}
		binary = strings.TrimLeft(fields[0], "@-:+!")
		for i, f := range fields {
			if f == "--manifest" && i+1 < len(fields) {
				manifestPath = strings.Trim(fields[i+1], `"`)
			} else if v, ok := strings.CutPrefix(f, "--manifest="); ok {
				manifestPath = strings.Trim(v, `"`)
			}
		}
	}
	if binary == "" || manifestPath == "" || !filepath.IsAbs(binary) || !filepath.IsAbs(manifestPath) {
		return "", "", fmt.Errorf("no ExecStart with an absolute binary and --manifest PATH (binary %q, manifest %q)", binary, manifestPath)
	}
	return binary, manifestPath, nil
}

// secretFile is one encrypted file shipped to the guest with the hash of its plaintext.
type secretFile struct {
	guestPath string
	sha256    string
}

// testSecrets makes fresh throwaway values, encrypts them with the age CLI to the run's
// host key (or to a key the guest lacks) and returns them by label. Plaintext stays in a
// private temp dir and leaves this function only as hashes.
type testSecrets struct {
	t        *testing.T
	dir      string
	hostPub  string
	otherPub string
	files    map[string]secretFile
	payload  *vm.Payload
}

func (s *testSecrets) add(label string, plaintext []byte, recipient string) {
	s.t.Helper()
	s.addAt(label, guestSecrets+"/"+label+".age", plaintext, recipient)
}

// addAt is add with the encrypted file at guest, such as a path outside the store that a
// switch rewrites in place.
func (s *testSecrets) addAt(label, guest string, plaintext []byte, recipient string) {
	s.t.Helper()
	plain := filepath.Join(s.dir, label+".txt")
	if err := os.WriteFile(plain, plaintext, 0o600); err != nil {
		s.t.Fatal(err)
	}
	enc := filepath.Join(s.dir, label+".age")
	if out, err := exec.Command("age", "-R", recipient, "-o", enc, plain).CombinedOutput(); err != nil {
		s.t.Fatalf("age -R: %v\n%s", err, out)
	}
	if err := os.Remove(plain); err != nil {
		s.t.Fatal(err)
	}
	if err := s.payload.File(guest, 0o644, readFile(s.t, enc)); err != nil {
		s.t.Fatal(err)
	}
	sum := sha256.Sum256(plaintext)
	s.files[label] = secretFile{guestPath: guest, sha256: hex.EncodeToString(sum[:])}
}

func randomText(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return []byte(hex.EncodeToString(b))
}

// randomShadowHash makes a well-formed SHA-512 crypt string; no password hashes to it, which
// is fine for checking that it lands in /etc/shadow unchanged.
func randomShadowHash(t *testing.T) []byte {
	const alphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	pick := func(n int) string {
		var sb strings.Builder
		for range n {
			i, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
			if err != nil {
				t.Fatal(err)
			}
			sb.WriteByte(alphabet[i.Int64()])
		}
		return sb.String()
	}
	return []byte("$6$" + pick(16) + "$" + pick(86))
}

// output is a secret in a manifest together with what the guest should find.
type output struct {
	name, label, owner, group, mode string
	restart, reload                 []string
	// copyTo is a path that gets a copy of the file (symlink = false), not a symlink.
	copyTo string
}

func (o output) secret(files map[string]secretFile) manifest.Secret {
	s := manifest.Secret{Name: o.name, File: files[o.label].guestPath, Format: manifest.FormatBinary}
	s.Owner, s.Group, s.Mode = o.owner, o.group, o.mode
	s.RestartUnits, s.ReloadUnits = o.restart, o.reload
	if o.copyTo != "" {
		symlink := false
		s.Path, s.Symlink = o.copyTo, &symlink
	}
	return s
}

// versions returns the manifests the guest activates in turn: v1 at boot, v2 rotates two
// secrets, v3 changes one mode only, v4 adds a secret the host key cannot decrypt.
func versions() map[string][]output {
	v1 := []output{
		{name: "db-password", label: "db-password-1", owner: "root", group: "root", mode: "0400", restart: []string{"app-restart.service"}},
		{name: "api-token", label: "api-token-1", owner: "root", group: "svcgrp", mode: "0440", reload: []string{"app-reload.service"}},
		{name: "static-key", label: "static-key", owner: "svcuser", group: "svcgrp", mode: "0400", restart: []string{"app-static.service"}},
		{name: "owned-cert", label: "owned-cert", owner: "svcuser", group: "svcgrp", mode: "0440", restart: []string{"app-owner.service"}},
		{name: "tls/server.key", label: "tls-server-key", owner: "root", group: "root", mode: "0400"},
		// Read at start by vmtest-early.service, an early-boot unit (DefaultDependencies=no).
		{name: "wg-key", label: "wg-key-1", owner: "root", group: "root", mode: "0400", restart: []string{"vmtest-early.service"}},
	}
	v2 := replace(v1, "db-password", func(o *output) { o.label = "db-password-2" })
	v2 = replace(v2, "api-token", func(o *output) { o.label = "api-token-2" })
	v3 := replace(v2, "owned-cert", func(o *output) { o.mode = "0400" })
	v4 := append(slices.Clone(v3), output{name: "undecryptable-token", label: "undecryptable", owner: "root", group: "root", mode: "0400"})
	return map[string][]output{"v1": v1, "v2": v2, "v3": v3, "v4": v4}
}

// switchedExpectation is v3 once the switch scenario has rewritten wg-key's encrypted file
// (outside the store, same path) with wg-key-2: the manifest is still v3.
func switchedExpectation() []output {
	return replace(versions()["v3"], "wg-key", func(o *output) { o.label = "wg-key-2" })
}

func replace(in []output, name string, change func(*output)) []output {
	out := make([]output, len(in))
	copy(out, in)
	for i := range out {
		if out[i].name == name {
			change(&out[i])
		}
	}
	return out
}

var forUsersOutputs = []output{
	{name: "alice-password", label: "alice-password", owner: "root", group: "root", mode: "0400"},
}

// The agenix scenario's secrets, as agenixCompat turns age.secrets into a manifest: all in
// /run/agenix; bob-password is a user's hashedPasswordFile, so it is also in the for-users
// manifest that the activation snippet runs before users are created.
var (
	agenixForUsers = []output{{name: "bob-password", label: "bob-password", owner: "root", group: "root", mode: "0400"}}
	agenixAll      = append(slices.Clone(agenixForUsers), output{name: "app-token", label: "static-key", owner: "svcuser", group: "svcgrp", mode: "0440"})
)

// The symlink-migration scenario: agenix left a regular file at app-config's path (agenix's
// symlink = false); the agenix configuration, now on secretd, keeps symlink = false.
const appConfigPath = "/var/lib/app/config"

func agenixCopy(label string) []output {
	return append(slices.Clone(agenixAll), output{name: "app-config", label: label, owner: "svcuser", group: "svcgrp", mode: "0440", copyTo: appConfigPath})
}

const (
	agenixDir        = "/run/agenix"
	agenixMountPoint = "/run/agenix.d"
)

func manifestJSON(t *testing.T, secretsDir, mountPoint string, outs []output, files map[string]secretFile) []byte {
	t.Helper()
	m := manifest.Manifest{
		Version:         manifest.Version,
		SecretsDir:      secretsDir,
		MountPoint:      mountPoint,
		KeepGenerations: 1,
		Identities:      []string{hostKeyPath},
		Templates:       []manifest.Template{},
	}
	for _, o := range outs {
		m.Secrets = append(m.Secrets, o.secret(files))
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.Decode(data); err != nil {
		t.Fatalf("test manifest is invalid: %v", err)
	}
	return data
}

// expectation lists NAME OWNER GROUP MODE SHA256 for the guest's check_set.
func expectation(outs []output, files map[string]secretFile) []byte {
	var sb strings.Builder
	for _, o := range outs {
		fmt.Fprintf(&sb, "%s %s %s %s %s\n", o.name, o.owner, o.group, o.mode, files[o.label].sha256)
	}
	return []byte(sb.String())
}

// Where the guest's runner reports: "vm" to serial ports, "nspawn" to files on its disk.
const (
	tierVM     = "vm"
	tierNspawn = "nspawn"
	// outDir holds the runner's reports in a container, read by the host afterwards.
	outDir = guestData + "/out"
)

// buildPayload assembles everything a run ships to the guest.
func buildPayload(t *testing.T, here, work, tier, secretd string, units map[string]*activationUnit, kernelRelease string, watchdog time.Duration) *vm.Payload {
	t.Helper()
	p := vm.NewPayload()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	keys := filepath.Join(work, "keys")
	must(os.Mkdir(keys, 0o700))
	hostKey := filepath.Join(keys, "host")
	otherKey := filepath.Join(keys, "other")
	for _, k := range []string{hostKey, otherKey} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vmtest", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	must(p.File(hostKeyPath, 0o600, readFile(t, hostKey)))
	must(p.File(hostKeyPath+".pub", 0o644, readFile(t, hostKey+".pub")))

	plainDir := filepath.Join(work, "plain")
	must(os.Mkdir(plainDir, 0o700))
	s := &testSecrets{t: t, dir: plainDir, hostPub: hostKey + ".pub", otherPub: otherKey + ".pub", files: map[string]secretFile{}, payload: p}
	for _, label := range []string{"db-password-1", "db-password-2", "api-token-1", "api-token-2", "static-key", "owned-cert", "tls-server-key", "wg-key-2"} {
		s.add(label, randomText(t, 24), s.hostPub)
	}
	s.addAt("wg-key-1", wgKeyFile, randomText(t, 24), s.hostPub)
	s.add("undecryptable", randomText(t, 24), s.otherPub)
	s.add("alice-password", randomShadowHash(t), s.hostPub)
	s.add("bob-password", randomShadowHash(t), s.hostPub)
	s.add("app-config-1", randomText(t, 24), s.hostPub)
	s.add("app-config-2", randomText(t, 24), s.hostPub)

	vs := versions()
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		must(p.File(guestData+"/manifests/"+v+".json", 0o644, manifestJSON(t, "/run/secrets", "/run/secrets.d", vs[v], s.files)))
		if v != "v4" {
			must(p.File(guestData+"/expect/"+v, 0o644, expectation(vs[v], s.files)))
		}
	}
	must(p.File(guestData+"/expect/switched", 0o644, expectation(switchedExpectation(), s.files)))
	must(p.File(guestData+"/expect/for-users", 0o644, expectation(forUsersOutputs, s.files)))
	must(p.File(guestData+"/manifests/agenix-for-users.json", 0o644, manifestJSON(t, agenixDir, agenixMountPoint, agenixForUsers, s.files)))
	must(p.File(guestData+"/manifests/agenix.json", 0o644, manifestJSON(t, agenixDir, agenixMountPoint, agenixAll, s.files)))
	must(p.File(guestData+"/expect/agenix-for-users", 0o644, expectation(agenixForUsers, s.files)))
	must(p.File(guestData+"/expect/agenix", 0o644, expectation(agenixAll, s.files)))
	for _, v := range []string{"1", "2"} {
		outs := agenixCopy("app-config-" + v)
		must(p.File(guestData+"/manifests/agenix-copy-"+v+".json", 0o644, manifestJSON(t, agenixDir, agenixMountPoint, outs, s.files)))
		must(p.File(guestData+"/expect/agenix-copy-"+v, 0o644, expectation(outs, s.files)))
	}
	// What agenix leaves at a symlink = false path: a regular file, root's until its chown.
	must(p.File(appConfigPath, 0o400, []byte("written by agenix\n")))

	main, forUsers := units["secretd.service"], units["secretd-for-users.service"]
	if main.binary != forUsers.binary {
		must(p.File(forUsers.binary, 0o755, readFile(t, secretd)))
	}
	must(p.File(main.binary, 0o755, readFile(t, secretd)))
	must(p.File(main.manifest, 0o644, manifestJSON(t, "/run/secrets", "/run/secrets.d", vs["v1"], s.files)))
	must(p.File(forUsers.manifest, 0o644, manifestJSON(t, "/run/secrets-for-users", "/run/secrets-for-users.d", forUsersOutputs, s.files)))

	userManifest := addHomePayload(t, p, s, here, secretd, main.binary)
	config := fmt.Sprintf("TIER=%s\nSECRETD=%s\nMANIFEST=%s\nUSER_MANIFEST=%s\nHOME_USER=%s\nKERNEL_RELEASE=%s\nWATCHDOG=%d\n",
		tier, main.binary, main.manifest, userManifest, homeUser, kernelRelease, int(watchdog.Seconds()))
	if tier == tierNspawn {
		config += fmt.Sprintf("RESULTS=%s/results.log\nJOURNAL_OUT=%s/journal.log\n", outDir, outDir)
		must(p.Dir(outDir, 0o755))
	}
	must(p.File(guestData+"/config", 0o644, []byte(config)))
	var planText strings.Builder
	for _, sc := range plan {
		fmt.Fprintf(&planText, "%d %s\n", sc.boot, sc.name)
	}
	must(p.File(guestData+"/plan", 0o644, []byte(planText.String())))
	must(p.File(guestLib+"/run.sh", 0o755, readFile(t, filepath.Join(here, "testdata/guest/run.sh"))))
	for _, script := range []string{"probe.sh", "early.sh", "activation.sh"} {
		must(p.File(guestLib+"/"+script, 0o755, readFile(t, filepath.Join(here, "testdata/guest", script))))
	}
	must(p.File("/etc/sysusers.d/vmtest-alice.conf", 0o644, []byte("u alice - \"for-users test user\" /home/alice /bin/sh\n")))

	// The activation units have no [Install] section when rendered by NixOS, which enables
	// them with symlinks; do the same.
	for _, u := range []*activationUnit{main, forUsers} {
		must(p.File(unitDir+"/"+u.name, 0o644, u.text))
		enable(t, p, unitDir, u.name, u.text)
	}
	addUnitTree(t, p, filepath.Join(here, "testdata/units"))
	return p
}

// enable makes the .wants and .requires symlinks of a unit's WantedBy= and RequiredBy=, as
// systemctl enable (and NixOS) do.
func enable(t *testing.T, p *vm.Payload, dir, name string, unit []byte) {
	t.Helper()
	for key, suffix := range map[string]string{"WantedBy": ".wants", "RequiredBy": ".requires"} {
		for _, target := range installedBy(unit, key) {
			if err := p.Symlink(dir+"/"+target+suffix+"/"+name, dir+"/"+name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// addUnitTree copies unit files and drop-in directories to /etc/systemd/system and enables
// each unit for the targets named by its WantedBy=.
func addUnitTree(t *testing.T, p *vm.Payload, dir string) {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	for _, path := range paths {
		rel, _ := filepath.Rel(dir, path)
		text := readFile(t, path)
		if err := p.File(unitDir+"/"+rel, 0o644, text); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(rel, "/") {
			continue // a drop-in
		}
		enable(t, p, unitDir, rel, text)
	}
}

// installedBy lists the units named by an [Install] key such as WantedBy.
func installedBy(unit []byte, key string) []string {
	var targets []string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			targets = append(targets, strings.Fields(v)...)
		}
	}
	return targets
}
