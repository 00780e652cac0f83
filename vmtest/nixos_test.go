package vmtest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/agessh"

	"github.com/secretd/secretd/internal/testenv"
)

// These checks keep nixos-test.nix and its fixtures sound on machines without Nix or a
// nixpkgs checkout; they do not boot anything and run without SECRETD_VMTEST.

// TestNixOSFixturesDecrypt checks that every fixture decrypts with the committed test host
// key to the plaintext whose hash expected.json records, and that the one meant to be
// undecryptable is.
func TestNixOSFixturesDecrypt(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "vmtest/testdata/nixos")
	identity, err := agessh.ParseIdentity(readFile(t, filepath.Join(dir, "ssh_host_ed25519_key")))
	if err != nil {
		t.Fatalf("test host key: %v", err)
	}
	var expected map[string]string
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, "expected.json")), &expected); err != nil {
		t.Fatalf("expected.json: %v", err)
	}
	if len(expected) == 0 {
		t.Fatal("expected.json lists no fixture")
	}
	for label, want := range expected {
		t.Run(label, func(t *testing.T) {
			r, err := age.Decrypt(bytes.NewReader(readFile(t, filepath.Join(dir, label+".age"))), identity)
			if label == "undecryptable" {
				if err == nil {
					t.Fatal("decrypts with the test host key; it must not")
				}
				return
			}
			if err != nil {
				t.Fatalf("decrypting: %v", err)
			}
			plain, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("decrypting: %v", err)
			}
			sum := sha256.Sum256(plain)
			if hex.EncodeToString(sum[:]) != want {
				t.Errorf("plaintext (%d bytes) does not match expected.json", len(plain))
			}
		})
	}
}

// TestNixOSTestParses checks the Nix syntax of nixos-test.nix.
func TestNixOSTestParses(t *testing.T) {
	bin := testenv.Tool(t, "nix-instantiate", "Debian package nix-bin")
	path := filepath.Join(repoRoot(t), "vmtest/nixos-test.nix")
	if out, err := exec.Command(bin, "--parse", path).CombinedOutput(); err != nil {
		t.Fatalf("nix-instantiate --parse: %v\n%s", err, out)
	}
}

// TestNixOSTestScriptIsPython evaluates nixos-test.nix with stand-ins for pkgs and self and
// checks that its testScript is valid Python. It needs nixpkgs' lib (as the tests in nixos/)
// and python3.
func TestNixOSTestScriptIsPython(t *testing.T) {
	nix := testenv.Tool(t, "nix-instantiate", "Debian package nix-bin")
	python := testenv.Tool(t, "python3", "Debian package python3")
	lib := testenv.NixpkgsLib(t)
	expr := `
let
  lib = import ` + lib + `;
  pkgs = {
    inherit lib;
    stdenv.hostPlatform.system = "x86_64-linux";
    testers.runNixOSTest = test: test;
    writeShellScript = name: _: "/nix/store/stand-in-" + name;
  };
  self.packages.x86_64-linux.secretd = "/nix/store/stand-in-secretd";
  test = import ` + filepath.Join(repoRoot(t), "vmtest/nixos-test.nix") + ` { inherit pkgs self; };
in
  test.testScript { nodes.machine.system.build.toplevel = "/nix/store/stand-in-toplevel"; }
`
	out, err := exec.Command(nix, "--eval", "--strict", "--json", "-E", expr).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("evaluating testScript: %v\n%s", err, msg)
	}
	var script string
	if err := json.Unmarshal(out, &script); err != nil {
		t.Fatalf("testScript is not a string: %v", err)
	}
	if !strings.Contains(script, "switch-to-configuration test") {
		t.Error("testScript does not switch configurations")
	}
	cmd := exec.Command(python, "-c", "import ast, sys; ast.parse(sys.stdin.read())")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testScript is not valid Python: %v\n%s", err, out)
	}
}
