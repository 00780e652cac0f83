package vmtest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/vmtest/internal/results"
	"github.com/secretd/secretd/vmtest/internal/vm"
)

// scenario is a group of checks that the guest's runner (testdata/guest/run.sh) performs
// in one boot and reports with its own verdict, so a missing feature fails only its own
// scenario.
type scenario struct {
	boot int
	name string
}

// plan is the order in which the guest runs the scenarios. rotation, owner-mode and failure
// build on each other's state, and reboot checks what the first boot left on the disk.
var plan = []scenario{
	{1, "harness"},           // systemd is PID 1 on the virtio disk and started the runner unit
	{1, "boot"},              // early activation on a ramfs, owners and modes, consumers read secrets
	{1, "for-users"},         // a secret activated before users exist sets a user's password hash
	{1, "early-boot"},        // a DefaultDependencies=no unit reads a secret at start
	{1, "agenix-password"},   // agenixCompat: a user created at first boot from an age password file
	{1, "symlink-migration"}, // symlink = false replaces the regular file agenix left at path
	{1, "status"},            // secretd status is healthy, then names a file whose mode was changed
	{1, "home"},              // a lingering user's systemd --user runs the home-manager user unit
	{1, "security"},          // systemd-analyze security figures of the activation units
	{1, "rotation"},          // a switch restarts/reloads consumers of changed secrets only
	{1, "owner-mode"},        // a change of mode alone restarts the consumer
	{1, "failure"},           // an undecryptable secret fails the unit and keeps the old generation
	{1, "switch-rerun"},      // a switch with the same manifest rereads a changed out-of-store file
	{2, "reboot"},            // a second boot starts from an empty ramfs and activates cleanly
}

const bootsPlanned = 2

// setup is what both tiers share: a fresh secretd, the golden units, the cached image.
type setup struct {
	ctx     context.Context
	here    string
	cache   string
	secretd string
	units   map[string]*activationUnit
	image   string
	work    string
	start   time.Time
}

