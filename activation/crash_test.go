package activation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
	"github.com/secretd/secretd/units"
)

// The crash tests run activations in a child process (this test binary again, running only
// TestCrashChild) and kill it with SIGKILL: at the Nth hook, at the Nth hook of one name, or
// after a delay. The child inherits the parent's private mount namespace.
const (
	crashChildEnv    = "SECRETD_CRASH_CHILD"
	crashManifestEnv = "SECRETD_CRASH_MANIFEST"
	crashAtEnv       = "SECRETD_CRASH_AT"
	crashPointEnv    = "SECRETD_CRASH_POINT"
	crashAfterEnv    = "SECRETD_CRASH_AFTER"
)

// TestCrashChild is the child side of the crash tests; run directly it does nothing.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) == "" {
		t.Skip("runs only as the child process of the crash tests")
	}
	m, err := manifest.Load(os.Getenv(crashManifestEnv))
	if err != nil {
		t.Fatal(err)
	}
	killAt, _ := strconv.Atoi(os.Getenv(crashAtEnv))
	point := os.Getenv(crashPointEnv)
	after, _ := time.ParseDuration(os.Getenv(crashAfterEnv))
	kill := func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	calls := 0
	opts := activation.Options{
		ManifestPath: "crash-manifest.json",
		Hook: func(p string) {
			if point != "" && p != point {
				return
			}
			calls++
			if calls == killAt {
				kill()
			}
		},
	}
	if after > 0 {
		time.AfterFunc(after, kill)
	}
	if _, err := activation.Activate(context.Background(), m, opts); err != nil {
		t.Fatalf("activate: %v", err)
	}
}

// crashRun is how the child is to die.
type crashRun struct {
	killAt int           // the Nth hook call (of point, if set) kills it; 0: no hook kills
	point  string        // count only hooks of this name
	after  time.Duration // kill after this long; 0: no timer
}

// runCrashChild activates the manifest at manifestPath in a child process and reports whether
// SIGKILL ended it. Any other failure of the child is returned as an error with its output,
// which never holds plaintext.
func runCrashChild(manifestPath string, run crashRun) (killed bool, err error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashChildEnv+"=1",
		crashManifestEnv+"="+manifestPath,
		crashAtEnv+"="+strconv.Itoa(run.killAt),
		crashPointEnv+"="+run.point,
		crashAfterEnv+"="+run.after.String(),
	)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("child: %v\n%s", err, out)
	}
	return false, nil
}

// wantFile is one output file as a manifest declares it.
type wantFile struct {
	content  []byte
	uid, gid int
	mode     uint32
}

// crashScenario is an OLD and a NEW manifest differing in every way an activation can differ:
// changed content, mode and owner, an added and a removed secret, nested names, a template
// whose content follows a changed secret, a path symlink kept, one moved and one added.
type crashScenario struct {
	f                  *fixture
	old, new           []manifest.Secret
	oldTmpl, newTmpl   manifest.Template
	placeholders       map[string]string
	oldFiles, newFiles map[string]wantFile
	// links maps a path symlink, relative to the run's root, to the output it names.
	oldLinks, newLinks map[string]string
	plaintexts         [][]byte
}

