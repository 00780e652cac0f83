// Package fakesystemd runs a private D-Bus message bus with a fake systemd manager on it, for
// tests of code that restarts and reloads units. The fake answers the calls go-systemd makes for
// unit properties and unit jobs, records every call, and finishes jobs by emitting JobRemoved
// like systemd does, unless told to hold them.
package fakesystemd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/secretd/secretd/internal/testenv"
)

// D-Bus names of systemd's manager.
const (
	BusName          = "org.freedesktop.systemd1"
	ManagerPath      = dbus.ObjectPath("/org/freedesktop/systemd1")
	ManagerInterface = "org.freedesktop.systemd1.Manager"
	UnitInterface    = "org.freedesktop.systemd1.Unit"
	unitPathPrefix   = "/org/freedesktop/systemd1/unit"
	jobPathPrefix    = "/org/freedesktop/systemd1/job/"
)

// Withhold as a job result makes the fake never emit JobRemoved for that unit's jobs.
const Withhold = ""

// Job results systemd reports in JobRemoved.
const (
	JobDone       = "done"
	JobFailed     = "failed"
	JobTimeout    = "timeout"
	JobCanceled   = "canceled"
	JobDependency = "dependency"
	JobSkipped    = "skipped"
)

// jobMethods are the manager methods that queue a job on a unit.
var jobMethods = []string{
	"StartUnit", "StopUnit", "ReloadUnit", "RestartUnit", "TryRestartUnit",
	"ReloadOrRestartUnit", "ReloadOrTryRestartUnit",
}

// jobModes are the modes systemd accepts for a job.
var jobModes = []string{
	"replace", "fail", "isolate", "ignore-dependencies", "ignore-requirements", "flush",
	"triggering", "restart-dependencies",
}

// Call is one method call the fake received. Method is the D-Bus member name, such as
// "TryRestartUnit" for a job or "GetAll" for a read of a unit's properties; Unit is the unit it
// concerns, if any; Mode is the job mode of job methods.
type Call struct {
	Method string
	Unit   string
	Mode   string
}

// IsJob reports whether the call asked for a unit job.
func (c Call) IsJob() bool {
	return slices.Contains(jobMethods, c.Method)
}

type unitState struct {
	loadState, activeState string
}

type job struct {
	id     uint32
	path   dbus.ObjectPath
	unit   string
	result string
}

// Fake is a systemd manager on a private bus. Its methods are safe for concurrent use.
type Fake struct {
	conn *dbus.Conn

	mu         sync.Mutex
	units      map[string]unitState
	jobResults map[string]string
	holdJobs   bool
	held       []job
	lastJobID  uint32
	calls      []Call
	onCall     func(Call)
}

// Start runs a private dbus-daemon with the fake manager on it and returns the fake and the
// bus address to connect to. Both stop when the test ends. The test is skipped when
// dbus-daemon is not installed.
func Start(t testing.TB) (*Fake, string) {
	t.Helper()
	return startOn(t, StartBus(t))
}

// StartShared is Start on a bus that every local user may connect to, for a test that runs a
// command as another user (such as secretd activate --user as nobody).
func StartShared(t testing.TB) (*Fake, string) {
	t.Helper()
	return startOn(t, startBus(t, true))
}

