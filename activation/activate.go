package activation

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/identity"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
	"github.com/secretd/secretd/units"
)

// Signaller queues restarts and reloads of units; units.Signaller is the real one.
type Signaller interface {
	Signal(ctx context.Context, req units.Request, wait time.Duration, log *zap.Logger) []units.Result
	Close()
}

// Options steer one activation.
type Options struct {
	// ManifestPath is recorded in the state; the manifest itself is passed to Activate.
	ManifestPath string
	// DryRun plans, decrypting to compare, and writes nothing anywhere.
	DryRun bool
	// ForUsers writes root-owned secrets without reading the user database, for secrets needed
	// before users exist.
	ForUsers bool
	// User activates the calling user's own secrets: generations go to a private directory on
	// the user's runtime tmpfs, where no ramfs can be mounted.
	User bool
	Log  *zap.Logger
	// Accounts resolves owners; nil reads the host's user database.
	Accounts Accounts
	// Connect reaches systemd; nil signals no unit.
	Connect func(ctx context.Context) (Signaller, error)
	// UnitWait bounds the wait for queued unit jobs to finish; 0 queues them and returns.
	UnitWait time.Duration
	// Hook, if set, is called at each step that changes the file system, named; crash tests
	// kill the process there.
	Hook func(point string)
	Now  func() time.Time
}

func (o *Options) hook(point string) {
	if o.Hook != nil {
		o.Hook(point)
	}
}

// LiveError is a failure after the generation became live: its secrets are in place, but what
// follows (path symlinks, pruning, the state) did not finish; the next activation completes it.
type LiveError struct {
	Generation int
	Err        error
}

func (e *LiveError) Error() string {
	return fmt.Sprintf("generation %d is live, but the activation did not finish (the next one completes it): %v", e.Generation, e.Err)
}

func (e *LiveError) Unwrap() error { return e.Err }

// resolveOutputs lists every output with numeric ownership, reporting all failures at once.
func resolveOutputs(m *manifest.Manifest, accounts Accounts, forUsers bool) ([]Output, error) {
	outputs := make([]Output, 0, len(m.Secrets)+len(m.Templates))
	var problems []string
	for i := range m.Secrets {
		s := &m.Secrets[i]
		o := Output{Name: s.Name, Kind: KindSecret, File: s.File, Format: s.Format, Key: s.Key, Link: s.Path,
			Copy: manifest.CopyToPath(s.Path, s.Symlink), RestartUnits: s.RestartUnits, ReloadUnits: s.ReloadUnits}
		if err := resolve(&o, s.Ownership, accounts, forUsers); err != nil {
			problems = append(problems, fmt.Sprintf("secret %q: %v", s.Name, err))
		}
		outputs = append(outputs, o)
	}
	for i := range m.Templates {
		t := &m.Templates[i]
		o := Output{Name: manifest.RenderedDir + "/" + t.Name, Kind: KindTemplate, Link: t.Path,
			Copy: manifest.CopyToPath(t.Path, t.Symlink), RestartUnits: t.RestartUnits, ReloadUnits: t.ReloadUnits}
		if err := resolve(&o, t.Ownership, accounts, forUsers); err != nil {
			problems = append(problems, fmt.Sprintf("template %q: %v", t.Name, err))
		}
		outputs = append(outputs, o)
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return outputs, nil
}

// fillContent attaches each secret's value and renders the templates, whose buffers it returns
// so the caller can wipe them.
// A secret in reused keeps its live content, which is read only if a new generation is written.
func fillContent(m *manifest.Manifest, outputs []Output, values map[string][]byte, reused map[string]bool) [][]byte {
	var pairs []string
	for name, token := range m.Placeholders {
		pairs = append(pairs, token, string(values[name]))
	}
	replacer := strings.NewReplacer(pairs...)
	var rendered [][]byte
	ti := 0
	for i := range outputs {
		o := &outputs[i]
		if o.Kind == KindSecret {
			o.content, o.unchanged = values[o.Name], reused[o.Name]
			continue
		}
		o.content = []byte(replacer.Replace(m.Templates[ti].Content))
		rendered = append(rendered, o.content)
		ti++
	}
	return rendered
}

// liveFile is one output of the live generation. Its content is read only where it is compared.
type liveFile struct {
	kind    string
	info    ramfs.FileInfo
	content []byte
}

func (l liveFile) sameContent(b []byte) bool { return string(l.content) == string(b) }

func readLive(dir string) (map[string]liveFile, error) {
	files, err := ramfs.StatTree(dir)
	if err != nil {
		return nil, err
	}
	live := make(map[string]liveFile, len(files))
	for rel, info := range files {
		kind := KindSecret
		if strings.HasPrefix(rel, manifest.RenderedDir+"/") {
			kind = KindTemplate
		}
		live[rel] = liveFile{kind: kind, info: info}
	}
	return live, nil
}

// liveReader reads files back from the live generation, each checked to be the very file
// described when the activation began.
type liveReader struct {
	tree *ramfs.TreeReader
	live map[string]liveFile
	read [][]byte
}

func (r *liveReader) content(name string) ([]byte, error) {
	data, info, err := r.tree.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading back the live %s: %w", name, err)
	}
	r.read = append(r.read, data)
	if want := r.live[name].info; info.Ino != want.Ino || info.Ctime != want.Ctime || info.Size != want.Size {
		return nil, fmt.Errorf("the live %s changed while this activation ran", name)
	}
	return data, nil
}

