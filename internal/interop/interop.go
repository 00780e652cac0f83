// Package interop locates the interoperability corpus that tests decrypt: files encrypted by
// the real age, sops and ssh-keygen tools, with the plaintext each must decrypt to. The
// repository's corpus is testdata/interop (testdata/interop/make.sh regenerates it); a shared
// corpus beside the checkout, when present, is one more that Corpora adds.
package interop

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/secretd/secretd/internal/testenv"
)

// Dir returns the repository's corpus.
func Dir(t testing.TB) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "testdata", "interop")
}

// Each runs test as a subtest over the repository's corpus ("repo") and, when present, the
// shared one ("shared"): tests that check secretd against what the real tools made run over
// every corpus there is.
func Each(t *testing.T, test func(t *testing.T, dir string)) {
	t.Run("repo", func(t *testing.T) { test(t, Dir(t)) })
	if dir, ok := testenv.Shared("interop"); ok {
		t.Run("shared", func(t *testing.T) { test(t, dir) })
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
