package authoring

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"filippo.io/age"
	"filippo.io/age/plugin"

	"github.com/secretd/secretd/identity"
)

// Environment is where identities are looked up: environment variables and the home directory.
type Environment struct {
	Getenv func(string) string
	Home   string
	// UI answers age plugins (a PIN, a touch); nil refuses their questions.
	UI *plugin.ClientUI
}

// FindIdentities loads the identities to decrypt with, where sops and agenix look: the explicit
// paths (each must load), $SOPS_AGE_KEY_FILE and $SOPS_AGE_SSH_PRIVATE_KEY_FILE (each must load
// when set), the output of $SOPS_AGE_KEY_CMD, $SOPS_AGE_KEY, then
// ~/.config/sops/age/keys.txt (or under $XDG_CONFIG_HOME), ~/.ssh/id_ed25519 and ~/.ssh/id_rsa
// when present and usable. notes receives one line for each default file skipped as unusable.
func FindIdentities(explicit []string, env Environment, notes func(string)) ([]age.Identity, error) {
	var ids []age.Identity
	load := func(path string, required bool) error {
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) && !required {
			return nil
		}
		if err != nil {
			return fmt.Errorf("identity %s: %w", path, err)
		}
		loaded, err := identity.Parse(data, env.UI)
		clear(data)
		if err != nil {
			if required {
				return fmt.Errorf("identity %s: %w", path, err)
			}
			notes(fmt.Sprintf("identity %s skipped: %v", path, err))
			return nil
		}
		ids = append(ids, loaded...)
		return nil
	}
	for _, p := range explicit {
		if err := load(p, true); err != nil {
			return nil, err
		}
	}
	for _, v := range []string{"SOPS_AGE_KEY_FILE", "SOPS_AGE_SSH_PRIVATE_KEY_FILE"} {
		if p := env.Getenv(v); p != "" {
			if err := load(p, true); err != nil {
				return nil, err
			}
		}
	}
	if c := env.Getenv("SOPS_AGE_KEY_CMD"); c != "" {
		loaded, err := keyCommandIdentities(c, env.UI)
		if err != nil {
			return nil, err
		}
		ids = append(ids, loaded...)
	}
	if k := env.Getenv("SOPS_AGE_KEY"); k != "" {
		loaded, err := identity.Parse([]byte(k), env.UI)
		if err != nil {
			return nil, fmt.Errorf("$SOPS_AGE_KEY: %w", err)
		}
		ids = append(ids, loaded...)
	}
	for _, p := range defaultIdentityFiles(env) {
		if err := load(p, false); err != nil {
			return nil, err
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("no identity to decrypt with: give -i PATH, set SOPS_AGE_KEY_FILE, or keep a key in ~/.config/sops/age/keys.txt or ~/.ssh/id_ed25519")
	}
	return ids, nil
}

// keyCommandIdentities runs $SOPS_AGE_KEY_CMD, as sops does, and reads the identities it prints.
func keyCommandIdentities(command string, ui *plugin.ClientUI) ([]age.Identity, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("$SOPS_AGE_KEY_CMD: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	defer clear(out)
	ids, err := identity.Parse(out, ui)
	if err != nil {
		return nil, fmt.Errorf("$SOPS_AGE_KEY_CMD: %w", err)
	}
	return ids, nil
}

// defaultIdentityFiles are the files tried when present: sops' keys.txt, then the user's
// ed25519 and RSA ssh keys, as agenix uses them.
func defaultIdentityFiles(env Environment) []string {
	config := env.Getenv("XDG_CONFIG_HOME")
	if config == "" && env.Home != "" {
		config = filepath.Join(env.Home, ".config")
	}
	var files []string
	if config != "" {
		files = append(files, filepath.Join(config, "sops", "age", "keys.txt"))
	}
	if env.Home != "" {
		files = append(files, filepath.Join(env.Home, ".ssh", "id_ed25519"), filepath.Join(env.Home, ".ssh", "id_rsa"))
	}
	return files
}
