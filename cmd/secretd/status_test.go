package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

const statusChildEnv = "SECRETD_TEST_STATUS_MOUNT_POINT"

// TestStatusExitCodes: status run by a user who cannot read the recorded state exits 3, not
// 1 (unhealthy): it knows nothing of the health.
func TestStatusExitCodes(t *testing.T) {
	if mp := os.Getenv(statusChildEnv); mp != "" {
		os.Exit(run([]string{"status", "--mount-point", mp}, os.Stdout, os.Stderr))
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run status as another user")
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	mountPoint := filepath.Join(dir, "secrets.d")
	os.Mkdir(mountPoint, 0o751)
	if err := os.WriteFile(filepath.Join(mountPoint, "state.json"), []byte(`{"version": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "secretd.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	exitOf := func(uid uint32, mp string) int {
		cmd := exec.Command(bin, "-test.run=^TestStatusExitCodes$", "-test.count=1")
		cmd.Env = append(os.Environ(), statusChildEnv+"="+mp)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if code := exitOf(65534, mountPoint); code != exitUnreadable {
		t.Errorf("status as a user who cannot read the state exited %d, want %d", code, exitUnreadable)
	}
	if code := exitOf(0, filepath.Join(dir, "nowhere")); code != exitUnhealthy {
		t.Errorf("status with no recorded activation exited %d, want %d", code, exitUnhealthy)
	}
}
