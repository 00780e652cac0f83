package fakesystemd_test

import (
	"context"
	"slices"
	"testing"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/secretd/secretd/units/fakesystemd"
)

// dial connects go-systemd to the fake, as production code would connect to systemd.
func dial(t *testing.T, address string) *sdbus.Conn {
	t.Helper()
	conn, err := sdbus.NewConnection(func() (*dbus.Conn, error) { return dbus.Connect(address) })
	if err != nil {
		t.Fatalf("connecting to %s: %v", address, err)
	}
	t.Cleanup(conn.Close)
	return conn
}

func TestUnitPropertiesLikeSystemd(t *testing.T) {
	fake, address := fakesystemd.Start(t)
	fake.SetUnit("getty@tty1.service", "loaded", "reloading")
	conn := dial(t, address)
	ctx := context.Background()

	props, err := conn.GetUnitPropertiesContext(ctx, "getty@tty1.service")
	if err != nil {
		t.Fatalf("properties of a known unit: %v", err)
	}
	if props["Id"] != "getty@tty1.service" || props["LoadState"] != "loaded" || props["ActiveState"] != "reloading" {
		t.Errorf("known unit properties = %v", props)
	}

	props, err = conn.GetUnitPropertiesContext(ctx, "never-set.service")
	if err != nil {
		t.Fatalf("properties of an unknown unit: %v", err)
	}
	if props["LoadState"] != "not-found" || props["ActiveState"] != "inactive" {
		t.Errorf("unknown unit properties = %v", props)
	}

	prop, err := conn.GetUnitPropertyContext(ctx, "getty@tty1.service", "ActiveState")
	if err != nil || prop.Value.Value() != "reloading" {
		t.Errorf("ActiveState property = %v, %v", prop, err)
	}
	want := []fakesystemd.Call{
		{Method: "GetAll", Unit: "getty@tty1.service"},
		{Method: "GetAll", Unit: "never-set.service"},
		{Method: "Get", Unit: "getty@tty1.service"},
	}
	if got := fake.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls = %+v, want %+v", got, want)
	}
}

func TestJobsFinishWithConfiguredResult(t *testing.T) {
	fake, address := fakesystemd.Start(t)
	fake.SetUnit("ok.service", "loaded", "active")
	fake.SetUnit("bad.service", "loaded", "active")
	fake.SetJobResult("bad.service", fakesystemd.JobFailed)
	conn := dial(t, address)
	ctx := context.Background()

	for _, job := range []struct{ unit, want string }{{"ok.service", "done"}, {"bad.service", "failed"}} {
		done := make(chan string, 1)
		if _, err := conn.RestartUnitContext(ctx, job.unit, "replace", done); err != nil {
			t.Fatalf("restarting %s: %v", job.unit, err)
		}
		if got := <-done; got != job.want {
			t.Errorf("%s job result = %q, want %q", job.unit, got, job.want)
		}
	}

	if _, err := conn.StartUnitContext(ctx, "ok.service", "no-such-mode", nil); err == nil {
		t.Error("a job with an invalid mode was accepted")
	}
	if _, err := conn.StartUnitContext(ctx, "missing.service", "replace", nil); err == nil {
		t.Error("a job for a unit that does not exist was accepted")
	}

	want := []fakesystemd.Call{
		{Method: "RestartUnit", Unit: "ok.service", Mode: "replace"},
		{Method: "RestartUnit", Unit: "bad.service", Mode: "replace"},
		{Method: "StartUnit", Unit: "ok.service", Mode: "no-such-mode"},
		{Method: "StartUnit", Unit: "missing.service", Mode: "replace"},
	}
	if got := fake.JobCalls(); !slices.Equal(got, want) {
		t.Errorf("job calls = %+v, want %+v", got, want)
	}
}

func TestHeldJobsFinishOnRelease(t *testing.T) {
	fake, address := fakesystemd.Start(t)
	fake.SetUnit("app.service", "loaded", "active")
	fake.HoldJobs(true)
	conn := dial(t, address)

	done := make(chan string, 1)
	if _, err := conn.TryRestartUnitContext(context.Background(), "app.service", "replace", done); err != nil {
		t.Fatalf("try-restart: %v", err)
	}
	select {
	case result := <-done:
		t.Fatalf("held job finished with %q before release", result)
	default:
	}
	fake.HoldJobs(false)
	if result := <-done; result != fakesystemd.JobDone {
		t.Errorf("released job result = %q", result)
	}
}