func startOn(t testing.TB, address string) (*Fake, string) {
	t.Helper()
	conn, err := dbus.Connect(address)
	if err != nil {
		t.Fatalf("connecting the fake manager to %s: %v", address, err)
	}
	t.Cleanup(func() { conn.Close() })

	f := &Fake{
		conn:       conn,
		units:      make(map[string]unitState),
		jobResults: make(map[string]string),
	}
	exports := []struct {
		v       any
		path    dbus.ObjectPath
		iface   string
		subtree bool
	}{
		{manager{f}, ManagerPath, ManagerInterface, false},
		{managerProperties{f}, ManagerPath, "org.freedesktop.DBus.Properties", false},
		{unitProperties{f}, unitPathPrefix, "org.freedesktop.DBus.Properties", true},
	}
	for _, e := range exports {
		export := conn.Export
		if e.subtree {
			export = conn.ExportSubtree
		}
		if err := export(e.v, e.path, e.iface); err != nil {
			t.Fatalf("exporting %s on %s: %v", e.iface, e.path, err)
		}
	}
	reply, err := conn.RequestName(BusName, dbus.NameFlagDoNotQueue)
	if err != nil {
		t.Fatalf("requesting %s: %v", BusName, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("requesting %s: %v", BusName, reply)
	}
	return f, address
}

// StartBus runs a private dbus-daemon that allows everything and returns its address. It stops
// when the test ends. Without dbus-daemon there is no bus to test against (see testenv.Tool).
func StartBus(t testing.TB) string {
	t.Helper()
	return startBus(t, false)
}

func startBus(t testing.TB, shared bool) string {
	t.Helper()
	daemon := testenv.Tool(t, "dbus-daemon", "Debian package dbus")
	// Not t.TempDir: its path grows with the test name, and a socket path must stay short.
	dir, err := os.MkdirTemp("", "fakesystemd-")
	if err != nil {
		t.Fatalf("creating bus directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if shared {
		if err := os.Chmod(dir, 0o711); err != nil {
			t.Fatalf("opening bus directory: %v", err)
		}
	}
	config := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(config, []byte(busConfig(filepath.Join(dir, "socket"), shared)), 0o600); err != nil {
		t.Fatalf("writing bus config: %v", err)
	}

	cmd := exec.Command(daemon, "--config-file="+config, "--print-address", "--nofork", "--nopidfile", "--nosyslog")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("dbus-daemon stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// The daemon prints its address once it listens; EOF means it exited.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	address := strings.TrimSpace(line)
	if err != nil || address == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("dbus-daemon printed no address (%v); stderr: %s", err, stderr.String())
	}
	return address
}

func busConfig(socket string, shared bool) string {
	// By default dbus-daemon admits only its own user.
	allowUsers := ""
	if shared {
		allowUsers = `<allow user="*"/>`
	}
	return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=` + socket + `</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    ` + allowUsers + `
  </policy>
</busconfig>
`
}

// SetUnit makes the fake know a unit with the given LoadState ("loaded", "not-found",
// "masked", ...) and ActiveState ("active", "inactive", "reloading", ...). Units never set
// answer like systemd answers for unknown names: "not-found" and "inactive".
func (f *Fake) SetUnit(name, loadState, activeState string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.units[name] = unitState{loadState: loadState, activeState: activeState}
}

// SetJobResult sets the result JobRemoved carries for the unit's jobs; JobDone by default.
// Withhold makes its jobs never finish.
func (f *Fake) SetJobResult(unit, result string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobResults[unit] = result
}

// HoldJobs(true) keeps every new job from finishing; HoldJobs(false) finishes the held ones and
// lets later jobs finish right away again.
func (f *Fake) HoldJobs(hold bool) {
	f.mu.Lock()
	f.holdJobs = hold
	var release []job
	if !hold {
		release, f.held = f.held, nil
	}
	f.mu.Unlock()
	for _, j := range release {
		f.finish(j)
	}
}

// OnCall registers hook to run on every call as it arrives, before the fake answers it, so a test
// can look at the state of the world at that moment. The hook must not block for long.
func (f *Fake) OnCall(hook func(Call)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onCall = hook
}

// Calls returns every call received so far, in order of arrival.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// JobCalls returns the calls that asked for a unit job, in order of arrival.
func (f *Fake) JobCalls() []Call {
	var jobs []Call
	for _, c := range f.Calls() {
		if c.IsJob() {
			jobs = append(jobs, c)
		}
	}
	return jobs
}

// record notes a call and runs the hook outside the lock, so the hook may use the fake.
func (f *Fake) record(c Call) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	hook := f.onCall
	f.mu.Unlock()
	if hook != nil {
		hook(c)
	}
}

func (f *Fake) unit(name string) unitState {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u, ok := f.units[name]; ok {
		return u
	}
	return unitState{loadState: "not-found", activeState: "inactive"}
}

// enqueue answers a job method like systemd: refuse units that cannot take jobs, else hand out
// a job path and finish the job later with a JobRemoved signal.
func (f *Fake) enqueue(method, unit, mode string) (dbus.ObjectPath, *dbus.Error) {
	f.record(Call{Method: method, Unit: unit, Mode: mode})
	if !slices.Contains(jobModes, mode) {
		return "", dbus.NewError("org.freedesktop.DBus.Error.InvalidArgs", []any{"Job mode " + mode + " invalid."})
	}
	if err := loadStateError(unit, f.unit(unit).loadState); err != nil {
		return "", err
	}

	f.mu.Lock()
	f.lastJobID++
	j := job{id: f.lastJobID, unit: unit, result: JobDone}
	j.path = dbus.ObjectPath(jobPathPrefix + strconv.FormatUint(uint64(j.id), 10))
	if result, ok := f.jobResults[unit]; ok {
		j.result = result
	}
	hold := f.holdJobs && j.result != Withhold
	if hold {
		f.held = append(f.held, j)
	}
	f.mu.Unlock()

	if !hold && j.result != Withhold {
		// Like systemd, announce the end of the job independently of the reply to the call.
		go f.finish(j)
	}
	return j.path, nil
}

// loadStateError is the error systemd gives when asked for a job on a unit in loadState.
func loadStateError(unit, loadState string) *dbus.Error {
	switch loadState {
	case "loaded":
		return nil
	case "not-found":
		return dbus.NewError("org.freedesktop.systemd1.NoSuchUnit", []any{"Unit " + unit + " not found."})
	case "masked":
		return dbus.NewError("org.freedesktop.systemd1.UnitMasked", []any{"Unit " + unit + " is masked."})
	case "bad-setting":
		return dbus.NewError("org.freedesktop.systemd1.BadUnitSetting", []any{"Unit " + unit + " has a bad unit file setting."})
	default:
		return dbus.NewError("org.freedesktop.systemd1.LoadFailed", []any{"Unit " + unit + " failed to load properly."})
	}
}

func (f *Fake) finish(j job) {
	// Errors only mean the bus is gone at the end of a test.
	_ = f.conn.Emit(ManagerPath, ManagerInterface+".JobRemoved", j.id, j.path, j.unit, j.result)
}

// manager is the org.freedesktop.systemd1.Manager interface.
type manager struct{ f *Fake }

func (m manager) StartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	return m.f.enqueue("StartUnit", name, mode)
}

func (m manager) StopUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	return m.f.enqueue("StopUnit", name, mode)
}

func (m manager) ReloadUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	return m.f.enqueue("ReloadUnit", name, mode)
}

func (m manager) RestartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	return m.f.enqueue("RestartUnit", name, mode)
}

func (m manager) TryRestartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	return m.f.enqueue("TryRestartUnit", name, mode)
}

func (m manager) ReloadOrRestartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	return m.f.enqueue("ReloadOrRestartUnit", name, mode)
}

func (m manager) ReloadOrTryRestartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	return m.f.enqueue("ReloadOrTryRestartUnit", name, mode)
}

// GetUnit fails for units systemd has not loaded, as systemd does.
func (m manager) GetUnit(name string) (dbus.ObjectPath, *dbus.Error) {
	m.f.record(Call{Method: "GetUnit", Unit: name})
	if m.f.unit(name).loadState == "not-found" {
		return "", dbus.NewError("org.freedesktop.systemd1.NoSuchUnit", []any{"Unit " + name + " not loaded."})
	}
	return UnitPath(name), nil
}

// LoadUnit always succeeds, as systemd keeps a not-found unit loaded to answer about it.
func (m manager) LoadUnit(name string) (dbus.ObjectPath, *dbus.Error) {
	m.f.record(Call{Method: "LoadUnit", Unit: name})
	return UnitPath(name), nil
}

func (m manager) Subscribe() *dbus.Error {
	m.f.record(Call{Method: "Subscribe"})
	return nil
}

func (m manager) Unsubscribe() *dbus.Error {
	m.f.record(Call{Method: "Unsubscribe"})
	return nil
}

// managerProperties serves the manager's properties.
type managerProperties struct{ f *Fake }

func (p managerProperties) all() map[string]dbus.Variant {
	return map[string]dbus.Variant{
		"Version":     dbus.MakeVariant("fakesystemd"),
		"SystemState": dbus.MakeVariant("running"),
	}
}

func (p managerProperties) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	p.f.record(Call{Method: "Get"})
	if iface != ManagerInterface {
		return dbus.Variant{}, unknownInterface(iface)
	}
	v, ok := p.all()[name]
	if !ok {
		return dbus.Variant{}, unknownProperty(name)
	}
	return v, nil
}

func (p managerProperties) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	p.f.record(Call{Method: "GetAll"})
	if iface != ManagerInterface && iface != "" {
		return nil, unknownInterface(iface)
	}
	return p.all(), nil
}

// unitProperties serves the properties of every unit object, known or not, as systemd loads
// units on demand when their object is asked about.
type unitProperties struct{ f *Fake }

func (p unitProperties) all(msg dbus.Message, iface string) (string, map[string]dbus.Variant, *dbus.Error) {
	path, _ := msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
	name, err := unitName(path)
	if err != nil {
		return "", nil, dbus.NewError("org.freedesktop.DBus.Error.UnknownObject", []any{err.Error()})
	}
	if iface != UnitInterface && iface != "" {
		return name, nil, unknownInterface(iface)
	}
	u := p.f.unit(name)
	return name, map[string]dbus.Variant{
		"Id":          dbus.MakeVariant(name),
		"LoadState":   dbus.MakeVariant(u.loadState),
		"ActiveState": dbus.MakeVariant(u.activeState),
	}, nil
}

func (p unitProperties) Get(msg dbus.Message, iface, property string) (dbus.Variant, *dbus.Error) {
	name, props, err := p.all(msg, iface)
	p.f.record(Call{Method: "Get", Unit: name})
	if err != nil {
		return dbus.Variant{}, err
	}
	v, ok := props[property]
	if !ok {
		return dbus.Variant{}, unknownProperty(property)
	}
	return v, nil
}

func (p unitProperties) GetAll(msg dbus.Message, iface string) (map[string]dbus.Variant, *dbus.Error) {
	name, props, err := p.all(msg, iface)
	p.f.record(Call{Method: "GetAll", Unit: name})
	if err != nil {
		return nil, err
	}
	return props, nil
}

func unknownInterface(iface string) *dbus.Error {
	return dbus.NewError("org.freedesktop.DBus.Error.UnknownInterface", []any{"Unknown interface " + iface + "."})
}

func unknownProperty(name string) *dbus.Error {
	return dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{"Unknown property " + name + "."})
}

// UnitPath is the object path of a unit, escaped as systemd escapes it: every byte other than
// an ASCII letter or digit, and a leading digit, becomes _xx in hex.
func UnitPath(name string) dbus.ObjectPath {
	if name == "" {
		return unitPathPrefix + "/_"
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		isLetter := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		isDigit := c >= '0' && c <= '9'
		if isLetter || (isDigit && i > 0) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02x", c)
	}
	return dbus.ObjectPath(unitPathPrefix + "/" + b.String())
}

// unitName reverses UnitPath.
func unitName(path dbus.ObjectPath) (string, error) {
	label, ok := strings.CutPrefix(string(path), unitPathPrefix+"/")
	if !ok || label == "" || strings.Contains(label, "/") {
		return "", fmt.Errorf("%s is not a unit object path", path)
	}
	if label == "_" {
		return "", nil
	}
	var name []byte
	for i := 0; i < len(label); i++ {
		if label[i] != '_' {
			name = append(name, label[i])
			continue
		}
		if i+2 >= len(label) {
			return "", fmt.Errorf("%s: truncated escape", path)
		}
		c, err := strconv.ParseUint(label[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("%s: bad escape: %w", path, err)
		}
		name = append(name, byte(c))
		i += 2
	}
	return string(name), nil
}
