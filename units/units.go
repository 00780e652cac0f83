// Package units restarts and reloads the systemd units whose secrets changed, over systemd's
// D-Bus API.
package units

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Request names the units to signal after a change of their secrets.
type Request struct {
	// Restart lists units to try-restart: restarted if running, left alone otherwise.
	Restart []string
	// Reload lists units to reload-or-try-restart. A unit also in Restart is only restarted.
	Reload []string
}

// Actions asked of systemd, named as systemctl names them.
const (
	ActionTryRestart         = "try-restart"
	ActionReloadOrTryRestart = "reload-or-try-restart"
)

// Outcome is what became of one unit's signal.
type Outcome string

// Outcomes of a signal.
const (
	OutcomeRestarted = Outcome("restarted")
	OutcomeReloaded  = Outcome("reloaded")
	// OutcomeSkippedInactive: the unit is not running, so its next start reads the new secrets.
	OutcomeSkippedInactive = Outcome("skipped-inactive")
	// OutcomeSkippedUnknown: systemd has no such unit.
	OutcomeSkippedUnknown = Outcome("skipped-unknown")
	OutcomeFailed         = Outcome("failed")
	// OutcomeTimeout: systemd gave up on the job after the unit's own job timeout.
	OutcomeTimeout = Outcome("timeout")
	// OutcomeQueued: the job was accepted but had not finished when the wait ended; systemd
	// still carries it out.
	OutcomeQueued = Outcome("queued")
	// OutcomeNotSignalled: systemd could not be asked at all (its Detail says why).
	OutcomeNotSignalled = Outcome("not-signalled")
)

// NotSignalled reports every unit of req, as Signal would list them, as not signalled because
// of reason.
func NotSignalled(req Request, reason string) []Result {
	results := plan(req)
	for i := range results {
		results[i].Outcome, results[i].Detail = OutcomeNotSignalled, reason
	}
	return results
}

// Result reports one unit.
type Result struct {
	Unit    string  `json:"unit"`
	Action  string  `json:"action"`
	Outcome Outcome `json:"outcome"`
	Detail  string  `json:"detail,omitempty"`
}

// jobMode "replace" lets our job supersede a conflicting queued one instead of failing, as
// systemctl does by default.
const jobMode = "replace"

// Signal asks systemd to restart or reload every unit of req, each at most once, in sorted
// order, and returns one Result per unit in that order. Units that are not loaded or not running
// are skipped. Jobs are queued without waiting for each to finish, because Signal may run
// inside a systemd transaction (a switch) that those jobs wait on; afterwards it waits at most
// wait in total for their results, and reports jobs still running as OutcomeQueued. A nil log
// discards log lines; otherwise every unit gets exactly one line.
func (s *Signaller) Signal(ctx context.Context, req Request, wait time.Duration, log *zap.Logger) []Result {
	if log == nil {
		log = zap.NewNop()
	}
	results := plan(req)
	var jobs []pendingJob
	for i := range results {
		done, queued := s.queue(ctx, &results[i])
		if !queued {
			logResult(log, results[i])
			continue
		}
		jobs = append(jobs, pendingJob{index: i, done: done})
	}
	awaitJobs(ctx, results, jobs, wait)
	for _, job := range jobs {
		logResult(log, results[job.index])
	}
	return results
}

// plan dedupes req into sorted results, restart winning over reload: a restart rereads
// everything a reload would.
func plan(req Request) []Result {
	actions := make(map[string]string, len(req.Restart)+len(req.Reload))
	for _, unit := range req.Reload {
		actions[unit] = ActionReloadOrTryRestart
	}
	for _, unit := range req.Restart {
		actions[unit] = ActionTryRestart
	}
	results := make([]Result, 0, len(actions))
	for unit, action := range actions {
		results = append(results, Result{Unit: unit, Action: action})
	}
	slices.SortFunc(results, func(a, b Result) int {
		switch {
		case a.Unit < b.Unit:
			return -1
		case a.Unit > b.Unit:
			return 1
		}
		return 0
	})
	return results
}

// queue checks that r's unit is running and queues its job. It fills in r's outcome when no job
// was queued; otherwise the returned channel receives the job's result.
func (s *Signaller) queue(ctx context.Context, r *Result) (<-chan string, bool) {
	if r.Unit == "" {
		r.Outcome, r.Detail = OutcomeFailed, "empty unit name"
		return nil, false
	}
	loadState, activeState, err := s.unitState(ctx, r.Unit)
	if err != nil {
		r.Outcome, r.Detail = OutcomeFailed, fmt.Sprintf("reading unit state: %v", err)
		return nil, false
	}
	if loadState == "not-found" {
		r.Outcome, r.Detail = OutcomeSkippedUnknown, "no such unit"
		return nil, false
	}
	if !isRunning(activeState) {
		r.Outcome, r.Detail = OutcomeSkippedInactive, "unit is "+activeState
		return nil, false
	}

	// Buffered so that go-systemd can deliver a result nobody waits for any more without
	// blocking its signal dispatch.
	done := make(chan string, 1)
	switch r.Action {
	case ActionTryRestart:
		_, err = s.conn.TryRestartUnitContext(ctx, r.Unit, jobMode, done)
	case ActionReloadOrTryRestart:
		_, err = s.conn.ReloadOrTryRestartUnitContext(ctx, r.Unit, jobMode, done)
	default:
		err = fmt.Errorf("unknown action %q", r.Action)
	}
	if err != nil {
		r.Outcome, r.Detail = OutcomeFailed, fmt.Sprintf("queueing job: %v", err)
		return nil, false
	}
	return done, true
}

