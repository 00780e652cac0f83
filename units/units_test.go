package units_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/secretd/secretd/units"
	"github.com/secretd/secretd/units/fakesystemd"
)

// hangGuard turns a Signal that never returns into a failure instead of a stuck test run. It is
// far above any wait the tests ask for, so it never decides a result.
const hangGuard = 2 * time.Minute

// connectTo starts a fake systemd and connects a Signaller to it.
func connectTo(t *testing.T) (*fakesystemd.Fake, *units.Signaller) {
	t.Helper()
	fake, address := fakesystemd.Start(t)
	s, err := units.ConnectAddress(context.Background(), address)
	if err != nil {
		t.Fatalf("ConnectAddress(%s): %v", address, err)
	}
	t.Cleanup(s.Close)
	return fake, s
}

// signal runs Signal, failing the test rather than hanging if it never returns.
func signal(t *testing.T, s *units.Signaller, req units.Request, wait time.Duration, log *zap.Logger) []units.Result {
	t.Helper()
	done := make(chan []units.Result, 1)
	go func() { done <- s.Signal(context.Background(), req, wait, log) }()
	select {
	case results := <-done:
		return results
	case <-time.After(hangGuard):
		t.Fatalf("Signal did not return within %s despite a wait bound of %s", hangGuard, wait)
		return nil
	}
}

// withoutDetail drops Detail, which is prose for people.
func withoutDetail(results []units.Result) []units.Result {
	out := slices.Clone(results)
	for i := range out {
		out[i].Detail = ""
	}
	return out
}

func assertResults(t *testing.T, got, want []units.Result) {
	t.Helper()
	if !slices.Equal(withoutDetail(got), want) {
		t.Errorf("results:\n got  %+v\n want %+v", got, want)
	}
}

func assertJobCalls(t *testing.T, fake *fakesystemd.Fake, want []fakesystemd.Call) {
	t.Helper()
	if got := fake.JobCalls(); !slices.Equal(got, want) {
		t.Errorf("job calls:\n got  %+v\n want %+v", got, want)
	}
}

func TestSignalQueuesOneJobPerRunningUnit(t *testing.T) {
	fake, s := connectTo(t)
	fake.SetUnit("api.service", "loaded", "active")
	fake.SetUnit("web.service", "loaded", "active")
	fake.SetUnit("proxy.service", "loaded", "reloading")
	fake.SetUnit("worker.service", "loaded", "activating")
	fake.SetUnit("batch.service", "loaded", "inactive")
	fake.SetUnit("broken.service", "loaded", "failed")
	// gone.service is never set: systemd reports it as not-found.

	req := units.Request{
		Restart: []string{"web.service", "api.service", "batch.service", "gone.service", "api.service", "worker.service"},
		Reload:  []string{"proxy.service", "api.service", "broken.service", "proxy.service"},
	}
	results := signal(t, s, req, time.Minute, nil)

	assertResults(t, results, []units.Result{
		{Unit: "api.service", Action: units.ActionTryRestart, Outcome: units.OutcomeRestarted},
		{Unit: "batch.service", Action: units.ActionTryRestart, Outcome: units.OutcomeSkippedInactive},
		{Unit: "broken.service", Action: units.ActionReloadOrTryRestart, Outcome: units.OutcomeSkippedInactive},
		{Unit: "gone.service", Action: units.ActionTryRestart, Outcome: units.OutcomeSkippedUnknown},
		{Unit: "proxy.service", Action: units.ActionReloadOrTryRestart, Outcome: units.OutcomeReloaded},
		{Unit: "web.service", Action: units.ActionTryRestart, Outcome: units.OutcomeRestarted},
		{Unit: "worker.service", Action: units.ActionTryRestart, Outcome: units.OutcomeRestarted},
	})
	assertJobCalls(t, fake, []fakesystemd.Call{
		{Method: "TryRestartUnit", Unit: "api.service", Mode: "replace"},
		{Method: "ReloadOrTryRestartUnit", Unit: "proxy.service", Mode: "replace"},
		{Method: "TryRestartUnit", Unit: "web.service", Mode: "replace"},
		{Method: "TryRestartUnit", Unit: "worker.service", Mode: "replace"},
	})
}

func TestSignalRestartWinsOverReload(t *testing.T) {
	fake, s := connectTo(t)
	fake.SetUnit("app.service", "loaded", "active")

	results := signal(t, s, units.Request{
		Reload:  []string{"app.service"},
		Restart: []string{"app.service"},
	}, time.Minute, nil)

	assertResults(t, results, []units.Result{
		{Unit: "app.service", Action: units.ActionTryRestart, Outcome: units.OutcomeRestarted},
	})
	assertJobCalls(t, fake, []fakesystemd.Call{{Method: "TryRestartUnit", Unit: "app.service", Mode: "replace"}})
}

