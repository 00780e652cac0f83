package authoring

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	alice = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
	bob   = "age1ufe6tdwjw23s7qz5ehh6lya26tdszv5kezv60t0cmadce5etwf4skftawh"
)

func writeRules(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, SopsRulesName)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSopsRules: the first matching rule wins, paths are relative to the .sops.yaml, anchors
// and aliases resolve, and refusals name the rule file and the file.
func TestSopsRules(t *testing.T) {
	dir := writeRules(t, `
keys:
  - &alice `+alice+`
  - &bob `+bob+`
creation_rules:
  - path_regex: ^prod/.*\.yaml$
    encrypted_regex: ^(password|token)$
    key_groups:
      - age: [*alice, *bob]
  - path_regex: ^prod/
    age: "`+alice+` , `+bob+`"
    mac_only_encrypted: true
  - path_regex: ^pgp/
    pgp: FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4
  - path_regex: ^shamir/
    key_groups:
      - age: [*alice]
      - age: [*bob]
`)
	r, err := LoadRules(filepath.Join(dir, SopsRulesName))
	if err != nil {
		t.Fatal(err)
	}
	rule, err := r.For(filepath.Join(dir, "prod", "db.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rule.Recipients, []string{alice, bob}) || rule.Settings.EncryptedRegex != "^(password|token)$" || rule.Age {
		t.Errorf("prod/db.yaml: %+v", rule)
	}
	rule, err = r.For(filepath.Join(dir, "prod", "app.env"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rule.Recipients, []string{alice, bob}) || !rule.Settings.MACOnlyEncrypted || rule.Settings.EncryptedRegex != "" {
		t.Errorf("prod/app.env: %+v", rule)
	}
	for file, want := range map[string]string{
		"pgp/x.yaml":    "creation rule 3 (matching",
		"shamir/x.yaml": "2 key groups",
		"dev/x.yaml":    "no creation rule in " + filepath.Join(dir, SopsRulesName) + " matches dev/x.yaml",
	} {
		_, err := r.For(filepath.Join(dir, file))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", file, err, want)
		}
	}
}

// TestFindRules: the nearest rule file above a file wins; secrets.nix is preferred for *.age.
func TestFindRules(t *testing.T) {
	dir := writeRules(t, "creation_rules: []\n")
	sub := filepath.Join(dir, "hosts", "web1")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, AgenixRulesName), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		filepath.Join(sub, "wifi.age"):    filepath.Join(sub, AgenixRulesName),
		filepath.Join(sub, "x.yaml"):      filepath.Join(sub, AgenixRulesName),
		filepath.Join(dir, "a", "x.yaml"): filepath.Join(dir, SopsRulesName),
	} {
		got, err := FindRules(file)
		if err != nil || got != want {
			t.Errorf("FindRules(%s) = %s, %v; want %s", file, got, err, want)
		}
	}
}

// TestAgenixRulesNeedNix: without nix-instantiate, reading secrets.nix says what is missing.
func TestAgenixRulesNeedNix(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, AgenixRulesName)
	if err := os.WriteFile(p, []byte(`{ "a.age".publicKeys = [ "`+alice+`" ]; }`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	_, err := LoadRules(p)
	if err == nil || !strings.Contains(err.Error(), "needs nix-instantiate") || !strings.Contains(err.Error(), p) {
		t.Errorf("error %v, want one naming nix-instantiate and %s", err, p)
	}
}

// TestSopsKeyGroupsReplaceTopLevelKeys: as in sops, a rule's key_groups, when given, are its
// keys; the top-level age (and pgp) keys beside them are not used. Key types other than age in
// a group are refused rather than dropped.
func TestSopsKeyGroupsReplaceTopLevelKeys(t *testing.T) {
	dir := writeRules(t, `
creation_rules:
  - path_regex: ^groups/
    age: `+alice+`
    pgp: FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4
    key_groups:
      - age: [`+bob+`]
  - path_regex: ^vault/
    key_groups:
      - age: [`+bob+`]
        hc_vault: [https://vault.example/v1/sops/keys/k]
`)
	r, err := LoadRules(filepath.Join(dir, SopsRulesName))
	if err != nil {
		t.Fatal(err)
	}
	rule, err := r.For(filepath.Join(dir, "groups", "a.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rule.Recipients, []string{bob}) {
		t.Errorf("groups/a.yaml: recipients %v, want only the key group's %v", rule.Recipients, []string{bob})
	}
	if _, err := r.For(filepath.Join(dir, "vault", "a.yaml")); err == nil {
		t.Error("vault/a.yaml: a key group with a Vault key was accepted")
	}
}