func newCrashScenario(f *fixture) *crashScenario {
	s := &crashScenario{f: f}
	enc := func(name, content string) string {
		s.plaintexts = append(s.plaintexts, []byte(content))
		return f.encrypt(name, []byte(content))
	}
	tokOld, tokNew := enc("tok-old", "token-old-value-1"), enc("tok-new", "token-new-value-2")
	db := enc("db", "db-password-stays")
	api := enc("api", "api-key-stays-the-same")
	shared := enc("shared", "shared-never-changes")
	gone := enc("gone", "removed-in-new")
	added := enc("added", "added-in-new-value")

	own := func(owner, group, mode string) manifest.Ownership {
		return manifest.Ownership{Owner: owner, Group: group, Mode: mode}
	}
	ids := func(uid, gid int, mode string) manifest.Ownership {
		return manifest.Ownership{UID: intp(uid), GID: intp(gid), Mode: mode}
	}
	s.old = []manifest.Secret{
		{Name: "token", File: tokOld, Ownership: own("nobody", "root", "0400"), Path: "home/alice/token",
			Consumers: manifest.Consumers{RestartUnits: []string{"alice.service"}}},
		{Name: "db/password", File: db, Ownership: own("root", "nogroup", "0440"), Path: "etc/db/password"},
		{Name: "app/api/key", File: api, Ownership: ids(4242, 4343, "0400")},
		{Name: "shared", File: shared, Ownership: own("root", "root", "0444")},
		{Name: "gone", File: gone},
	}
	s.new = []manifest.Secret{
		{Name: "token", File: tokNew, Ownership: own("nobody", "root", "0400"), Path: "home/alice/token",
			Consumers: manifest.Consumers{RestartUnits: []string{"alice.service"}}},
		{Name: "db/password", File: db, Ownership: own("root", "nogroup", "0400"), Path: "etc/db/password2"},
		{Name: "app/api/key", File: api, Ownership: ids(4343, 4343, "0400")},
		{Name: "shared", File: shared, Ownership: own("root", "root", "0444")},
		{Name: "added/deep/new", File: added, Ownership: own("nobody", "nogroup", "0600"), Path: "home/bob/new"},
	}
	s.placeholders = map[string]string{"token": "<SECRETD:token>"}
	tmpl := manifest.Template{Name: "app.conf", Content: "# app\ntoken = <SECRETD:token>\n",
		Ownership: own("nobody", "root", "0440"), Path: "etc/app.conf"}
	s.oldTmpl, s.newTmpl = tmpl, tmpl
	s.oldTmpl.Consumers = manifest.Consumers{ReloadUnits: []string{"app.service"}}
	s.newTmpl.Consumers = s.oldTmpl.Consumers
	s.plaintexts = append(s.plaintexts, []byte("token = token-old-value-1"), []byte("token = token-new-value-2"))

	s.oldFiles = map[string]wantFile{
		"token":             {[]byte("token-old-value-1"), 65534, 0, 0o400},
		"db/password":       {[]byte("db-password-stays"), 0, 65534, 0o440},
		"app/api/key":       {[]byte("api-key-stays-the-same"), 4242, 4343, 0o400},
		"shared":            {[]byte("shared-never-changes"), 0, 0, 0o444},
		"gone":              {[]byte("removed-in-new"), 0, 0, 0o400},
		"rendered/app.conf": {[]byte("# app\ntoken = token-old-value-1\n"), 65534, 0, 0o440},
	}
	s.newFiles = map[string]wantFile{
		"token":             {[]byte("token-new-value-2"), 65534, 0, 0o400},
		"db/password":       {[]byte("db-password-stays"), 0, 65534, 0o400},
		"app/api/key":       {[]byte("api-key-stays-the-same"), 4343, 4343, 0o400},
		"shared":            {[]byte("shared-never-changes"), 0, 0, 0o444},
		"added/deep/new":    {[]byte("added-in-new-value"), 65534, 65534, 0o600},
		"rendered/app.conf": {[]byte("# app\ntoken = token-new-value-2\n"), 65534, 0, 0o440},
	}
	s.oldLinks = map[string]string{"home/alice/token": "token", "etc/db/password": "db/password", "etc/app.conf": "rendered/app.conf"}
	s.newLinks = map[string]string{"home/alice/token": "token", "etc/db/password2": "db/password", "home/bob/new": "added/deep/new", "etc/app.conf": "rendered/app.conf"}
	return s
}

// manifest returns OLD or NEW laid out under root, decoded as the CLI would load it.
func (s *crashScenario) manifest(root string, next bool) *manifest.Manifest {
	secrets, tmpl := s.old, s.oldTmpl
	if next {
		secrets, tmpl = s.new, s.newTmpl
	}
	secrets = append([]manifest.Secret(nil), secrets...)
	for i := range secrets {
		if secrets[i].Path != "" {
			secrets[i].Path = filepath.Join(root, secrets[i].Path)
		}
	}
	tmpl.Path = filepath.Join(root, tmpl.Path)
	m := s.f.manifest(secrets...)
	m.SecretsDir = filepath.Join(root, "run", "secrets")
	m.MountPoint = filepath.Join(root, "run", "secrets.d")
	m.Placeholders = s.placeholders
	m.Templates = []manifest.Template{tmpl}
	return s.f.normalize(m)
}

// newRoot makes an empty host under the fixture's directory, unmounted when the test ends.
func (s *crashScenario) newRoot(name string) string {
	root := filepath.Join(s.f.dir, name)
	if err := os.MkdirAll(root, 0o755); err != nil {
		s.f.t.Fatal(err)
	}
	s.f.t.Cleanup(func() { unix.Unmount(filepath.Join(root, "run", "secrets.d"), unix.MNT_DETACH) })
	return root
}