// unitState reads the unit's load and active state in one call, so both describe the same
// moment. systemd loads a unit on demand to answer, reporting "not-found" for unknown names.
func (s *Signaller) unitState(ctx context.Context, unit string) (loadState, activeState string, err error) {
	props, err := s.conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return "", "", err
	}
	loadState, _ = props["LoadState"].(string)
	activeState, _ = props["ActiveState"].(string)
	if loadState == "" || activeState == "" {
		return "", "", fmt.Errorf("unit %q: LoadState or ActiveState missing from its properties", unit)
	}
	return loadState, activeState, nil
}

// isRunning reports whether a unit in activeState has a process that may hold the old secrets.
// "activating" counts: the unit may already have read them.
func isRunning(activeState string) bool {
	switch activeState {
	case "active", "reloading", "activating", "refreshing":
		return true
	}
	return false
}

type pendingJob struct {
	index int
	done  <-chan string
}

type jobResult struct {
	index  int
	result string
}

// awaitJobs fills in the outcome of each job, waiting for them all together for at most wait.
func awaitJobs(ctx context.Context, results []Result, jobs []pendingJob, wait time.Duration) {
	if len(jobs) == 0 {
		return
	}
	finished := make(chan jobResult, len(jobs))
	stop := make(chan struct{})
	defer close(stop)
	for _, job := range jobs {
		go func() {
			select {
			case result := <-job.done:
				finished <- jobResult{index: job.index, result: result}
			case <-stop:
			}
		}()
	}

	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
waiting:
	for remaining := len(jobs); remaining > 0; remaining-- {
		select {
		case f := <-finished:
			applyJobResult(&results[f.index], f.result)
		case <-timer.C:
			break waiting
		case <-ctx.Done():
			break waiting
		}
	}
	// Take results that arrived together with the end of the wait.
	for drained := false; !drained; {
		select {
		case f := <-finished:
			applyJobResult(&results[f.index], f.result)
		default:
			drained = true
		}
	}
	for _, job := range jobs {
		if results[job.index].Outcome == "" {
			results[job.index].Outcome = OutcomeQueued
			if wait > 0 {
				results[job.index].Detail = fmt.Sprintf("job still running after %s; systemd carries it on", wait)
			} else {
				results[job.index].Detail = "job queued; systemd runs it"
			}
		}
	}
}

// applyJobResult maps a job result as systemd reports it in JobRemoved.
func applyJobResult(r *Result, result string) {
	switch result {
	case "done":
		r.Outcome = OutcomeRestarted
		if r.Action == ActionReloadOrTryRestart {
			r.Outcome = OutcomeReloaded
		}
	case "timeout":
		r.Outcome, r.Detail = OutcomeTimeout, "systemd timed the job out"
	case "skipped":
		// systemd skips a job that does not apply to the unit's state, such as a try-restart
		// of a unit that stopped meanwhile.
		r.Outcome, r.Detail = OutcomeSkippedInactive, "systemd skipped the job"
	case "failed":
		r.Outcome, r.Detail = OutcomeFailed, "job failed"
	case "canceled":
		r.Outcome, r.Detail = OutcomeFailed, "job canceled"
	case "dependency":
		r.Outcome, r.Detail = OutcomeFailed, "a job this one depended on failed"
	default:
		r.Outcome, r.Detail = OutcomeFailed, fmt.Sprintf("job ended with result %q", result)
	}
}

func logResult(log *zap.Logger, r Result) {
	level, msg := zapcore.InfoLevel, "signalled unit"
	switch r.Outcome {
	case OutcomeSkippedInactive, OutcomeSkippedUnknown:
		msg = "skipped unit"
	case OutcomeQueued:
		msg = "queued unit job"
	case OutcomeFailed, OutcomeTimeout:
		level, msg = zapcore.WarnLevel, "could not signal unit"
	}
	fields := []zap.Field{
		zap.String("unit", r.Unit),
		zap.String("action", r.Action),
		zap.String("outcome", string(r.Outcome)),
	}
	if r.Detail != "" {
		fields = append(fields, zap.String("detail", r.Detail))
	}
	log.Log(level, msg, fields...)
}