// close wipes what was read.
func (r *liveReader) close() {
	r.tree.Close()
	for _, b := range r.read {
		clear(b)
	}
}

func usedInTemplates(m *manifest.Manifest, token string) bool {
	for i := range m.Templates {
		if strings.Contains(m.Templates[i].Content, token) {
			return true
		}
	}
	return false
}

func previousConsumers(st *State) map[string]units.Request {
	if st == nil {
		return nil
	}
	consumers := make(map[string]units.Request, len(st.Outputs))
	{
		for _, o := range st.Outputs {
			consumers[o.Name] = units.Request{Restart: o.RestartUnits, Reload: o.ReloadUnits}
		}
	}
	return consumers
}

func links(outputs []Output) []string {
	var l []string
	for _, o := range outputs {
		if o.Link != "" {
			l = append(l, o.Link)
		}
	}
	sort.Strings(l)
	return l
}

// staleLinks are path symlinks of the previous activation, or of one interrupted since, that
// are no longer declared.
func staleLinks(previous *State, interrupted *pending, outputs []Output) []string {
	declared := map[string]bool{}
	for _, o := range outputs {
		declared[o.Link] = true
	}
	var candidates []string
	if previous != nil {
		for _, o := range previous.Outputs {
			candidates = append(candidates, o.Link)
		}
	}
	if interrupted != nil {
		candidates = append(candidates, interrupted.Links...)
	}
	seen := map[string]bool{}
	var stale []string
	for _, l := range candidates {
		if l != "" && !declared[l] && !seen[l] {
			seen[l] = true
			stale = append(stale, l)
		}
	}
	sort.Strings(stale)
	return stale
}

// cleanLeftovers removes what a killed run left: unfinished generations and temporary symlinks
// beside secretsDir and beside every path symlink it may have been making.
func cleanLeftovers(m *manifest.Manifest, store ramfs.Store, outputs []Output, previous *State, interrupted *pending, log *zap.Logger) error {
	if store.Ready() {
		removed, err := store.CleanLeftovers()
		if err != nil {
			return fmt.Errorf("removing leftovers of an interrupted run: %w", err)
		}
		if len(removed) > 0 {
			log.Info("removed leftovers of an interrupted run", zap.Strings("paths", removed))
		}
	}
	candidates := append([]string{m.SecretsDir}, links(outputs)...)
	candidates = append(candidates, staleLinks(previous, interrupted, outputs)...)
	for _, l := range candidates {
		if err := ramfs.RemoveStaleTmpLink(l); err != nil {
			log.Warn("removing a temporary symlink of an interrupted run", zap.String("path", l), zap.Error(err))
		}
	}
	return nil
}

