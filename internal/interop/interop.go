// Package interop locates the interoperability corpus — files encrypted by the real age, sops
// and ssh-to-age tools, with their expected plaintext — that tests decrypt. It lives in
// ../shared/interop beside the repository; SECRETD_INTEROP overrides that.
package interop

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the corpus directory, failing the test when it cannot be found: the corpus is
// part of every checkout's surroundings, so its absence is an error, not a reason to skip.
func Dir(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("SECRETD_INTEROP"); dir != "" {
		return dir
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "..", "shared", "interop")
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Fatalf("interop corpus not found at %s (set SECRETD_INTEROP): %v", dir, err)
	}
	return dir
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
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// Key returns the path of a file under keys/.
func Key(t testing.TB, name string) string {
	return filepath.Join(Dir(t), "keys", name)
}

// Enc returns the path of an encrypted file under enc/.
func Enc(t testing.TB, name string) string {
	return filepath.Join(Dir(t), "enc", name)
}

// Expected returns the expected plaintext stored under expected/.
func Expected(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(Dir(t), "expected", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}
