package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/identity"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
)

// User mode (`--user`) activates a user's own secrets, as the user: no root, no mount. It is
// what the home-manager module's `secretd.service` user unit runs.

// runtimeDirEnv names the user's runtime directory, set by systemd-logind and systemd --user.
const runtimeDirEnv = "XDG_RUNTIME_DIR"

// sopsAgeKeyFileEnv names an age identity file, as sops reads it.
const sopsAgeKeyFileEnv = "SOPS_AGE_KEY_FILE"

// currentUser is the calling user with a verified runtime directory to keep secrets in.
func currentUser() (manifest.User, error) {
	dir := os.Getenv(runtimeDirEnv)
	if dir == "" {
		return manifest.User{}, fmt.Errorf("$%s is not set: --user keeps secrets in the user's runtime directory, which systemd --user and logind provide", runtimeDirEnv)
	}
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/" {
		return manifest.User{}, fmt.Errorf("$%s=%q is not a clean absolute path", runtimeDirEnv, dir)
	}
	uid := os.Geteuid()
	if err := ramfs.CheckRuntimeDir(dir, uid); err != nil {
		return manifest.User{}, fmt.Errorf("refusing to keep secrets there: %w", err)
	}
	return manifest.User{RuntimeDir: dir, UID: uid, GID: os.Getegid()}, nil
}

// buildUser is whom `check --user` validates a user's manifest for at build time, where there
// is no runtime directory: $XDG_RUNTIME_DIR when set, else the usual /run/user/UID.
func buildUser() manifest.User {
	dir := os.Getenv(runtimeDirEnv)
	if !filepath.IsAbs(dir) {
		dir = "/run/user/" + strconv.Itoa(os.Geteuid())
	}
	return manifest.User{RuntimeDir: filepath.Clean(dir), UID: os.Geteuid(), GID: os.Getegid()}
}

// loadUserManifest loads a user's manifest. An age identity file named by $SOPS_AGE_KEY_FILE,
// where sops itself looks first, is tried before the manifest's identities.
func loadUserManifest(path string, u manifest.User, log *zap.Logger) (*manifest.Manifest, error) {
	m, err := manifest.LoadUser(path, u)
	if err != nil {
		return nil, err
	}
	if f := os.Getenv(sopsAgeKeyFileEnv); filepath.IsAbs(f) && !slices.Contains(m.Identities, f) {
		m.Identities = append([]string{f}, m.Identities...)
	}
	m.Identities = skipProtectedKeys(m.Identities, log)
	return m, nil
}

// skipProtectedKeys leaves out passphrase-protected OpenSSH keys while another identity file
// exists. A user's ~/.ssh/id_ed25519, among the default identities, usually has a passphrase,
// which no unit can type; with nothing else to decrypt with, it stays, for its error.
func skipProtectedKeys(paths []string, log *zap.Logger) []string {
	var kept, protected []string
	other := false
	for _, p := range paths {
		if identity.PassphraseProtected(p) {
			protected = append(protected, p)
			continue
		}
		kept = append(kept, p)
		if _, err := os.Stat(p); err == nil {
			other = true
		}
	}
	if len(protected) == 0 || !other {
		return paths
	}
	for _, p := range protected {
		log.Warn("identity is passphrase-protected, skipped", zap.String("identity", p))
	}
	return kept
}

// lockMemory keeps plaintext out of swap; ONFAULT locks pages as they are touched rather than
// every mapping the runtime reserves. A user's RLIMIT_MEMLOCK is usually a few MiB: locking
// future memory under such a limit would make the heap's growth fail later, so in user mode
// secretd then goes without, with one warning.
func lockMemory(log *zap.Logger, user bool) {
	if user {
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err == nil && lim.Cur != unix.RLIM_INFINITY {
			log.Warn("memory not locked: RLIMIT_MEMLOCK limits this user; plaintext could reach swap",
				zap.Uint64("memlockLimit", lim.Cur))
			return
		}
	}
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
		log.Warn("cannot lock memory; plaintext could reach swap", zap.Error(err))
	}
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
