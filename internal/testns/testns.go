// Package testns runs a test binary inside a private mount namespace, so tests can mount
// ramfs filesystems and bind files without the host ever seeing them.
package testns

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/secretd/secretd/internal/testenv"
)

const marker = "SECRETD_TEST_PRIVATE_MOUNT_NS"

// Main re-executes the test binary under unshare(1) with a private mount namespace, then runs
// the tests there. Without root (or, outside CI, without unshare) the tests run as they are
// and those that mount skip.
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run is Main without the exit, for wrappers such as testscript's: it returns the exit code.
func Run(m interface{ Run() int }) int {
	if os.Getenv(marker) != "" || os.Geteuid() != 0 {
		return m.Run()
	}
	if _, err := exec.LookPath("unshare"); err != nil && !testenv.InCI() {
		return m.Run()
	}
	args := append([]string{"--mount", "--propagation", "private", os.Args[0]}, os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), marker+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			return exit.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "testns: running the tests in a private mount namespace:", err)
		return 1
	}
	return 0
}

// Require ends a test that mounts filesystems unless it runs in the private namespace (see
// testenv.Unavailable).
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv(marker) == "" {
		testenv.Unavailable(t, "needs root and a private mount namespace (run the tests as root, with unshare from util-linux)")
	}
}
