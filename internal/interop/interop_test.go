package interop_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretd/secretd/internal/interop"
)

// Every expected plaintext is exactly what expected.sha256 recorded when the tools made it, and
// nothing in expected/ is unlisted.
func TestExpectedMatchesSums(t *testing.T) {
	interop.Each(t, func(t *testing.T, dir string) {
		sums, err := os.Open(filepath.Join(dir, "expected.sha256"))
		if err != nil {
			t.Fatal(err)
		}
		defer sums.Close()
		listed := map[string]bool{}
		lines := bufio.NewScanner(sums)
		for lines.Scan() {
			want, name, ok := strings.Cut(lines.Text(), "  ")
			if !ok {
				t.Fatalf("expected.sha256: malformed line %q", lines.Text())
			}
			name = filepath.Clean(name)
			listed[name] = true
			data, err := os.ReadFile(filepath.Join(dir, "expected", name))
			if err != nil {
				t.Error(err)
				continue
			}
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != want {
				t.Errorf("expected/%s does not match its sum in expected.sha256", name)
			}
		}
		if err := lines.Err(); err != nil {
			t.Fatal(err)
		}
		if len(listed) == 0 {
			t.Fatal("expected.sha256 lists nothing")
		}
		expected := filepath.Join(dir, "expected")
		err = filepath.WalkDir(expected, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(expected, path)
			if !listed[rel] {
				t.Errorf("expected/%s is not in expected.sha256", rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
