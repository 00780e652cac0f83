package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/identity"
	"github.com/secretd/secretd/internal/testenv"
	"github.com/secretd/secretd/internal/testns"
)

// TestAuthoringScripts runs the authoring scripts in testdata/authoring against the real sops,
// age and nix-instantiate where a script says it needs them.
func TestAuthoringScripts(t *testing.T) {
	testns.Require(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/authoring",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Plaintext goes to a tmpfs the script mounts; nothing may land in TMPDIR.
			env.Setenv("XDG_RUNTIME_DIR", filepath.Join(env.WorkDir, "xdg"))
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			return os.MkdirAll(filepath.Join(env.WorkDir, "xdg"), 0o700)
		},
		Condition: toolCondition,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"tmpfs":    tmpfs,
			"sshkey":   sshkey,
			"agekey":   agekey,
			"waitfile": waitfile,
			"sigterm":  sigterm,
			"emptydir": emptydir,
			"expand":   expand,
			"samefile": samefile,
			"noleak":   noleak,
			"chmodx":   chmodx,
		},
	})
}

// toolCondition is [tool:NAME]: whether NAME is on PATH. Scripts skip without the tool, except
// under CI=true, where a missing tool fails them.
func toolCondition(cond string) (bool, error) {
	tool, ok := strings.CutPrefix(cond, "tool:")
	if !ok {
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	if _, err := exec.LookPath(tool); err != nil {
		if testenv.InCI() {
			return false, fmt.Errorf("%s is required under CI: %v", tool, err)
		}
		return false, nil
	}
	return true, nil
}

// tmpfs mounts a tmpfs on a directory (the scripts run in a private mount namespace).
func tmpfs(ts *testscript.TestScript, neg bool, args []string) {
	for _, dir := range args {
		p := ts.MkAbs(dir)
		ts.Check(os.MkdirAll(p, 0o700))
		ts.Check(unix.Mount("tmpfs", p, "tmpfs", 0, "mode=0700"))
	}
}

// sshkey NAME writes an OpenSSH ed25519 key pair NAME and NAME.pub, and sets $NAME_PUB to the
// public key and $NAME_AGE to the age1… recipient of the private key's ssh-to-age identity.
func sshkey(ts *testscript.TestScript, neg bool, args []string) {
	for _, name := range args {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		ts.Check(err)
		block, err := ssh.MarshalPrivateKey(priv, "")
		ts.Check(err)
		ts.Check(os.WriteFile(ts.MkAbs(name), pem.EncodeToMemory(block), 0o600))
		sshPub, err := ssh.NewPublicKey(pub)
		ts.Check(err)
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
		ts.Check(os.WriteFile(ts.MkAbs(name+".pub"), []byte(line+" root@"+filepath.Base(name)+"\n"), 0o644))
		ts.Setenv(strings.ToUpper(filepath.Base(name))+"_PUB", line)
		x25519, err := identity.X25519FromEd25519(priv)
		ts.Check(err)
		ts.Setenv(strings.ToUpper(filepath.Base(name))+"_AGE", x25519.Recipient().String())
	}
}

// agekey NAME writes an age identity file NAME and its recipient NAME.pub, and sets $NAME to
// the recipient.
func agekey(ts *testscript.TestScript, neg bool, args []string) {
	for _, name := range args {
		id, err := age.GenerateX25519Identity()
		ts.Check(err)
		ts.Check(os.WriteFile(ts.MkAbs(name), []byte(id.String()+"\n"), 0o600))
		ts.Check(os.WriteFile(ts.MkAbs(name+".pub"), []byte(id.Recipient().String()+"\n"), 0o644))
		ts.Setenv(strings.ToUpper(filepath.Base(name)), id.Recipient().String())
	}
}

// waitfile waits for a background command to create a file.
func waitfile(ts *testscript.TestScript, neg bool, args []string) {
	for _, name := range args {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if _, err := os.Stat(ts.MkAbs(name)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				ts.Fatalf("%s never appeared", name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// emptydir fails unless each directory is empty.
func emptydir(ts *testscript.TestScript, neg bool, args []string) {
	for _, dir := range args {
		entries, err := os.ReadDir(ts.MkAbs(dir))
		ts.Check(err)
		if (len(entries) == 0) == neg {
			ts.Fatalf("%s holds %d entries", dir, len(entries))
		}
	}
}

// sigterm sends SIGTERM to the background commands (the kill builtin knows INT and KILL only).
func sigterm(ts *testscript.TestScript, neg bool, args []string) {
	for _, cmd := range ts.BackgroundCmds() {
		ts.Check(cmd.Process.Signal(unix.SIGTERM))
	}
}
