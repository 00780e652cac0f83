package nixos_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/secretd/secretd/internal/testenv"
)

// repoRoot is the directory holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return root
}

// lookNix returns the path of a Nix tool.
func lookNix(t *testing.T, tool string) string {
	t.Helper()
	return testenv.Tool(t, tool, "Nix: on Debian the nix-bin package")
}

func TestNixFilesParse(t *testing.T) {
	instantiate := lookNix(t, "nix-instantiate")
	root := repoRoot(t)
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".nix") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"flake.nix", "nixos/module.nix", "nixos/package.nix", "nixos/tests/eval.nix"} {
		found := false
		for _, f := range files {
			found = found || f == filepath.Join(root, want)
		}
		if !found {
			t.Errorf("%s is missing", want)
		}
	}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		if out, err := exec.Command(instantiate, "--parse", f).CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v\n%s", rel, err, out)
		}
	}
}

var vendorHashLine = regexp.MustCompile(`vendorHash = (null|"[^"]*");`)

// TestVendorHashIsCurrent recomputes what buildGoModule will fix the vendored dependencies
// to, so that a go.mod change without nixos/update-vendor-hash.sh fails here rather than in
// `nix build`.
func TestVendorHashIsCurrent(t *testing.T) {
	nix := lookNix(t, "nix")
	root := repoRoot(t)
	flake, err := os.ReadFile(filepath.Join(root, "flake.nix"))
	if err != nil {
		t.Fatal(err)
	}
	matches := vendorHashLine.FindAllSubmatch(flake, -1)
	if len(matches) != 1 {
		t.Fatalf("flake.nix has %d vendorHash lines, want exactly 1", len(matches))
	}
	have := string(matches[0][1])

	vendor := filepath.Join(t.TempDir(), "vendor")
	cmd := exec.Command(goTool(t), "mod", "vendor", "-o", vendor)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, out)
	}
	want := "null"
	if entries, err := os.ReadDir(vendor); err == nil && len(entries) > 0 {
		out, err := exec.Command(nix, "hash", "path", "--extra-experimental-features", "nix-command", vendor).Output()
		if err != nil {
			t.Fatalf("nix hash path: %v", err)
		}
		want = `"` + strings.TrimSpace(string(out)) + `"`
	}
	if have != want {
		t.Errorf("flake.nix has vendorHash = %s, but go.mod and go.sum need %s: run nixos/update-vendor-hash.sh", have, want)
	}
}

func goTool(t *testing.T) string {
	if path, err := exec.LookPath("go"); err == nil {
		return path
	}
	path := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("go tool not found in PATH nor at %s", path)
	}
	return path
}
