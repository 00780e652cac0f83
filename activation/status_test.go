package activation_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/units"
)

// craftedState activates one secret, then rewrites the recorded state with edit.
func craftedState(t *testing.T, edit func(st *activation.State)) *fixture {
	t.Helper()
	f := newFixture(t)
	f.mustActivate(f.manifest(manifest.Secret{Name: "token", File: f.encrypt("token", []byte("token-value"))}), activation.Options{})
	st, err := activation.ReadState(f.mountPoint)
	if err != nil || st == nil {
		t.Fatalf("ReadState = %v, %v", st, err)
	}
	edit(st)
	if err := activation.WriteState(f.mountPoint, st); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestStatusRefusesNamesLeavingTheGeneration: a name in the state that climbs out of the
// generation is reported as invalid, not described.
func TestStatusRefusesNamesLeavingTheGeneration(t *testing.T) {
	var victim string
	f := craftedState(t, func(st *activation.State) {
		victim = "../../" + filepath.Base(t.TempDir()) // anything outside
		st.Outputs[0].Name = victim
	})
	status := activation.ReadStatus(f.mountPoint)
	if status.Healthy {
		t.Fatal("a state naming a file outside the generation is healthy")
	}
	if len(status.Files) != 1 || !strings.Contains(status.Files[0].Problem, "invalid name") {
		t.Fatalf("the outside name was not refused: %+v", status.Files)
	}
}

// TestStatusNeverOpensWhatItDescribes: status describes outputs with fstatat; it never opens
// one, which would block on a FIFO and read a device. A writer that only succeeds while a
// reader has the FIFO open tells whether status opened it.
func TestStatusNeverOpensWhatItDescribes(t *testing.T) {
	f := craftedState(t, func(*activation.State) {})
	fifo := filepath.Join(f.mountPoint, "1", "token")
	os.Remove(fifo)
	if err := unix.Mkfifo(fifo, 0o400); err != nil {
		t.Fatal(err)
	}
	var opened atomic.Bool
	done := make(chan *activation.Status)
	go func() { done <- activation.ReadStatus(f.mountPoint) }()
	var status *activation.Status
	for status == nil {
		select {
		case status = <-done:
		default:
			if fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
				opened.Store(true)
				unix.Close(fd)
			}
		}
	}
	if opened.Load() {
		t.Fatal("status opened an output file to describe it")
	}
	if status.Healthy || !strings.Contains(status.Files[0].Problem, "not a regular file") {
		t.Fatalf("a FIFO in place of a secret: %+v", status.Files)
	}
}

// TestStatusOfUnreachableSystemd: when systemd cannot be reached, the units that should have
// been signalled are recorded and shown as not signalled.
func TestStatusOfUnreachableSystemd(t *testing.T) {
	f := newFixture(t)
	s := manifest.Secret{Name: "a", File: f.encrypt("a", []byte("alpha")), Consumers: manifest.Consumers{RestartUnits: []string{"a.service"}}}
	connect := func(ctx context.Context) (activation.Signaller, error) {
		return units.ConnectAddress(ctx, "unix:path="+f.dir+"/no-such-socket")
	}
	f.mustActivate(f.manifest(s), activation.Options{Connect: connect})
	s.File = f.encrypt("a2", []byte("alpha-2"))
	f.mustActivate(f.manifest(s), activation.Options{Connect: connect})
	status := activation.ReadStatus(f.mountPoint)
	if len(status.State.Units) != 1 || status.State.Units[0].Unit != "a.service" || status.State.Units[0].Outcome != units.Outcome("not-signalled") {
		t.Fatalf("recorded units: %+v", status.State.Units)
	}
	var out bytes.Buffer
	status.Print(&out)
	if !strings.Contains(out.String(), "unit a.service: try-restart -> not-signalled (systemd unreachable)") {
		t.Fatalf("status does not show the unit left unsignalled:\n%s", out.String())
	}
}
