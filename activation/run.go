package activation

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/secretd/secretd/identity"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
)

// Activate makes m live. On any error before the swap nothing visible changes.
func Activate(ctx context.Context, m *manifest.Manifest, opts Options) (*Plan, error) {
	r := newRun(m, opts)
	defer r.close()
	plan, err := r.plan()
	if err != nil {
		return nil, err
	}
	if err := r.decrypt(plan); err != nil {
		return nil, err
	}
	if err := r.compare(plan); err != nil {
		return nil, err
	}
	if err := r.check(plan); err != nil || r.opts.DryRun {
		return plan, err
	}
	if err := r.write(plan); err != nil {
		return plan, err
	}
	if err := r.swap(plan); err != nil {
		return plan, err
	}
	// From here on the new generation is live: a failure leaves it so, for the next run to finish.
	if err := r.link(plan); err != nil {
		return plan, &LiveError{Generation: r.gen, Err: err}
	}
	r.prune()
	if err := r.record(plan); err != nil {
		return plan, &LiveError{Generation: r.gen, Err: err}
	}
	if err := r.signal(ctx, plan); err != nil {
		return plan, &LiveError{Generation: r.gen, Err: err}
	}
	r.report(plan)
	return plan, nil
}

// run is one activation. Its methods are the steps, called in order by Activate: each records
// what it decides in the Plan it is given, and keeps here only what later steps read and what
// close must release (the lock, decrypted values, files read back).
type run struct {
	m     *manifest.Manifest
	opts  Options
	log   *zap.Logger
	start time.Time
	store ramfs.Store

	ids         *identity.Set
	liveGen     int
	live        map[string]liveFile // nil without a readable live generation
	previous    *State
	interrupted *pending
	readBack    *liveReader

	values  map[string][]byte
	sources map[string]string
	stamps  map[string]InputStamp
	reused  map[string]bool

	realDirEmpty bool
	gen          int
	written      map[string]ramfs.FileInfo
	pruned       []int
	state        *State

	cleanups []func()
}

func newRun(m *manifest.Manifest, opts Options) *run {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Accounts == nil {
		opts.Accounts = NewSystemAccounts()
	}
	if opts.ForUsers {
		opts.Accounts = rootOnly{}
	}
	return &run{m: m, opts: opts, log: opts.Log, start: opts.Now(), store: ramfs.Store{Root: m.MountPoint, User: opts.User}}
}

// close releases, last taken first, what the steps hold.
func (r *run) close() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func (r *run) onClose(f func()) { r.cleanups = append(r.cleanups, f) }

// plan resolves the outputs, takes the lock and reads what is live and what earlier runs
// recorded: everything the plan needs but the secrets' values.
func (r *run) plan() (*Plan, error) {
	m := r.m
	outputs, err := resolveOutputs(m, r.opts.Accounts, r.opts.ForUsers)
	if err != nil {
		return nil, err
	}
	if !r.opts.DryRun {
		unlock, err := lock(m.MountPoint)
		if err != nil {
			return nil, err
		}
		r.onClose(unlock)
	}
	if r.ids, err = identity.Load(m.Identities, r.log); err != nil {
		return nil, err
	}
	plan := &Plan{Manifest: r.opts.ManifestPath, SecretsDir: m.SecretsDir, MountPoint: m.MountPoint, Outputs: outputs}
	liveGen, hasLive, err := r.store.Live(m.SecretsDir)
	if err != nil {
		return nil, fmt.Errorf("secretsDir %s: %w", m.SecretsDir, err)
	}
	r.liveGen = liveGen
	if hasLive {
		if r.live, err = readLive(r.store.Dir(liveGen)); err != nil {
			r.log.Warn("live generation unreadable; treating this as a first activation", zap.Int("generation", liveGen), zap.Error(err))
			hasLive, r.live = false, nil
		}
	}
	if hasLive {
		plan.LiveGeneration = liveGen
	}
	plan.FirstActivation = !hasLive
	if r.previous, err = readPrevious(m.MountPoint); err != nil {
		r.log.Warn("previous state unreadable", zap.Error(err))
	}
	if r.interrupted, err = readPending(m.MountPoint); err != nil {
		r.log.Warn("record of an interrupted activation unreadable", zap.Error(err))
	}
	plan.Links = links(outputs)
	plan.StaleLinks = staleLinks(r.previous, r.interrupted, outputs)
	return plan, nil
}

// decrypt gives every output its content: secrets decrypted (or known unchanged and left in
// the live generation), templates rendered.
func (r *run) decrypt(plan *Plan) error {
	var reuse *reuser
	if !plan.FirstActivation && r.previous != nil && r.previous.Generation == r.liveGen {
		reuse = newReuser(r.previous, r.live)
	}
	values, sources, stamps, reused, wipe, err := secretValues(r.m, r.ids, reuse, r.start)
	if err != nil {
		return err
	}
	r.onClose(wipe)
	r.values, r.sources, r.stamps, r.reused = values, sources, stamps, reused
	r.readBack = &liveReader{tree: ramfs.NewTreeReader(r.store.Dir(r.liveGen)), live: r.live}
	r.onClose(r.readBack.close)
	for name, token := range r.m.Placeholders {
		if reused[name] && usedInTemplates(r.m, token) {
			if values[name], err = r.readBack.content(name); err != nil {
				return err
			}
		}
	}
	rendered := fillContent(r.m, plan.Outputs, values, reused)
	r.onClose(func() {
		for _, b := range rendered {
			clear(b)
		}
	})
	return nil
}

