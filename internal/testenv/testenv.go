// Package testenv is how tests reach outside the repository: the tools they run, and the
// optional material in the shared folder beside the checkout. One rule for all of it: what
// is missing skips the test with a message, except under CI=true, where it fails the test, so
// CI can never go green by skipping.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true, as CI services set it).
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// Unavailable ends a test that cannot run here: a skip outside CI, a failure in CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (required under CI=true)", msg)
	}
	t.Skip(msg)
}

// Tool returns the path of an executable on PATH. install says where it comes from (test.sh
// installs all of them).
func Tool(t testing.TB, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s not found (%s; test.sh installs it)", name, install)
	}
	return path
}

// RepoRoot is the directory holding go.mod, found from the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

// Shared returns the path of name in the shared folder beside the checkout (../shared/name),
// and whether it exists. Tests may use what it holds; none may need it.
func Shared(name string) (string, bool) {
	root, err := RepoRoot()
	if err != nil {
		return "", false
	}
	path := filepath.Join(root, "..", "shared", name)
	_, err = os.Stat(path)
	return path, err == nil
}

// NixpkgsLib returns a nixpkgs lib directory (the one whose default.nix is lib) for evaluating
// NixOS modules: $NIXPKGS_LIB (a nixpkgs or nixpkgs.lib checkout, or its lib directory), else
// the shared nixpkgs-lib when present.
func NixpkgsLib(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("NIXPKGS_LIB")
	if dir == "" {
		shared, ok := Shared("nixpkgs-lib")
		if !ok {
			Unavailable(t, "no nixpkgs lib to evaluate NixOS modules with: set NIXPKGS_LIB to a nixpkgs (or nixpkgs.lib) checkout, or its lib directory")
		}
		dir = shared
	}
	// A checkout's lib/ first: a nixpkgs checkout has a default.nix of its own.
	for _, lib := range []string{filepath.Join(dir, "lib"), dir} {
		if _, err := os.Stat(filepath.Join(lib, "default.nix")); err == nil {
			return lib
		}
	}
	t.Fatalf("nixpkgs lib %s holds neither lib/default.nix nor default.nix", dir)
	return ""
}