// activate runs a complete activation in this process.
func (s *crashScenario) activate(root string, next bool, opts activation.Options) (*activation.Plan, error) {
	if opts.Log == nil {
		opts.Log = s.f.log
	}
	opts.ManifestPath = "crash-manifest.json"
	return activation.Activate(context.Background(), s.manifest(root, next), opts)
}

// writeManifest stores the manifest for the child to load.
func (s *crashScenario) writeManifest(root string, next bool) string {
	data, err := json.Marshal(s.manifest(root, next))
	if err != nil {
		s.f.t.Fatal(err)
	}
	p := filepath.Join(root, "manifest.json")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		s.f.t.Fatal(err)
	}
	return p
}

// liveFiles reads every file of the generation secretsDir points at.
func liveFiles(secretsDir, mountPoint string) (int, map[string]wantFile, error) {
	gen, ok, err := ramfs.Store{Root: mountPoint}.Live(secretsDir)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, fmt.Errorf("%s does not point at a generation", secretsDir)
	}
	dir := ramfs.Store{Root: mountPoint}.Dir(gen)
	files := map[string]wantFile{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		content, info, err := ramfs.ReadFile(dir, rel)
		if err != nil {
			return err
		}
		files[rel] = wantFile{content: content, uid: info.UID, gid: info.GID, mode: info.Mode}
		return nil
	})
	return gen, files, err
}

// differences lists, without content, how got differs from want.
func differences(got, want map[string]wantFile) []string {
	var diffs []string
	for _, name := range sortedNames(want) {
		g, ok := got[name]
		w := want[name]
		switch {
		case !ok:
			diffs = append(diffs, name+": missing")
		case !bytes.Equal(g.content, w.content):
			diffs = append(diffs, fmt.Sprintf("%s: content mismatch (%d bytes, want %d)", name, len(g.content), len(w.content)))
		case g.uid != w.uid || g.gid != w.gid || g.mode != w.mode:
			diffs = append(diffs, fmt.Sprintf("%s: %d:%d %04o, want %d:%d %04o", name, g.uid, g.gid, g.mode, w.uid, w.gid, w.mode))
		}
	}
	for _, name := range sortedNames(got) {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, name+": unexpected")
		}
	}
	return diffs
}

func sortedNames(m map[string]wantFile) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkAfterCrash checks the invariant of an interrupted activation: secretsDir points at one
// complete generation, wholly OLD or wholly NEW, and the path symlinks resolve to it. It
// returns which one is live.
func (s *crashScenario) checkAfterCrash(root string) (which string, problems []string) {
	secretsDir, mountPoint := filepath.Join(root, "run", "secrets"), filepath.Join(root, "run", "secrets.d")
	_, files, err := liveFiles(secretsDir, mountPoint)
	if err != nil {
		return "", []string{err.Error()}
	}
	oldDiff, newDiff := differences(files, s.oldFiles), differences(files, s.newFiles)
	var links map[string]string
	switch {
	case len(oldDiff) == 0:
		which, links = "old", s.oldLinks
	case len(newDiff) == 0:
		// A link NEW adds or moves may not be made yet; those kept from OLD must be there.
		which, links = "new", map[string]string{}
		for l, name := range s.newLinks {
			if s.oldLinks[l] == name {
				links[l] = name
			}
		}
	default:
		return "", []string{fmt.Sprintf("live generation is neither OLD nor NEW: against OLD %v; against NEW %v", oldDiff, newDiff)}
	}
	for l := range links {
		if _, err := os.Lstat(filepath.Join(root, l)); err != nil {
			problems = append(problems, fmt.Sprintf("path %s: %v", l, err))
		}
	}
	// Every path symlink present, made by either run, resolves to the live file.
	for _, all := range []map[string]string{s.oldLinks, s.newLinks} {
		for l, name := range all {
			p := filepath.Join(root, l)
			if _, err := os.Lstat(p); err != nil {
				continue
			}
			content, err := os.ReadFile(p)
			if err != nil {
				problems = append(problems, fmt.Sprintf("path %s does not resolve: %v", l, err))
			} else if !bytes.Equal(content, files[name].content) {
				problems = append(problems, fmt.Sprintf("path %s: content mismatch with the live %s", l, name))
			}
		}
	}
	return which, problems
}