// checkSecretsDir accepts a missing secretsDir or a symlink. A real directory, as another tool
// may leave, is replaced only when empty: secretd never deletes files it did not write.
func checkSecretsDir(dir string) (emptyRealDir bool, err error) {
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("secretsDir %s: %w", dir, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return false, nil
	case fi.IsDir():
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false, fmt.Errorf("secretsDir %s: %w", dir, err)
		}
		if len(entries) > 0 {
			return false, fmt.Errorf("secretsDir %s is a real directory holding %d entries (left by another tool?); secretd replaces it with a symlink only when it is empty: move its contents away", dir, len(entries))
		}
		return true, nil
	default:
		return false, fmt.Errorf("secretsDir %s exists and is neither a symlink nor a directory", dir)
	}
}

// checkLinkTargets refuses, before anything is written, a path that would replace a directory,
// or whose parent cannot be a directory. A regular file there is replaced: it is what agenix
// leaves with symlink = false, or a copy secretd made.
func checkLinkTargets(outputs []Output) error {
	var problems []string
	for _, o := range outputs {
		if o.Link == "" {
			continue
		}
		fi, err := os.Lstat(o.Link)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := checkParent(filepath.Dir(o.Link)); err != nil {
				problems = append(problems, fmt.Sprintf("%s %q: path %s: %v", o.Kind, o.Name, o.Link, err))
			}
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s %q: path %s: %v", o.Kind, o.Name, o.Link, err))
		case fi.Mode()&fs.ModeSymlink != 0:
		case fi.Mode().IsRegular():
		case fi.IsDir():
			problems = append(problems, fmt.Sprintf("%s %q: path %s is a directory; secretd only replaces symlinks and files there", o.Kind, o.Name, o.Link))
		default:
			problems = append(problems, fmt.Sprintf("%s %q: path %s is a %s; secretd only replaces symlinks and files there", o.Kind, o.Name, o.Link, fi.Mode().Type()))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

func checkParent(dir string) error {
	for ; ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
}

// parallelWriteMin is the number of outputs from which a generation is written on every core.
const parallelWriteMin = 128

func writeGeneration(m *manifest.Manifest, store ramfs.Store, outputs []Output, opts *Options) (int, map[string]ramfs.FileInfo, error) {
	if err := store.Ensure(); err != nil {
		return 0, nil, err
	}
	next, err := store.Next()
	if err != nil {
		return 0, nil, err
	}
	b, err := store.Begin(next)
	if err != nil {
		return 0, nil, err
	}
	// A large generation is written by one worker per core: a file costs a handful of
	// syscalls, microseconds each, and a host may have thousands. A small one is written in
	// order, which nothing could measure the difference of.
	workers := 1
	if len(outputs) >= parallelWriteMin {
		workers = runtime.NumCPU()
	}
	var hookMu sync.Mutex
	var taken atomic.Int64
	var failed atomic.Bool
	errs := make([]error, len(outputs))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(taken.Add(1)) - 1; i < len(outputs) && !failed.Load(); i = int(taken.Add(1)) - 1 {
				o := &outputs[i]
				if err := b.WriteFile(o.Name, o.UID, o.GID, o.Mode, o.content); err != nil {
					errs[i] = fmt.Errorf("%s %q: %w", o.Kind, o.Name, err)
					failed.Store(true)
					return
				}
				hookMu.Lock()
				opts.hook("write")
				hookMu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Abort()
			return 0, nil, err
		}
	}
	for dir, a := range directories(outputs) {
		if err := b.SetDir(dir, a.UID, a.GID, a.Mode); err != nil {
			b.Abort()
			return 0, nil, err
		}
	}
	if _, err := b.Commit(); err != nil {
		b.Abort()
		return 0, nil, err
	}
	opts.hook("commit")
	return next, b.Written, nil
}

func makeLinks(m *manifest.Manifest, outputs []Output, stale []string, opts *Options) error {
	for _, o := range outputs {
		if o.Link == "" {
			continue
		}
		if o.Copy {
			if err := placeCopy(o, opts); err != nil {
				return err
			}
			continue
		}
		target := filepath.Join(m.SecretsDir, o.Name)
		if current, err := os.Readlink(o.Link); err == nil && current == target {
			continue
		}
		replaced, err := ramfs.PlaceSymlink(o.Link, target)
		if err != nil {
			return fmt.Errorf("%s %q: path %w", o.Kind, o.Name, err)
		}
		if replaced {
			opts.Log.Info("replaced a file at a path by its symlink", zap.String(o.Kind, o.Name), zap.String("path", o.Link))
		}
		opts.hook("link")
	}
	ours := func(target string) bool { return strings.HasPrefix(target, m.SecretsDir+"/") }
	for _, l := range stale {
		if err := ramfs.RemoveSymlink(l, ours); err != nil {
			opts.Log.Warn("removing a symlink no longer declared", zap.String("path", l), zap.Error(err))
		}
	}
	return nil
}

// placeCopy writes o's content at its path as a file of its own (symlink = false), and warns
// when that puts a plaintext secret on a disk.
func placeCopy(o Output, opts *Options) error {
	changed, inMemory, err := ramfs.PlaceFile(o.Link, o.UID, o.GID, o.Mode, o.content)
	if err != nil {
		return fmt.Errorf("%s %q: path %w", o.Kind, o.Name, err)
	}
	if changed {
		if !inMemory {
			opts.Log.Warn("a copy of a secret was written to a file system that is neither tmpfs nor ramfs: it is on disk", zap.String(o.Kind, o.Name), zap.String("path", o.Link))
		}
		opts.hook("link")
	}
	return nil
}

func outputStates(m *manifest.Manifest, outputs []Output, sources map[string]string, stamps map[string]InputStamp, written map[string]ramfs.FileInfo) []OutputState {
	states := make([]OutputState, len(outputs))
	for i, o := range outputs {
		w := written[o.Name]
		states[i] = OutputState{
			Source: sources[o.Name], Input: stamps[o.File], Ino: w.Ino, Ctime: w.Ctime,
			Name: o.Name, Kind: o.Kind, Path: filepath.Join(m.SecretsDir, o.Name), Link: o.Link, Copy: o.Copy,
			Owner: o.Owner, Group: o.Group, UID: o.UID, GID: o.GID, Mode: o.ModeString, Size: int(w.Size),
			RestartUnits: o.RestartUnits, ReloadUnits: o.ReloadUnits,
		}
	}
	return states
}

func signal(ctx context.Context, plan *Plan, opts *Options) []units.Result {
	if len(plan.Restart) == 0 && len(plan.Reload) == 0 || opts.Connect == nil {
		return nil
	}
	s, err := opts.Connect(ctx)
	if err != nil {
		opts.Log.Warn("systemd not reachable: units not signalled; the secrets are in place", zap.Error(err),
			zap.Strings("restart", plan.Restart), zap.Strings("reload", plan.Reload))
		return units.NotSignalled(units.Request{Restart: plan.Restart, Reload: plan.Reload}, "systemd unreachable")
	}
	defer s.Close()
	return s.Signal(ctx, units.Request{Restart: plan.Restart, Reload: plan.Reload}, opts.UnitWait, opts.Log)
}

// lock serialises activations sharing a mount point. The lock file sits beside the mount point,
// not in it, so it is the same file before and after the ramfs is mounted.
func lock(mountPoint string) (func(), error) {
	parent := filepath.Dir(mountPoint)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(parent, "."+filepath.Base(mountPoint)+".lock")
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { unix.Close(fd) }, nil
}

// usedIdentities lists the identities that decrypted this run's files, or, when every file was
// unchanged and taken from the live generation, those that decrypted them then.
func usedIdentities(ids *identity.Set, previous *State) []identity.Loaded {
	if used := ids.Used(); len(used) > 0 || previous == nil {
		return used
	}
	return previous.Identities
}