func TestSignalQueuesEveryJobBeforeWaiting(t *testing.T) {
	fake, s := connectTo(t)
	for _, u := range []string{"a.service", "b.service", "c.service"} {
		fake.SetUnit(u, "loaded", "active")
	}
	// Jobs finish only once the last one has been asked for, as when they all wait on the
	// transaction Signal runs in. Waiting for a job before queueing the next would leave them
	// all unfinished.
	fake.HoldJobs(true)
	fake.OnCall(func(c fakesystemd.Call) {
		if c.IsJob() && c.Unit == "c.service" {
			fake.HoldJobs(false)
		}
	})

	results := signal(t, s, units.Request{Restart: []string{"c.service", "a.service", "b.service"}}, time.Minute, nil)

	assertResults(t, results, []units.Result{
		{Unit: "a.service", Action: units.ActionTryRestart, Outcome: units.OutcomeRestarted},
		{Unit: "b.service", Action: units.ActionTryRestart, Outcome: units.OutcomeRestarted},
		{Unit: "c.service", Action: units.ActionTryRestart, Outcome: units.OutcomeRestarted},
	})
	assertJobCalls(t, fake, []fakesystemd.Call{
		{Method: "TryRestartUnit", Unit: "a.service", Mode: "replace"},
		{Method: "TryRestartUnit", Unit: "b.service", Mode: "replace"},
		{Method: "TryRestartUnit", Unit: "c.service", Mode: "replace"},
	})
}

func TestSignalWithoutWaitReportsHeldJobsAsQueued(t *testing.T) {
	fake, s := connectTo(t)
	fake.SetUnit("a.service", "loaded", "active")
	fake.SetUnit("b.service", "loaded", "reloading")
	fake.HoldJobs(true)

	results := signal(t, s, units.Request{Restart: []string{"a.service"}, Reload: []string{"b.service"}}, 0, nil)

	assertResults(t, results, []units.Result{
		{Unit: "a.service", Action: units.ActionTryRestart, Outcome: units.OutcomeQueued},
		{Unit: "b.service", Action: units.ActionReloadOrTryRestart, Outcome: units.OutcomeQueued},
	})
	assertJobCalls(t, fake, []fakesystemd.Call{
		{Method: "TryRestartUnit", Unit: "a.service", Mode: "replace"},
		{Method: "ReloadOrTryRestartUnit", Unit: "b.service", Mode: "replace"},
	})
}

func TestSignalReportsJobStillRunningAsQueued(t *testing.T) {
	fake, s := connectTo(t)
	fake.SetUnit("slow.service", "loaded", "active")
	fake.SetUnit("quick.service", "loaded", "active")
	fake.SetJobResult("slow.service", fakesystemd.Withhold)

	// The wait must be long enough for quick.service's job to be reported, and is what ends
	// the wait for slow.service, whose job never ends.
	results := signal(t, s, units.Request{Restart: []string{"slow.service"}, Reload: []string{"quick.service"}}, 3*time.Second, nil)

	assertResults(t, results, []units.Result{
		{Unit: "quick.service", Action: units.ActionReloadOrTryRestart, Outcome: units.OutcomeReloaded},
		{Unit: "slow.service", Action: units.ActionTryRestart, Outcome: units.OutcomeQueued},
	})
	assertJobCalls(t, fake, []fakesystemd.Call{
		{Method: "ReloadOrTryRestartUnit", Unit: "quick.service", Mode: "replace"},
		{Method: "TryRestartUnit", Unit: "slow.service", Mode: "replace"},
	})
}

func TestSignalMapsJobResults(t *testing.T) {
	cases := []struct {
		jobResult string
		action    string
		want      units.Outcome
	}{
		{fakesystemd.JobDone, units.ActionTryRestart, units.OutcomeRestarted},
		{fakesystemd.JobDone, units.ActionReloadOrTryRestart, units.OutcomeReloaded},
		{fakesystemd.JobFailed, units.ActionTryRestart, units.OutcomeFailed},
		{fakesystemd.JobFailed, units.ActionReloadOrTryRestart, units.OutcomeFailed},
		{fakesystemd.JobTimeout, units.ActionTryRestart, units.OutcomeTimeout},
		{fakesystemd.JobCanceled, units.ActionTryRestart, units.OutcomeFailed},
		{fakesystemd.JobDependency, units.ActionTryRestart, units.OutcomeFailed},
		{fakesystemd.JobSkipped, units.ActionTryRestart, units.OutcomeSkippedInactive},
	}
	for _, c := range cases {
		t.Run(c.jobResult+"/"+c.action, func(t *testing.T) {
			fake, s := connectTo(t)
			fake.SetUnit("app.service", "loaded", "active")
			fake.SetJobResult("app.service", c.jobResult)
			req := units.Request{Restart: []string{"app.service"}}
			if c.action == units.ActionReloadOrTryRestart {
				req = units.Request{Reload: []string{"app.service"}}
			}

			results := signal(t, s, req, time.Minute, nil)

			assertResults(t, results, []units.Result{{Unit: "app.service", Action: c.action, Outcome: c.want}})
			if c.want != units.OutcomeRestarted && c.want != units.OutcomeReloaded && results[0].Detail == "" {
				t.Errorf("outcome %s has no detail", c.want)
			}
		})
	}
}

