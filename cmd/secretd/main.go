// Command secretd activates secrets at boot and on every switch: `secretd activate` decrypts a
// manifest's secrets into a fresh ramfs generation and swaps it in, `secretd check` verifies a
// manifest at build time without decrypting, and `secretd status` tells an operator what is live
// and whether it is healthy. With --user the same commands serve a user's own secrets, in the
// user's runtime directory. `secretd edit`, `encrypt`, `decrypt`, `rekey` and `recipients`
// author the encrypted files, to the recipients .sops.yaml or secrets.nix names.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	runtimedebug "runtime/debug"
	"time"

	"go.uber.org/zap"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/internal/logging"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
	"github.com/secretd/secretd/units"
)

const usage = `usage: secretd <command> [flags]

commands:
  activate --manifest PATH [--dry-run] [--json] [--for-users | --user]
           decrypt every secret into a new ramfs generation and make it live
  check    --manifest PATH [--users | --user]
           validate a manifest and its files without decrypting (build time)
  status   [--mount-point DIR] [--json] [--user]
           show what is live; exit 0 when healthy, 1 when not, 3 when the
           recorded state cannot be read (not root, for one)

--user works on the calling user's own secrets, as that user: generations in
$XDG_RUNTIME_DIR/secretd.d, units of the user's systemd instance.

Run 'secretd <command> -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK        = 0
	exitFailed    = 1
	exitUsage     = 2
	exitUnhealthy = 1
	// exitUnreadable: status could not read the recorded state, so it knows nothing of the
	// health (it is not unhealthy).
	exitUnreadable = 3
)

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "activate":
		return activate(args[1:], stdout, stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "status":
		return status(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage+authorUsage)
		return exitOK
	}
	if code, ok := authorCommand(args, os.Stdin, stdout, stderr); ok {
		return code
	}
	fmt.Fprintf(stderr, "secretd: unknown command %q\n%s", args[0], usage)
	return exitUsage
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("secretd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func activate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("activate", stderr)
	manifestPath := fs.String("manifest", "", "path of the manifest (required)")
	dryRun := fs.Bool("dry-run", os.Getenv("NIXOS_ACTION") == "dry-activate", "print what would change and write nothing (default when NIXOS_ACTION=dry-activate)")
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	forUsers := fs.Bool("for-users", false, "secrets needed before users exist: root-owned, no user lookup")
	userMode := fs.Bool("user", false, "the calling user's own secrets, in $XDG_RUNTIME_DIR (home-manager)")
	systemdAddress := fs.String("systemd-address", "", "D-Bus address of systemd (default: its private socket, else the system bus)")
	noSignal := fs.Bool("no-signal", false, "do not restart or reload any unit")
	unitWait := fs.Duration("unit-wait", defaultUnitWait(), "how long to wait for restart and reload jobs before recording them as queued (default 0 when run by systemd, 20s otherwise)")
	debug := fs.Bool("debug", false, "log debug messages")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *manifestPath == "" || fs.NArg() > 0 || *userMode && *forUsers {
		fmt.Fprintln(stderr, "secretd activate: --manifest PATH is required, and nothing else; --user and --for-users exclude one another")
		return exitUsage
	}
	log := logging.New(stderr, *debug)
	defer log.Sync()

	// An activation is short and allocates mostly garbage (age keeps a 64 KiB buffer per file):
	// twice the default heap target halves its collections, measured at a sixth of the wall time
	// for 1000 files, for a few MB of peak RSS. GOGC, when set, still rules.
	if os.Getenv("GOGC") == "" {
		runtimedebug.SetGCPercent(200)
	}

	lockMemory(log, *userMode)

	var m *manifest.Manifest
	var who manifest.User
	var err error
	if *userMode {
		if who, err = currentUser(); err == nil {
			m, err = loadUserManifest(*manifestPath, who, log)
		}
	} else {
		m, err = manifest.Load(*manifestPath)
	}
	if err != nil {
		log.Error("activation failed", zap.Error(err))
		fmt.Fprintln(stderr, "secretd:", err)
		return exitFailed
	}
	opts := activation.Options{
		ManifestPath: *manifestPath, DryRun: *dryRun, ForUsers: *forUsers, User: *userMode, Log: log, UnitWait: *unitWait,
	}
	if !*noSignal {
		opts.Connect = func(ctx context.Context) (activation.Signaller, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if *systemdAddress != "" {
				return units.ConnectAddress(ctx, *systemdAddress)
			}
			if *userMode {
				return units.ConnectUser(ctx, who.RuntimeDir)
			}
			return units.Connect(ctx)
		}
	}
	plan, err := activation.Activate(context.Background(), m, opts)
	if err != nil {
		var live *activation.LiveError
		if errors.As(err, &live) {
			log.Error("activation incomplete", zap.String("manifest", *manifestPath), zap.Int("generation", live.Generation), zap.Error(live.Err))
		} else {
			log.Error("activation failed; the live generation is unchanged", zap.String("manifest", *manifestPath), zap.Error(err))
		}
		fmt.Fprintln(stderr, "secretd: activation failed:", err)
		return exitFailed
	}
	if *dryRun || *asJSON {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(plan)
		} else {
			plan.Print(stdout)
		}
	}
	return exitOK
}

// defaultUnitWait is how long activate waits for the jobs it queued. Run by systemd, secretd is
// itself a start job, and the consumers it restarts are ordered after it: their jobs cannot run
// before it exits, so waiting would only stall every switch. Elsewhere it waits 20 s.
func defaultUnitWait() time.Duration {
	if os.Getenv("INVOCATION_ID") != "" {
		return 0
	}
	return 20 * time.Second
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	manifestPath := fs.String("manifest", "", "path of the manifest (required)")
	checkUsers := fs.Bool("users", false, "also resolve every owner and group on this host")
	userMode := fs.Bool("user", false, "a user's manifest, as activate --user reads it")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *manifestPath == "" || fs.NArg() > 0 || *userMode && *checkUsers {
		fmt.Fprintln(stderr, "secretd check: --manifest PATH is required, and nothing else; --user and --users exclude one another")
		return exitUsage
	}
	var m *manifest.Manifest
	var err error
	if *userMode {
		m, err = manifest.LoadUser(*manifestPath, buildUser())
	} else {
		m, err = manifest.Load(*manifestPath)
	}
	if err != nil {
		fmt.Fprintln(stderr, "secretd:", err)
		return exitFailed
	}
	var accounts activation.Accounts
	if *checkUsers {
		accounts = activation.NewSystemAccounts()
	}
	problems := activation.Check(m, accounts)
	for _, p := range problems {
		fmt.Fprintf(stderr, "secretd: %s: %s\n", *manifestPath, p)
	}
	if len(problems) > 0 {
		return exitFailed
	}
	fmt.Fprintf(stdout, "%s: %d secrets, %d templates: ok\n", *manifestPath, len(m.Secrets), len(m.Templates))
	return exitOK
}

func status(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", stderr)
	mountPoint := fs.String("mount-point", manifest.DefaultMountPoint, "the ramfs holding the generations")
	asJSON := fs.Bool("json", false, "print JSON")
	userMode := fs.Bool("user", false, "the calling user's own secrets (default mount point $XDG_RUNTIME_DIR/secretd.d)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "secretd status: unexpected arguments")
		return exitUsage
	}
	store := ramfs.Store{Root: *mountPoint, User: *userMode}
	if *userMode && !flagSet(fs, "mount-point") {
		who, err := currentUser()
		if err != nil {
			fmt.Fprintln(stderr, "secretd:", err)
			return exitUnhealthy
		}
		store.Root = filepath.Join(who.RuntimeDir, manifest.DefaultUserMountPoint)
	}
	st := activation.ReadStoreStatus(store)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			fmt.Fprintln(stderr, "secretd:", err)
			return exitFailed
		}
	} else {
		st.Print(stdout)
	}
	switch {
	case st.Unreadable:
		return exitUnreadable
	case !st.Healthy:
		return exitUnhealthy
	}
	return exitOK
}