// compare reads back the live files not known to be unchanged and decides what changed and
// which units to tell, with those of a run killed before it told its own.
func (r *run) compare(plan *Plan) error {
	for _, o := range plan.Outputs {
		if l, ok := r.live[o.Name]; ok && !o.unchanged {
			var err error
			if l.content, err = r.readBack.content(o.Name); err != nil {
				return err
			}
			r.live[o.Name] = l
		}
	}
	plan.computeChanges(r.live, previousConsumers(r.previous))
	if in := r.interrupted; in != nil && !plan.FirstActivation && in.Generation == r.liveGen {
		// The run that made the live generation was killed before it told its units.
		plan.addUnits(in.Restart, in.Reload)
	}
	return nil
}

// check refuses, before anything is written, a secretsDir or path that secretd must not replace.
func (r *run) check(plan *Plan) error {
	var err error
	if r.realDirEmpty, err = checkSecretsDir(r.m.SecretsDir); err != nil {
		return err
	}
	return checkLinkTargets(plan.Outputs)
}

// write clears what a killed run left and, when something changed, writes the new generation
// complete under a name no reader looks at.
func (r *run) write(plan *Plan) error {
	if err := cleanLeftovers(r.m, r.store, plan.Outputs, r.previous, r.interrupted, r.log); err != nil {
		return err
	}
	r.gen = r.liveGen
	r.written = make(map[string]ramfs.FileInfo, len(r.live))
	for name, l := range r.live {
		r.written[name] = l.info
	}
	if !plan.NewGeneration {
		return nil
	}
	for i := range plan.Outputs {
		// Those a template needed were read already.
		if o := &plan.Outputs[i]; o.unchanged && o.content == nil {
			var err error
			if o.content, err = r.readBack.content(o.Name); err != nil {
				return err
			}
		}
	}
	var err error
	r.gen, r.written, err = writeGeneration(r.m, r.store, plan.Outputs, &r.opts)
	return err
}

// swap records what this run is about to do, so that a run killed from here on is finished by
// the next (its units told, its links known), then points secretsDir at the new generation.
func (r *run) swap(plan *Plan) error {
	m := r.m
	if err := writePending(m.MountPoint, &pending{Generation: r.gen, Restart: plan.Restart, Reload: plan.Reload, Links: plan.Links}); err != nil {
		return err
	}
	if !plan.NewGeneration {
		return nil
	}
	if r.realDirEmpty {
		if err := os.Remove(m.SecretsDir); err != nil {
			return fmt.Errorf("secretsDir %s: replacing the empty directory: %w", m.SecretsDir, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(m.SecretsDir), 0o755); err != nil {
		return fmt.Errorf("secretsDir %s: %w", m.SecretsDir, err)
	}
	if err := ramfs.SwapSymlink(m.SecretsDir, r.store.Dir(r.gen)); err != nil {
		return fmt.Errorf("swapping in generation %d: %w", r.gen, err)
	}
	r.opts.hook("swap")
	return nil
}

// link makes the path symlinks and copies and removes the symlinks no longer declared.
func (r *run) link(plan *Plan) error {
	for i := range plan.Outputs {
		// Without a new generation an unchanged output was not read; a copy needs its content.
		if o := &plan.Outputs[i]; o.Copy && o.content == nil {
			var err error
			if o.content, err = r.readBack.content(o.Name); err != nil {
				return err
			}
		}
	}
	return makeLinks(r.m, plan.Outputs, plan.StaleLinks, &r.opts)
}

// prune removes generations beyond keepGenerations; one it cannot remove is only a warning.
func (r *run) prune() {
	var err error
	if r.pruned, err = r.store.Prune(r.m.KeepGenerations, r.gen); err != nil {
		r.log.Warn("pruning old generations", zap.Error(err))
	}
	r.opts.hook("prune")
}

// record writes the state `secretd status` and the next activation read.
func (r *run) record(plan *Plan) error {
	m := r.m
	r.state = &State{
		Generation: r.gen, ActivatedAt: r.start.UTC(), Manifest: r.opts.ManifestPath,
		SecretsDir: m.SecretsDir, MountPoint: m.MountPoint, Identities: usedIdentities(r.ids, r.previous),
		Outputs: outputStates(m, plan.Outputs, r.sources, r.stamps, r.written), Changes: plan.Changes, NewGen: plan.NewGeneration,
	}
	r.state.DurationMS = r.elapsedMS()
	if err := writeState(m.MountPoint, r.state); err != nil {
		return err
	}
	r.opts.hook("state")
	return nil
}

// signal tells the units of what changed, records how they answered, and closes the record of
// a run in progress.
func (r *run) signal(ctx context.Context, plan *Plan) error {
	plan.Units = signal(ctx, plan, &r.opts)
	if len(plan.Units) > 0 {
		r.state.Units = plan.Units
		r.state.DurationMS = r.elapsedMS()
		if err := writeState(r.m.MountPoint, r.state); err != nil {
			return err
		}
	}
	return removePending(r.m.MountPoint)
}

func (r *run) report(plan *Plan) {
	r.log.Info("activation complete",
		zap.Int("generation", r.gen), zap.Bool("newGeneration", plan.NewGeneration),
		zap.Int("secrets", len(r.m.Secrets)), zap.Int("templates", len(r.m.Templates)),
		zap.Int("changed", len(plan.Changes)), zap.Ints("pruned", r.pruned),
		zap.Strings("restart", plan.Restart), zap.Strings("reload", plan.Reload),
		zap.Float64("ms", r.state.DurationMS))
}

func (r *run) elapsedMS() float64 {
	return float64(r.opts.Now().Sub(r.start).Microseconds()) / 1000
}
