package activation_test

import (
	"context"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
	"github.com/secretd/secretd/units"
	"github.com/secretd/secretd/units/fakesystemd"
)

func TestUnitsSignalledOnceAfterTheSwap(t *testing.T) {
	f := newFixture(t)
	fake, address := fakesystemd.Start(t)
	for _, u := range []string{"a.service", "b.service", "shared.service", "untouched.service"} {
		fake.SetUnit(u, "loaded", "active")
	}
	fake.SetUnit("stopped.service", "loaded", "inactive")
	connect := func(ctx context.Context) (activation.Signaller, error) {
		return units.ConnectAddress(ctx, address)
	}
	a := manifest.Secret{Name: "a", File: f.encrypt("a", []byte("alpha")),
		Consumers: manifest.Consumers{RestartUnits: []string{"a.service", "shared.service"}}}
	b := manifest.Secret{Name: "b", File: f.encrypt("b", []byte("bravo")),
		Consumers: manifest.Consumers{ReloadUnits: []string{"b.service", "shared.service", "stopped.service"}}}
	c := manifest.Secret{Name: "c", File: f.encrypt("c", []byte("charlie")),
		Consumers: manifest.Consumers{RestartUnits: []string{"untouched.service"}}}

	// The first activation after boot signals nothing: consumers start after secretd.
	f.mustActivate(f.manifest(a, b, c), activation.Options{Connect: connect})
	if calls := fake.JobCalls(); len(calls) != 0 {
		t.Fatalf("first activation queued jobs: %+v", calls)
	}
	first := f.live()

	var mu sync.Mutex
	seenLive := map[string]int{}
	fake.OnCall(func(c fakesystemd.Call) {
		if !c.IsJob() {
			return
		}
		n, _, _ := ramfs.Store{Root: f.mountPoint}.Live(f.secretsDir)
		mu.Lock()
		seenLive[c.Unit] = n
		mu.Unlock()
	})
	a.File = f.encrypt("a2", []byte("alpha-2"))
	b.Mode = "0440"
	plan := f.mustActivate(f.manifest(a, b, c), activation.Options{Connect: connect, UnitWait: 5 * time.Second})

	var got []string
	for _, call := range fake.JobCalls() {
		got = append(got, call.Method+" "+call.Unit)
	}
	sort.Strings(got)
	want := []string{"ReloadOrTryRestartUnit b.service", "TryRestartUnit a.service", "TryRestartUnit shared.service"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("jobs %v, want %v", got, want)
	}
	for unit, n := range seenLive {
		if n != first+1 {
			t.Errorf("%s was signalled while generation %d was live, before the swap to %d", unit, n, first+1)
		}
	}
	outcomes := map[string]units.Outcome{}
	for _, r := range plan.Units {
		outcomes[r.Unit] = r.Outcome
	}
	if outcomes["a.service"] != units.OutcomeRestarted || outcomes["b.service"] != units.OutcomeReloaded || outcomes["stopped.service"] != units.OutcomeSkippedInactive {
		t.Fatalf("outcomes %v", outcomes)
	}
	st := activation.ReadStatus(f.mountPoint)
	if len(st.State.Units) != len(plan.Units) {
		t.Fatalf("state records %d unit results, plan %d", len(st.State.Units), len(plan.Units))
	}
}

func TestNoSystemdStillActivates(t *testing.T) {
	f := newFixture(t)
	s := manifest.Secret{Name: "a", File: f.encrypt("a", []byte("alpha")), Consumers: manifest.Consumers{RestartUnits: []string{"a.service"}}}
	connect := func(ctx context.Context) (activation.Signaller, error) {
		return units.ConnectAddress(ctx, "unix:path="+f.dir+"/no-such-socket")
	}
	f.mustActivate(f.manifest(s), activation.Options{Connect: connect})
	s.File = f.encrypt("a2", []byte("alpha-2"))
	f.mustActivate(f.manifest(s), activation.Options{Connect: connect})
	f.expectFile("a", []byte("alpha-2"), 0, 0, 0o400)
	if n := f.logs.FilterMessageSnippet("systemd not reachable").Len(); n != 1 {
		t.Fatalf("%d log lines about systemd, want 1", n)
	}
}