func newSetup(t *testing.T, tools ...string) *setup {
	t.Helper()
	if os.Getenv("SECRETD_VMTEST") != "1" {
		t.Skip("VM tests are off: run `sudo vmtest/install-deps.sh` once, then `SECRETD_VMTEST=1 go test -v ./vmtest/...` as root")
	}
	if os.Geteuid() != 0 {
		t.Fatal("SECRETD_VMTEST=1 needs root: building the image runs mmdebstrap and writes root-owned files")
	}
	if missing := missingTools(tools...); len(missing) > 0 {
		t.Fatalf("missing tools %s: run vmtest/install-deps.sh", strings.Join(missing, ", "))
	}
	s := &setup{ctx: context.Background(), start: time.Now(), cache: cacheDir()}
	repo := repoRoot(t)
	s.here = filepath.Join(repo, "vmtest")
	s.secretd = buildSecretd(t, repo)
	s.units = loadActivationUnits(t, s.here)
	for _, u := range s.units {
		t.Logf("%s from %s", u.name, u.source)
	}
	phase := time.Now()
	image, err := vm.EnsureImage(s.ctx, s.cache, imageRecipe(t, s.here), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	s.image = image
	t.Logf("image ready in %s", time.Since(phase).Round(time.Millisecond))
	s.work = workDir(t)
	return s
}

// TestVM is the proof: QEMU boots the image twice on one disk with Debian's kernel.
func TestVM(t *testing.T) {
	s := newSetup(t, "qemu-system-x86_64", "qemu-img")
	kernel, err := vm.FindKernel("/boot", "vmlinuz-*-cloud-amd64", "/lib/modules")
	if err != nil {
		t.Fatal(err)
	}
	initramfs, err := vm.EnsureInitramfs(s.cache, vm.InitramfsSpec{
		Kernel:  kernel,
		Busybox: "/bin/busybox",
		Modules: []string{"virtio_pci", "virtio_blk", "ext4"},
		Init:    readFile(t, filepath.Join(s.here, "testdata/guest/init")),
	})
	if err != nil {
		t.Fatal(err)
	}
	payload := buildPayload(t, s.here, s.work, tierVM, s.secretd, s.units, kernel.Release, watchdog(t))
	payloadPath := filepath.Join(s.work, "payload.cpio")
	if err := payload.Write(payloadPath); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(s.work, "disk.qcow2")
	if err := vm.CreateOverlay(s.ctx, s.image, disk); err != nil {
		t.Fatal(err)
	}

	var out outcome
	for boot := 1; boot <= bootsPlanned; boot++ {
		machine := &vm.Machine{
			Kernel:    kernel.Image,
			Initramfs: []string{initramfs, payloadPath},
			Disk:      disk,
			Cmdline: strings.TrimSpace(fmt.Sprintf("console=ttyS0,115200 panic=-1 loglevel=4 mitigations=off "+
				"vmtest.maxboots=%d systemd.show_status=auto %s", bootsPlanned, os.Getenv("SECRETD_VMTEST_APPEND"))),
			MemoryMiB: 1024,
			CPUs:      2,
			Serials:   []string{"console", "results", "journal"},
			WorkDir:   filepath.Join(s.work, fmt.Sprintf("boot%d", boot)),
			Timeout:   watchdog(t),
		}
		run, err := machine.Boot(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		out.results = append(out.results, machine.SerialLog("results"))
		out.journals = append(out.journals, machine.SerialLog("journal"))
		out.consoles = append(out.consoles, machine.SerialLog("console"))
		t.Logf("boot %d: QEMU (%s) ran %s", boot, run.Accel, run.Elapsed.Round(time.Millisecond))
		if !out.booted(t, boot, run, machine.Timeout) {
			break // the disk is in an unknown state; later boots would prove nothing
		}
		if line := grepFirst(machine.SerialLog("results"), "VMTEST INIT-FAILED"); line != "" {
			t.Errorf("boot %d: initramfs: %s", boot, line)
			out.failed = true
			break
		}
	}
	out.judge(t)
	t.Logf("whole VM test took %s", time.Since(s.start).Round(time.Millisecond))
}

// TestNspawn runs the same scenarios in a systemd-nspawn container on the same image: a
// quick check of the scenarios and the units on this host's kernel, not a boot proof.
func TestNspawn(t *testing.T) {
	s := newSetup(t, "systemd-nspawn")
	payload := buildPayload(t, s.here, s.work, tierNspawn, s.secretd, s.units, "", watchdog(t))
	c := &vm.Container{Image: s.image, WorkDir: filepath.Join(s.work, "container"), Timeout: watchdog(t)}
	if err := c.Prepare(); err != nil {
		t.Fatal(err)
	}
	root := c.Upper() // files written here appear in the container; its writes land here
	if err := payload.Extract(root); err != nil {
		t.Fatal(err)
	}
	var out outcome
	for boot := 1; boot <= bootsPlanned; boot++ {
		// In the VM the initramfs counts boots; here the host does.
		if err := os.WriteFile(filepath.Join(root, guestData, "boot-count"), []byte(fmt.Sprintf("%d\n", boot)), 0o644); err != nil {
			t.Fatal(err)
		}
		console := filepath.Join(s.work, fmt.Sprintf("console-%d.log", boot))
		out.consoles = append(out.consoles, console)
		run, err := c.Boot(s.ctx, console)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("boot %d: systemd-nspawn ran %s", boot, run.Elapsed.Round(time.Millisecond))
		if !out.booted(t, boot, run, c.Timeout) {
			break
		}
	}
	// The runner appends every boot's reports to the same files.
	out.results = []string{filepath.Join(root, outDir, "results.log")}
	out.journals = []string{filepath.Join(root, outDir, "journal.log")}
	out.judge(t)
	t.Logf("whole nspawn test took %s", time.Since(s.start).Round(time.Millisecond))
}

// outcome gathers the reports of a run's boots and turns them into subtests.
type outcome struct {
	results, journals, consoles []string
	boots                       int
	failed                      bool
}

// booted records how a boot ended and reports whether the next one makes sense.
func (o *outcome) booted(t *testing.T, boot int, run *vm.Run, timeout time.Duration) bool {
	t.Helper()
	o.boots = boot
	switch {
	case run.TimedOut:
		t.Errorf("boot %d: watchdog: the guest did not power off within %s", boot, timeout)
	case run.ExitErr != nil:
		t.Errorf("boot %d: %v", boot, run.ExitErr)
	default:
		return true
	}
	o.failed = true
	return false
}

// judge makes one subtest per planned scenario, passing only on the guest's explicit PASS,
// and prints the journals and consoles when anything failed.
func (o *outcome) judge(t *testing.T) {
	t.Helper()
	report := parseResults(t, o.results...)
	for boot := 1; boot <= o.boots; boot++ {
		if !report.HaltedIn(boot) {
			t.Errorf("boot %d: the guest's runner never finished (it crashed, hung or died)", boot)
			o.failed = true
		}
	}
	if !o.failed && !report.Ended {
		t.Error("the guest never reported the end of its scenarios")
		o.failed = true
	}
	for _, sc := range plan {
		t.Run(sc.name, func(t *testing.T) {
			got := report.Scenario(sc.name)
			if got != nil {
				for _, line := range got.Log {
					t.Log(line)
				}
				for _, line := range got.Info {
					t.Logf("info: %s", line)
				}
			}
			if v := got.Verdict(); v != "passed" {
				o.failed = true
				t.Errorf("scenario %s (boot %d): %s", sc.name, sc.boot, v)
			} else if got.Boot != sc.boot {
				o.failed = true
				t.Errorf("scenario %s ran in boot %d, planned for boot %d", sc.name, got.Boot, sc.boot)
			}
		})
	}
	if o.failed {
		for _, j := range o.journals {
			logJournals(t, j)
		}
		for i, c := range o.consoles {
			logTail(t, fmt.Sprintf("console of boot %d", i+1), c, 60)
		}
	}
}

func missingTools(extra ...string) []string {
	var missing []string
	for _, tool := range append([]string{"mmdebstrap", "mkfs.ext4", "age", "ssh-keygen", "go"}, extra...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		missing = append(missing, "/bin/busybox (busybox-static)")
	}
	return missing
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// cacheDir holds the built image and initramfs between runs.
func cacheDir() string {
	if dir := os.Getenv("SECRETD_VMTEST_CACHE"); dir != "" {
		return dir
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = "/var/cache"
	}
	return filepath.Join(base, "secretd-vmtest")
}

// workDir holds this run's payload and serial logs; SECRETD_VMTEST_KEEP=1 keeps it for
// inspection.
func workDir(t *testing.T) string {
	if os.Getenv("SECRETD_VMTEST_KEEP") != "1" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", "secretd-vmtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keeping the run's files in %s", dir)
	return dir
}

func watchdog(t *testing.T) time.Duration {
	if s := os.Getenv("SECRETD_VMTEST_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SECRETD_VMTEST_TIMEOUT: %v", err)
		}
		return d
	}
	return 6 * time.Minute
}

func imageRecipe(t *testing.T, here string) vm.ImageRecipe {
	return vm.ImageRecipe{
		Suite:     "bookworm",
		Variant:   "minbase",
		Packages:  []string{"systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-client"},
		Customize: readFile(t, filepath.Join(here, "testdata/image/customize.sh")),
		SizeMiB:   1024,
		Mirror:    os.Getenv("SECRETD_VMTEST_MIRROR"),
	}
}

// buildSecretd builds a static secretd from this tree, or takes SECRETD_VMTEST_SECRETD.
func buildSecretd(t *testing.T, repo string) string {
	t.Helper()
	if bin := os.Getenv("SECRETD_VMTEST_SECRETD"); bin != "" {
		t.Logf("using prebuilt secretd %s", bin)
		return bin
	}
	out := filepath.Join(t.TempDir(), "secretd")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/secretd")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building secretd: %v\n%s", err, msg)
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// parseResults reads the results ports of successive boots as one stream.
func parseResults(t *testing.T, paths ...string) *results.Report {
	t.Helper()
	var streams []io.Reader
	for _, path := range paths {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			t.Logf("the guest wrote no results to %s", path)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		streams = append(streams, f)
	}
	rep, err := results.Parse(io.MultiReader(streams...))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func grepFirst(path, needle string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), needle) {
			return strings.TrimSpace(sc.Text())
		}
	}
	return ""
}

func logJournals(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Logf("no journal dump: %v", err)
		return
	}
	defer f.Close()
	journals, err := results.ParseJournals(f)
	if err != nil {
		t.Log(err)
	}
	if len(journals) == 0 {
		t.Log("the guest dumped no journal")
	}
	for _, j := range journals {
		state := "complete"
		if !j.Complete {
			state = "cut short"
		}
		t.Logf("journal of boot %s (%s):\n%s", j.Boot, state, strings.Join(j.Lines, "\n"))
	}
}

func logTail(t *testing.T, what, path string, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Logf("%s: %v", what, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("last %d lines of %s:\n%s", len(lines), what, strings.Join(lines, "\n"))
}