// checkExactly checks that a completed activation left exactly the given manifest live with
// its symlinks, no other path symlink, no leftover and no more generations than kept.
func (s *crashScenario) checkExactly(root string, next bool) []string {
	secretsDir, mountPoint := filepath.Join(root, "run", "secrets"), filepath.Join(root, "run", "secrets.d")
	want, links, others := s.oldFiles, s.oldLinks, s.newLinks
	if next {
		want, links, others = s.newFiles, s.newLinks, s.oldLinks
	}
	_, files, err := liveFiles(secretsDir, mountPoint)
	if err != nil {
		return []string{err.Error()}
	}
	problems := differences(files, want)
	for l, name := range links {
		content, err := os.ReadFile(filepath.Join(root, l))
		if err != nil {
			problems = append(problems, fmt.Sprintf("path %s: %v", l, err))
		} else if !bytes.Equal(content, want[name].content) {
			problems = append(problems, fmt.Sprintf("path %s: content mismatch", l))
		}
	}
	for l := range others {
		if _, declared := links[l]; declared {
			continue
		}
		if _, err := os.Lstat(filepath.Join(root, l)); err == nil {
			problems = append(problems, fmt.Sprintf("path %s is not declared but still there", l))
		}
	}
	problems = append(problems, leftovers(root)...)
	if gens, err := (ramfs.Store{Root: mountPoint}).Generations(); err != nil || len(gens) > 2 {
		problems = append(problems, fmt.Sprintf("generations %v (keepGenerations 2): %v", gens, err))
	}
	if st := activation.ReadStatus(mountPoint); !st.Healthy {
		problems = append(problems, fmt.Sprintf("status unhealthy: %v", st.Problems))
	}
	return problems
}

// leftovers lists what an interrupted run may leave anywhere under root: unfinished
// generations and temporary symlinks or files.
func leftovers(root string) []string {
	var found []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".building-") || strings.HasPrefix(d.Name(), ".secretd-tmp-") {
			rel, _ := filepath.Rel(root, p)
			found = append(found, "leftover "+rel)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	return found
}

// hookPoints counts the hooks of a full NEW activation over OLD, by name.
func (s *crashScenario) hookPoints(t *testing.T) (total int, byName map[string]int, took time.Duration) {
	root := s.newRoot("probe")
	if _, err := s.activate(root, false, activation.Options{}); err != nil {
		t.Fatal(err)
	}
	byName = map[string]int{}
	start := time.Now()
	_, err := s.activate(root, true, activation.Options{Hook: func(p string) { total++; byName[p]++ }})
	took = time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if problems := s.checkExactly(root, true); len(problems) > 0 {
		t.Fatalf("an uninterrupted activation of NEW: %v", problems)
	}
	if byName["write"] != len(s.newFiles) || byName["swap"] != 1 || byName["commit"] != 1 || byName["link"] == 0 {
		t.Fatalf("hook points %v: expected a write per file, a commit, a swap and links", byName)
	}
	return total, byName, took
}

// recoverExactly runs a normal activation of NEW (or OLD) after a crash and reports how the
// result differs from exactly that manifest.
func (s *crashScenario) recoverExactly(root string, newManifest bool) []string {
	label := "OLD"
	if newManifest {
		label = "NEW"
	}
	if _, err := s.activate(root, newManifest, activation.Options{}); err != nil {
		return []string{"activating " + label + " after the crash: " + err.Error()}
	}
	return s.checkExactly(root, newManifest)
}

// crashAndCheck prepares OLD under a fresh root, kills an activation of NEW as run says, and
// checks the invariant. It returns the root, which generation is live and what is wrong.
func (s *crashScenario) crashAndCheck(name string, run crashRun) (root, which string, killed bool, problems []string) {
	root = s.newRoot(name)
	if _, err := s.activate(root, false, activation.Options{}); err != nil {
		return root, "", false, []string{"activating OLD: " + err.Error()}
	}
	killed, err := runCrashChild(s.writeManifest(root, true), run)
	if err != nil {
		return root, "", killed, []string{err.Error()}
	}
	which, problems = s.checkAfterCrash(root)
	return root, which, killed, problems
}