func TestSignalReportsRefusedJobAsFailed(t *testing.T) {
	fake, s := connectTo(t)
	// A running unit masked since it started: systemd refuses jobs for it.
	fake.SetUnit("masked.service", "masked", "active")
	fake.SetUnit("fine.service", "loaded", "active")

	results := signal(t, s, units.Request{Restart: []string{"masked.service", "fine.service"}}, time.Minute, nil)

	assertResults(t, results, []units.Result{
		{Unit: "fine.service", Action: units.ActionTryRestart, Outcome: units.OutcomeRestarted},
		{Unit: "masked.service", Action: units.ActionTryRestart, Outcome: units.OutcomeFailed},
	})
	if !strings.Contains(results[1].Detail, "masked") {
		t.Errorf("detail %q does not give systemd's reason", results[1].Detail)
	}
	assertJobCalls(t, fake, []fakesystemd.Call{
		{Method: "TryRestartUnit", Unit: "fine.service", Mode: "replace"},
		{Method: "TryRestartUnit", Unit: "masked.service", Mode: "replace"},
	})
}

func TestSignalChecksStateAtSignalTime(t *testing.T) {
	fake, s := connectTo(t)
	fake.SetUnit("app.service", "loaded", "inactive")
	results := signal(t, s, units.Request{Restart: []string{"app.service"}}, time.Minute, nil)
	assertResults(t, results, []units.Result{{Unit: "app.service", Action: units.ActionTryRestart, Outcome: units.OutcomeSkippedInactive}})

	fake.SetUnit("app.service", "loaded", "active")
	results = signal(t, s, units.Request{Restart: []string{"app.service"}}, time.Minute, nil)
	assertResults(t, results, []units.Result{{Unit: "app.service", Action: units.ActionTryRestart, Outcome: units.OutcomeRestarted}})
	assertJobCalls(t, fake, []fakesystemd.Call{{Method: "TryRestartUnit", Unit: "app.service", Mode: "replace"}})
}

func TestSignalWithNothingToDo(t *testing.T) {
	fake, s := connectTo(t)
	before := len(fake.Calls())
	if results := signal(t, s, units.Request{}, time.Minute, nil); len(results) != 0 {
		t.Errorf("results = %+v, want none", results)
	}
	if calls := fake.Calls()[before:]; len(calls) != 0 {
		t.Errorf("calls = %+v, want none", calls)
	}
}

func TestSignalLogsOneLinePerUnit(t *testing.T) {
	fake, s := connectTo(t)
	fake.SetUnit("up.service", "loaded", "active")
	fake.SetUnit("down.service", "loaded", "inactive")
	fake.SetUnit("bad.service", "loaded", "active")
	fake.SetJobResult("bad.service", fakesystemd.JobFailed)
	core, logs := observer.New(zapcore.DebugLevel)

	results := signal(t, s, units.Request{
		Restart: []string{"up.service", "down.service", "bad.service", "gone.service"},
		Reload:  []string{"up.service"},
	}, time.Minute, zap.New(core))

	entries := logs.All()
	if len(entries) != len(results) {
		t.Fatalf("%d log lines for %d units: %v", len(entries), len(results), entries)
	}
	for _, r := range results {
		var matching []observer.LoggedEntry
		for _, e := range entries {
			if e.ContextMap()["unit"] == r.Unit {
				matching = append(matching, e)
			}
		}
		if len(matching) != 1 {
			t.Errorf("unit %s: %d log lines, want 1", r.Unit, len(matching))
			continue
		}
		fields := matching[0].ContextMap()
		if fields["action"] != r.Action || fields["outcome"] != string(r.Outcome) {
			t.Errorf("unit %s: logged action=%v outcome=%v, result says %s %s", r.Unit, fields["action"], fields["outcome"], r.Action, r.Outcome)
		}
		wantWarn := r.Outcome == units.OutcomeFailed
		if gotWarn := matching[0].Level == zapcore.WarnLevel; gotWarn != wantWarn {
			t.Errorf("unit %s: outcome %s logged at %s", r.Unit, r.Outcome, matching[0].Level)
		}
	}
}

