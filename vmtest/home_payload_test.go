package vmtest_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/vmtest/internal/vm"
)

// The home scenario's user: a lingering account whose systemd --user instance starts at boot
// and runs the user unit rendered from nixos/home-manager.nix (vmtest/golden/secretd-user.service).
const (
	homeUser     = "hmuser"
	homeUID      = 1100
	homeDir      = "/home/" + homeUser
	userUnitDir  = "/etc/systemd/user"
	homeKeysPath = homeDir + "/.config/sops/age/keys.txt"
	// The placeholder of github/oauth_token in the gitconfig template.
	homePlaceholder = "<SECRETD:vmtest:github/oauth_token>"
)

// addHomePayload ships the home scenario: the account (sysusers.d), its home and age key
// (tmpfiles.d, created at boot before the user's manager starts), its lingering, the user
// units, the user's manifests v1 and v2 (github/oauth_token rotated) and what the guest
// should find.
func addHomePayload(t *testing.T, p *vm.Payload, s *testSecrets, here, secretd, systemBinary string) (userManifest string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	key, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	recipients := filepath.Join(s.dir, "home.recipients")
	must(os.WriteFile(recipients, []byte(key.Recipient().String()+"\n"), 0o600))

	tokens := map[string][]byte{"home-token-1": randomText(t, 20), "home-token-2": randomText(t, 20)}
	for label, v := range tokens {
		s.add(label, v, recipients)
	}
	npmrc := []byte("//registry.npmjs.org/:_authToken=" + string(randomText(t, 16)) + "\n")
	s.add("home-npmrc", npmrc, recipients)

	var firstManifest []byte
	gitconfig := "[url \"https://oauth2:" + homePlaceholder + "@github.com/\"]\n\tinsteadOf = https://github.com/\n"
	for _, v := range []string{"1", "2"} {
		token := "home-token-" + v
		m := manifest.Manifest{
			Version:      manifest.Version,
			Identities:   []string{homeKeysPath, homeDir + "/.ssh/id_ed25519"},
			Placeholders: map[string]string{"github/oauth_token": homePlaceholder},
			Secrets: []manifest.Secret{
				{Name: "github/oauth_token", File: s.files[token].guestPath, Consumers: manifest.Consumers{RestartUnits: []string{"gh-sync.service"}}},
				{Name: "npmrc", File: s.files["home-npmrc"].guestPath, Ownership: manifest.Ownership{Mode: "0600"}, Path: homeDir + "/.npmrc"},
			},
			Templates: []manifest.Template{
				{Name: "gitconfig", Content: gitconfig, Path: homeDir + "/.config/git/secrets.inc"},
			},
		}
		data, err := json.MarshalIndent(m, "", "  ")
		must(err)
		if _, err := manifest.DecodeUser(data, manifest.User{RuntimeDir: fmt.Sprintf("/run/user/%d", homeUID), UID: homeUID, GID: homeUID}); err != nil {
			t.Fatalf("home manifest is invalid: %v", err)
		}
		must(p.File(guestData+"/manifests/home-v"+v+".json", 0o644, data))
		if firstManifest == nil {
			firstManifest = data
		}
		rendered := sha256.Sum256([]byte(strings.ReplaceAll(gitconfig, homePlaceholder, string(tokens[token]))))
		expect := fmt.Sprintf("github/oauth_token %[1]s %[1]s 0400 %[2]s\nnpmrc %[1]s %[1]s 0600 %[3]s\nrendered/gitconfig %[1]s %[1]s 0400 %[4]s\n",
			homeUser, s.files[token].sha256, s.files["home-npmrc"].sha256, hex.EncodeToString(rendered[:]))
		must(p.File(guestData+"/expect/home-v"+v, 0o644, []byte(expect)))
	}

	unit := readFile(t, filepath.Join(here, "golden", "secretd-user.service"))
	binary, manifestPath, err := parseExecStart(unit)
	if err != nil {
		t.Fatalf("golden/secretd-user.service: %v", err)
	}
	must(p.File(manifestPath, 0o644, firstManifest))
	if binary != systemBinary {
		must(p.File(binary, 0o755, readFile(t, secretd)))
	}
	must(p.File(userUnitDir+"/secretd.service", 0o644, unit))
	must(p.Symlink(userUnitDir+"/default.target.wants/secretd.service", userUnitDir+"/secretd.service"))
	consumer := []byte(`[Unit]
Description=Test user unit restarted when github/oauth_token changes
After=secretd.service

[Service]
# Records the SHA-256 of what it read, for the runner to compare; then idles.
ExecStart=/bin/sh -c 'sha256sum <"$XDG_RUNTIME_DIR/secrets/github/oauth_token" | cut -d" " -f1 >"$XDG_RUNTIME_DIR/gh-sync.seen" && exec sleep infinity'

[Install]
WantedBy=default.target
`)
	must(p.File(userUnitDir+"/gh-sync.service", 0o644, consumer))
	must(p.Symlink(userUnitDir+"/default.target.wants/gh-sync.service", userUnitDir+"/gh-sync.service"))

	must(p.File("/etc/sysusers.d/vmtest-hmuser.conf", 0o644, []byte(fmt.Sprintf("u %s %d \"home-manager user\" %s /bin/sh\n", homeUser, homeUID, homeDir))))
	tmpfiles := fmt.Sprintf(`d %[1]s 0700 %[2]s %[2]s -
d %[1]s/.config 0755 %[2]s %[2]s -
d %[1]s/.config/sops 0700 %[2]s %[2]s -
d %[1]s/.config/sops/age 0700 %[2]s %[2]s -
f %[3]s 0600 %[2]s %[2]s - %[4]s
`, homeDir, homeUser, homeKeysPath, key.String())
	must(p.File("/etc/tmpfiles.d/vmtest-hmuser.conf", 0o600, []byte(tmpfiles)))
	must(p.File("/var/lib/systemd/linger/"+homeUser, 0o644, nil))
	return manifestPath
}