func TestCrashAtEveryHookPoint(t *testing.T) {
	f := newFixture(t)
	s := newCrashScenario(f)
	total, byName, _ := s.hookPoints(t)
	outcomes := map[string]int{}
	for n := 1; n <= total; n++ {
		root, which, killed, problems := s.crashAndCheck(fmt.Sprintf("kill-%d", n), crashRun{killAt: n})
		if !killed && len(problems) == 0 {
			problems = append(problems, fmt.Sprintf("the child finished without reaching hook call %d", n))
		}
		outcomes[which]++
		hadLeftovers := len(leftovers(root)) > 0
		if len(problems) == 0 {
			problems = s.recoverExactly(root, true)
		}
		for _, p := range problems {
			t.Errorf("killed at hook call %d (%s live, leftovers before recovery: %v): %s", n, which, hadLeftovers, p)
		}
		unix.Unmount(filepath.Join(root, "run", "secrets.d"), unix.MNT_DETACH)
	}
	f.noPlaintextIn(s.plaintexts)
	if !t.Failed() {
		t.Logf("%d kill points (hooks %v) tried, all held: %d left OLD live, %d NEW; each recovered to exactly NEW", total, byName, outcomes["old"], outcomes["new"])
	}
}

// After a crash the operator may switch back to the configuration that was live: the
// activation of OLD must then clean up what the interrupted activation of NEW left.
func TestCrashThenRollback(t *testing.T) {
	f := newFixture(t)
	s := newCrashScenario(f)
	total, _, _ := s.hookPoints(t)
	held := 0
	for n := 1; n <= total; n++ {
		root, which, killed, problems := s.crashAndCheck(fmt.Sprintf("rollback-%d", n), crashRun{killAt: n})
		if !killed && len(problems) == 0 {
			problems = append(problems, fmt.Sprintf("the child finished without reaching hook call %d", n))
		}
		if len(problems) == 0 {
			problems = s.recoverExactly(root, false)
		}
		for _, p := range problems {
			t.Errorf("killed at hook call %d (%s live), then OLD activated: %s", n, which, p)
		}
		if len(problems) == 0 {
			held++
		}
		unix.Unmount(filepath.Join(root, "run", "secrets.d"), unix.MNT_DETACH)
	}
	t.Logf("rollback after a kill at each of %d hook points: %d held", total, held)
}

func TestCrashAtRandomTimes(t *testing.T) {
	f := newFixture(t)
	s := newCrashScenario(f)
	_, _, took := s.hookPoints(t)
	// The child starts its timer as it calls Activate; spread the kills over the whole run.
	window := max(5*time.Millisecond, 3*took/2)
	runs := 300
	if testing.Short() {
		runs = 30
	}
	deadline := time.Now().Add(45 * time.Second)
	outcomes := map[string]int{}
	tried, withLeftovers := 0, 0
	for i := 0; i < runs && time.Now().Before(deadline); i++ {
		tried++
		delay := time.Duration(rand.Int64N(int64(window))) + time.Microsecond
		root, which, killed, problems := s.crashAndCheck(fmt.Sprintf("random-%d", i), crashRun{after: delay})
		switch {
		case !killed:
			outcomes["completed"]++
		default:
			outcomes[which]++
		}
		if len(leftovers(root)) > 0 {
			withLeftovers++
		}
		if len(problems) == 0 {
			problems = s.recoverExactly(root, true)
		}
		for _, p := range problems {
			t.Errorf("killed after %v (%s live): %s", delay, which, p)
		}
		unix.Unmount(filepath.Join(root, "run", "secrets.d"), unix.MNT_DETACH)
		os.RemoveAll(root)
	}
	f.noPlaintextIn(s.plaintexts)
	if !t.Failed() {
		t.Logf("%d kills at random times in 0-%v tried, all held: %d left OLD live, %d NEW, %d runs finished first; %d left leftovers, all cleaned",
			tried, window, outcomes["old"], outcomes["new"], outcomes["completed"], withLeftovers)
	}
}

// recordingSignaller notes what an activation asks systemd to do.
type recordingSignaller struct {
	mu       sync.Mutex
	requests []units.Request
}

func (r *recordingSignaller) Signal(ctx context.Context, req units.Request, wait time.Duration, log *zap.Logger) []units.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, req)
	return nil
}

func (r *recordingSignaller) Close() {}

func (r *recordingSignaller) connect(ctx context.Context) (activation.Signaller, error) {
	return r, nil
}

func (r *recordingSignaller) units() (restart, reload []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, req := range r.requests {
		restart = append(restart, req.Restart...)
		reload = append(reload, req.Reload...)
	}
	sort.Strings(restart)
	sort.Strings(reload)
	return restart, reload
}

