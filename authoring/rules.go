// Package authoring creates, edits and re-keys encrypted secret files — whole-file age files as
// agenix writes them and sops files — to the recipients that the rule files users already keep
// name: `.sops.yaml` creation_rules and agenix's `secrets.nix`.
package authoring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/secretd/secretd/sops"
)

// Rule file names, as sops and agenix look for them.
const (
	SopsRulesName   = ".sops.yaml"
	AgenixRulesName = "secrets.nix"
)

// Rule is what a rule file says about one file.
type Rule struct {
	// Recipients are age1… (sops) or age1…/ssh-… (agenix) recipients.
	Recipients []string
	// Age is true for agenix rules: the file is one age-encrypted blob.
	Age bool
	// Armor asks for ASCII-armored age output (agenix's `armor = true`).
	Armor bool
	// Settings are the sops encryption settings of a new file.
	Settings sops.Settings
}

// Rules is one parsed rule file.
type Rules struct {
	// Path is the rule file.
	Path string
	sops []creationRule
	// agenix maps absolute file paths to their entries.
	agenix map[string]agenixEntry
}

type creationRule struct {
	PathRegex         string           `yaml:"path_regex"`
	Age               any              `yaml:"age"`
	PGP               any              `yaml:"pgp"`
	KMS               any              `yaml:"kms"`
	GCPKMS            any              `yaml:"gcp_kms"`
	AzureKeyVault     any              `yaml:"azure_keyvault"`
	HCVaultTransitURI any              `yaml:"hc_vault_transit_uri"`
	KeyGroups         []map[string]any `yaml:"key_groups"`
	UnencryptedSuffix string           `yaml:"unencrypted_suffix"`
	EncryptedSuffix   string           `yaml:"encrypted_suffix"`
	UnencryptedRegex  string           `yaml:"unencrypted_regex"`
	EncryptedRegex    string           `yaml:"encrypted_regex"`
	MACOnlyEncrypted  bool             `yaml:"mac_only_encrypted"`
}

type agenixEntry struct {
	PublicKeys []string `json:"publicKeys"`
	Armor      bool     `json:"armor"`
}

// FindRules returns the rule file nearest above file: in each directory from file's upwards, a
// secrets.nix for files named *.age and a .sops.yaml for the others, then either.
func FindRules(file string) (string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", err
	}
	names := []string{SopsRulesName, AgenixRulesName}
	if strings.HasSuffix(abs, ".age") {
		names = []string{AgenixRulesName, SopsRulesName}
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		for _, name := range names {
			p := filepath.Join(dir, name)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		if dir == filepath.Dir(dir) {
			return "", fmt.Errorf("no %s or %s found above %s", SopsRulesName, AgenixRulesName, file)
		}
	}
}

// LoadRules reads a .sops.yaml (any name but secrets.nix) or an agenix secrets.nix.
func LoadRules(path string) (*Rules, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	r := &Rules{Path: abs}
	if filepath.Base(abs) == AgenixRulesName {
		return r, r.loadAgenix()
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, err
	}
	var conf struct {
		CreationRules []creationRule `yaml:"creation_rules"`
	}
	if err := yaml.Unmarshal(data, &conf); err != nil {
		return nil, fmt.Errorf("%s: %w", abs, err)
	}
	r.sops = conf.CreationRules
	return r, nil
}

// loadAgenix evaluates secrets.nix with nix-instantiate, as agenix does.
func (r *Rules) loadAgenix() error {
	nix, err := exec.LookPath("nix-instantiate")
	if err != nil {
		return fmt.Errorf("%s: reading agenix rules needs nix-instantiate (Nix) on PATH: %w", r.Path, err)
	}
	cmd := exec.Command(nix, "--eval", "--strict", "--json", r.Path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s: nix-instantiate failed: %v: %s", r.Path, err, strings.TrimSpace(stderr.String()))
	}
	var entries map[string]agenixEntry
	if err := json.Unmarshal(out, &entries); err != nil {
		return fmt.Errorf("%s: expected an attribute set of { publicKeys = [ … ]; }: %w", r.Path, err)
	}
	r.agenix = map[string]agenixEntry{}
	for name, e := range entries {
		r.agenix[filepath.Join(filepath.Dir(r.Path), name)] = e
	}
	return nil
}