func TestHookSeesJobCallsAsTheyArrive(t *testing.T) {
	fake, s := connectTo(t)
	fake.SetUnit("app.service", "loaded", "active")
	marker := filepath.Join(t.TempDir(), "swapped")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sawMarker []bool
	fake.OnCall(func(c fakesystemd.Call) {
		if c.IsJob() {
			_, err := os.Stat(marker)
			mu.Lock()
			sawMarker = append(sawMarker, err == nil)
			mu.Unlock()
		}
	})

	signal(t, s, units.Request{Restart: []string{"app.service"}}, time.Minute, nil)

	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(sawMarker, []bool{true}) {
		t.Errorf("hook observations = %v, want one job call seeing the marker", sawMarker)
	}
}

func TestConnectAddressToMissingBusIsUnavailable(t *testing.T) {
	address := "unix:path=" + filepath.Join(t.TempDir(), "no-such-socket")
	s, err := units.ConnectAddress(context.Background(), address)
	if err == nil {
		s.Close()
		t.Fatal("ConnectAddress to a missing socket succeeded")
	}
	if !units.IsUnavailable(err) {
		t.Errorf("error %v does not satisfy IsUnavailable", err)
	}
}

func TestConnectAddressToBusWithoutSystemdIsUnavailable(t *testing.T) {
	address := fakesystemd.StartBus(t)
	s, err := units.ConnectAddress(context.Background(), address)
	if err == nil {
		s.Close()
		t.Fatal("ConnectAddress to a bus without systemd succeeded")
	}
	if !units.IsUnavailable(err) {
		t.Errorf("error %v does not satisfy IsUnavailable", err)
	}
}

func TestConnectUsesSystemBusAddress(t *testing.T) {
	fake, address := fakesystemd.Start(t)
	fake.SetUnit("app.service", "loaded", "active")
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", address)

	s, err := units.Connect(context.Background())
	if err != nil {
		t.Fatalf("Connect with DBUS_SYSTEM_BUS_ADDRESS=%s: %v", address, err)
	}
	defer s.Close()
	signal(t, s, units.Request{Restart: []string{"app.service"}}, time.Minute, nil)
	assertJobCalls(t, fake, []fakesystemd.Call{{Method: "TryRestartUnit", Unit: "app.service", Mode: "replace"}})
}

func TestConnectionOutlivesConnectContext(t *testing.T) {
	fake, address := fakesystemd.Start(t)
	fake.SetUnit("app.service", "loaded", "active")
	ctx, cancel := context.WithCancel(context.Background())
	s, err := units.ConnectAddress(ctx, address)
	if err != nil {
		t.Fatalf("ConnectAddress: %v", err)
	}
	defer s.Close()
	cancel()

	results := signal(t, s, units.Request{Restart: []string{"app.service"}}, time.Minute, nil)
	assertResults(t, results, []units.Result{{Unit: "app.service", Action: units.ActionTryRestart, Outcome: units.OutcomeRestarted}})
}

func TestConnectWithEndedContextFails(t *testing.T) {
	_, address := fakesystemd.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := units.ConnectAddress(ctx, address)
	if err == nil {
		s.Close()
		t.Fatal("ConnectAddress with an ended context succeeded")
	}
}

// The user's manager is found at <runtime dir>/bus; the system's bus, even when its address is
// set, is never tried.
func TestConnectUserUsesTheUserBusOnly(t *testing.T) {
	fake, address := fakesystemd.Start(t)
	fake.SetUnit("app.service", "loaded", "active")
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
	runtime := t.TempDir()
	if s, err := units.ConnectUser(context.Background(), runtime); !units.IsUnavailable(err) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("ConnectUser without a user bus = %v; want it unavailable, not the system bus", err)
	}

	socket, _, _ := strings.Cut(strings.TrimPrefix(address, "unix:path="), ",")
	if err := os.Symlink(socket, filepath.Join(runtime, "bus")); err != nil {
		t.Fatal(err)
	}
	s, err := units.ConnectUser(context.Background(), runtime)
	if err != nil {
		t.Fatalf("ConnectUser with %s/bus: %v", runtime, err)
	}
	defer s.Close()
	signal(t, s, units.Request{Restart: []string{"app.service"}}, time.Minute, nil)
	assertJobCalls(t, fake, []fakesystemd.Call{{Method: "TryRestartUnit", Unit: "app.service", Mode: "replace"}})
}