// An activation killed after the swap never told the units that consume what changed; the
// next activation must, although the live generation already matches its manifest.
func TestCrashAfterSwapStillSignalsUnits(t *testing.T) {
	f := newFixture(t)
	s := newCrashScenario(f)
	for _, point := range []string{"swap", "link", "prune", "state"} {
		root, which, killed, problems := s.crashAndCheck("signal-"+point, crashRun{killAt: 1, point: point})
		if !killed || which != "new" || len(problems) > 0 {
			t.Fatalf("kill at %s: killed %v, %s live, %v", point, killed, which, problems)
		}
		var rec recordingSignaller
		if _, err := s.activate(root, true, activation.Options{Connect: rec.connect}); err != nil {
			t.Fatal(err)
		}
		restart, reload := rec.units()
		// token changed (alice.service); the template rendering it changed (app.service).
		if strings.Join(restart, " ") != "alice.service" || strings.Join(reload, " ") != "app.service" {
			t.Errorf("killed after %s: the next activation restarted %v and reloaded %v, want [alice.service] and [app.service]", point, restart, reload)
		}
		unix.Unmount(filepath.Join(root, "run", "secrets.d"), unix.MNT_DETACH)
	}
}

// The temporary symlinks of an interrupted swap must not outlive the next activation, even
// one that changes nothing.
func TestInterruptedSwapLeftoversRemovedByNoOpActivation(t *testing.T) {
	f := newFixture(t)
	s := newCrashScenario(f)
	root := s.newRoot("noop")
	if _, err := s.activate(root, false, activation.Options{}); err != nil {
		t.Fatal(err)
	}
	secretsDir, mountPoint := filepath.Join(root, "run", "secrets"), filepath.Join(root, "run", "secrets.d")
	gen, _, _ := ramfs.Store{Root: mountPoint}.Live(secretsDir)
	// What SwapSymlink leaves when killed between its symlink and its rename.
	plant := map[string]string{
		filepath.Join(root, "run", ".secretd-tmp-secrets"):         ramfs.Store{Root: mountPoint}.Dir(gen),
		filepath.Join(root, "home", "alice", ".secretd-tmp-token"): filepath.Join(secretsDir, "token"),
	}
	for link, target := range plant {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := s.activate(root, false, activation.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if plan.NewGeneration {
		t.Fatal("activating the live manifest again made a new generation")
	}
	for _, p := range leftovers(root) {
		t.Errorf("after a no-op activation: %s", p)
	}
}

// Two activations started together take turns: the second plans, writes and swaps only after
// the first is done, and plans against what the first made live.
func TestConcurrentActivationsAreSerialised(t *testing.T) {
	f := newFixture(t)
	s := newCrashScenario(f)
	root := s.newRoot("concurrent")
	if _, err := s.activate(root, false, activation.Options{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []string
	record := func(who, point string) {
		mu.Lock()
		events = append(events, who+":"+point)
		mu.Unlock()
	}
	firstWriting := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	var planA, planB *activation.Plan
	var errA, errB error
	wg.Add(1)
	go func() {
		defer wg.Done()
		planA, errA = s.activate(root, true, activation.Options{Hook: func(p string) {
			record("A", p)
			once.Do(func() {
				close(firstWriting)
				// Hold the lock long enough for B to try to take it.
				time.Sleep(300 * time.Millisecond)
			})
		}})
	}()
	<-firstWriting
	wg.Add(1)
	go func() {
		defer wg.Done()
		planB, errB = s.activate(root, false, activation.Options{Hook: func(p string) { record("B", p) }})
	}()
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("activations: %v; %v", errA, errB)
	}
	lastA, firstB := -1, len(events)
	for i, e := range events {
		if strings.HasPrefix(e, "A:") {
			lastA = i
		}
		if strings.HasPrefix(e, "B:") && i < firstB {
			firstB = i
		}
	}
	if firstB == len(events) || lastA > firstB {
		t.Fatalf("activations interleaved: %v", events)
	}
	if planB.LiveGeneration != planA.LiveGeneration+1 || !planB.NewGeneration {
		t.Errorf("B planned against generation %d, want the one A made live (%d)", planB.LiveGeneration, planA.LiveGeneration+1)
	}
	if problems := s.checkExactly(root, false); len(problems) > 0 {
		t.Errorf("after both (B last, activating OLD): %v", problems)
	}
	t.Logf("hooks in order: %v", events)
}