// For returns the rule for file: agenix's entry for it, or the first creation rule whose
// path_regex matches file's path relative to the rule file's directory, as sops chooses.
func (r *Rules) For(file string) (*Rule, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	if r.agenix != nil {
		e, ok := r.agenix[abs]
		if !ok {
			return nil, fmt.Errorf("%s names no entry for %s", r.Path, file)
		}
		if len(e.PublicKeys) == 0 {
			return nil, fmt.Errorf("%s: the entry for %s lists no publicKeys", r.Path, file)
		}
		return &Rule{Recipients: e.PublicKeys, Age: true, Armor: e.Armor}, nil
	}
	rel := strings.TrimPrefix(abs, filepath.Dir(r.Path)+string(filepath.Separator))
	for i, c := range r.sops {
		if c.PathRegex != "" {
			re, err := regexp.Compile(c.PathRegex)
			if err != nil {
				return nil, fmt.Errorf("%s: creation rule %d: path_regex: %w", r.Path, i+1, err)
			}
			if !re.MatchString(rel) {
				continue
			}
		}
		rule, err := c.rule()
		if err != nil {
			return nil, fmt.Errorf("%s: creation rule %d (matching %s): %w", r.Path, i+1, file, err)
		}
		return rule, nil
	}
	return nil, fmt.Errorf("no creation rule in %s matches %s", r.Path, rel)
}

func (c *creationRule) rule() (*Rule, error) {
	recipients, err := c.ageRecipients()
	if err != nil {
		return nil, err
	}
	if len(recipients) == 0 {
		return nil, errors.New("it names no age recipients")
	}
	s := sops.Settings{UnencryptedSuffix: c.UnencryptedSuffix, EncryptedSuffix: c.EncryptedSuffix, UnencryptedRegex: c.UnencryptedRegex, EncryptedRegex: c.EncryptedRegex, MACOnlyEncrypted: c.MACOnlyEncrypted}
	set := 0
	for _, v := range []string{s.UnencryptedSuffix, s.EncryptedSuffix, s.UnencryptedRegex, s.EncryptedRegex} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		return nil, errors.New("it sets more than one of unencrypted_suffix, encrypted_suffix, unencrypted_regex and encrypted_regex")
	}
	return &Rule{Recipients: recipients, Settings: s}, nil
}

// ageRecipients are the rule's keys, all of which must be age keys. As in sops, key_groups,
// when given, replace the keys named beside them.
func (c *creationRule) ageRecipients() ([]string, error) {
	switch len(c.KeyGroups) {
	case 0:
		if c.PGP != nil || c.KMS != nil || c.GCPKMS != nil || c.AzureKeyVault != nil || c.HCVaultTransitURI != nil {
			return nil, errors.New("it names PGP or cloud KMS keys; secretd writes age recipients only")
		}
		return splitRecipients(c.Age), nil
	case 1:
		for _, kind := range slices.Sorted(maps.Keys(c.KeyGroups[0])) {
			if kind != "age" {
				return nil, fmt.Errorf("its key group names %s keys; secretd writes age recipients only", kind)
			}
		}
		return splitRecipients(c.KeyGroups[0]["age"]), nil
	}
	return nil, fmt.Errorf("it splits the data key across %d key groups (Shamir), which secretd does not write", len(c.KeyGroups))
}

// splitRecipients reads sops' age field: a comma-separated string or a list of them.
func splitRecipients(v any) []string {
	var parts []string
	switch v := v.(type) {
	case string:
		parts = strings.Split(v, ",")
	case []any:
		for _, item := range v {
			if s, ok := item.(string); ok {
				parts = append(parts, strings.Split(s, ",")...)
			}
		}
	}
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Files lists the existing files the rules name: every agenix entry, or every sops file below
// the .sops.yaml's directory that a creation rule matches.
func (r *Rules) Files() ([]string, error) {
	var out []string
	if r.agenix != nil {
		for p := range r.agenix {
			if _, err := os.Stat(p); err == nil {
				out = append(out, p)
			}
		}
		sort.Strings(out)
		return out, nil
	}
	root := filepath.Dir(r.Path)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || p == r.Path {
			return nil
		}
		if _, err := r.For(p); err != nil {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if _, ok := sops.Detect(data); ok {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
