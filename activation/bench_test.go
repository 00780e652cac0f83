package activation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/activation"
	"github.com/secretd/secretd/internal/interop"
	"github.com/secretd/secretd/internal/testenv"
	"github.com/secretd/secretd/internal/testns"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
)

// The benchmarks measure Activate itself on agenix-style inputs: every file encrypted to the
// host's ssh-ed25519 key, as `age -R ssh_host_ed25519_key.pub` writes them, decrypted with that
// key alone. bench/run.sh measures the built binary against the agenix-style baseline; these
// are for profiling (-cpuprofile, -memprofile). Figures only: nothing here asserts on time.

// benchHost is a host in miniature for benchmarks: encrypted files and a manifest, with
// fresh secretsDir and mount point directories handed out per activation.
type benchHost struct {
	b        *testing.B
	dir      string
	identity string
	values   map[string][]byte
	secrets  []manifest.Secret
	mounted  []string
	roots    int
}

func newBenchHost(b *testing.B) *benchHost {
	b.Helper()
	testns.Require(b)
	h := &benchHost{b: b, dir: b.TempDir(), identity: interop.Key(b, "ssh_host_ed25519_key"), values: map[string][]byte{}}
	b.Cleanup(func() {
		for _, mp := range h.mounted {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	})
	return h
}

// ageSecrets adds n secrets, one agenix-style file each, every tenth owned by nobody:nogroup.
func (h *benchHost) ageSecrets(n int) {
	h.b.Helper()
	pub, err := os.ReadFile(interop.Key(h.b, "ssh_host_ed25519_key.pub"))
	if err != nil {
		h.b.Fatal(err)
	}
	recipient, err := agessh.ParseRecipient(strings.TrimSpace(string(pub)))
	if err != nil {
		h.b.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("s%d", i)
		value := fmt.Appendf(nil, "pw-%d-%032x\n", i, uint64(i)*0x9e3779b97f4a7c15)
		file := h.encrypt(name, recipient, value)
		s := manifest.Secret{Name: name, File: file}
		if i%10 == 0 {
			s.Ownership = manifest.Ownership{Owner: "nobody", Group: "nogroup", Mode: "0440"}
		}
		h.secrets = append(h.secrets, s)
		h.values[name] = value
	}
}

func (h *benchHost) encrypt(name string, recipient age.Recipient, value []byte) string {
	h.b.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipient)
	if err != nil {
		h.b.Fatal(err)
	}
	if _, err := w.Write(value); err != nil {
		h.b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		h.b.Fatal(err)
	}
	p := filepath.Join(h.dir, "enc", name+".age")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.b.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		h.b.Fatal(err)
	}
	return p
}

// manifest returns the host's manifest, decoded as secretd loads it, over a new secretsDir and
// mount point when fresh is set and over the previous ones otherwise.
func (h *benchHost) manifest(fresh bool) *manifest.Manifest {
	h.b.Helper()
	if fresh || h.roots == 0 {
		h.roots++
	}
	root := filepath.Join(h.dir, fmt.Sprintf("root%d", h.roots), "run")
	m := &manifest.Manifest{
		Version: 1, SecretsDir: filepath.Join(root, "secrets"), MountPoint: filepath.Join(root, "secrets.d"),
		Identities: []string{h.identity}, Secrets: h.secrets,
	}
	data, err := json.Marshal(m)
	if err != nil {
		h.b.Fatal(err)
	}
	out, err := manifest.Decode(data)
	if err != nil {
		h.b.Fatal(err)
	}
	return out
}

func (h *benchHost) activate(m *manifest.Manifest) *activation.Plan {
	h.b.Helper()
	// The inputs were written moments ago; seen from a minute later they are as settled as
	// files in the Nix store, whose stamps let a re-activation skip reading them.
	later := func() time.Time { return time.Now().Add(time.Minute) }
	plan, err := activation.Activate(context.Background(), m, activation.Options{ManifestPath: "bench.json", Log: zap.NewNop(), Now: later})
	if err != nil {
		h.b.Fatalf("activate: %v", err)
	}
	if len(h.mounted) == 0 || h.mounted[len(h.mounted)-1] != m.MountPoint {
		h.mounted = append(h.mounted, m.MountPoint)
	}
	return plan
}

// unmountAll drops every ramfs mounted so far, so memory does not grow with b.N.
func (h *benchHost) unmountAll() {
	for _, mp := range h.mounted {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			h.b.Fatalf("unmount %s: %v", mp, err)
		}
	}
	h.mounted = nil
}

// verify checks every output of m against the values encrypted, never printing one.
func (h *benchHost) verify(m *manifest.Manifest) {
	h.b.Helper()
	for _, s := range m.Secrets {
		got, _, err := ramfs.ReadFile(m.SecretsDir+"/", s.Name)
		if err != nil {
			h.b.Fatalf("%s: %v", s.Name, err)
		}
		if want := h.values[s.Name]; !bytes.Equal(got, want) {
			h.b.Fatalf("%s: content mismatch (%d bytes, want %d)", s.Name, len(got), len(want))
		}
	}
}

// cpuMeter adds up the CPU time of the whole process (decryption workers included) over the
// timed sections: on a shared machine wall time swings with other load, CPU time much less.
type cpuMeter struct {
	started, total time.Duration
}

func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (c *cpuMeter) start() { c.started = processCPU() }
func (c *cpuMeter) stop()  { c.total += processCPU() - c.started }

// report prints CPU milliseconds per activation and wall microseconds per secret.
func (c *cpuMeter) report(b *testing.B, secrets int) {
	b.ReportMetric(float64(c.total.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(secrets), "µs/secret")
}

// BenchmarkActivate is a first activation: mount a ramfs, decrypt every file, write the
// generation, swap it in, record the state.
func BenchmarkActivate(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			h := newBenchHost(b)
			h.ageSecrets(n)
			h.benchFreshActivations(b, n)
		})
	}
}

// BenchmarkNoChange re-activates a live manifest: everything is decrypted and compared with
// the live generation, and nothing is written but the state.
func BenchmarkNoChange(b *testing.B) {
	const n = 1000
	b.Run(fmt.Sprint(n), func(b *testing.B) {
		h := newBenchHost(b)
		h.ageSecrets(n)
		m := h.manifest(true)
		h.activate(m)
		if plan := h.activate(m); plan.NewGeneration {
			b.Fatal("re-activating an unchanged manifest made a new generation")
		}
		var cpu cpuMeter
		b.ResetTimer()
		cpu.start()
		for range b.N {
			h.activate(m)
		}
		cpu.stop()
		b.StopTimer()
		cpu.report(b, n)
	})
}

// BenchmarkSops1000Keys feeds 1000 secrets from one sops YAML file of 1000 keys, written by
// the sops CLI for the corpus' host key (bench/make-testdata.sh), on a fresh ramfs each time.
func BenchmarkSops1000Keys(b *testing.B) {
	const n = 1000
	root, err := testenv.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(root, "bench", "testdata", "k1000.sops.yaml")
	if _, err := os.Stat(file); err != nil {
		b.Fatalf("sops test file: %v (bench/make-testdata.sh writes it)", err)
	}
	h := newBenchHost(b)
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("k%d", i)
		h.secrets = append(h.secrets, manifest.Secret{Name: name, File: file, Format: manifest.FormatYAML, Key: name})
		h.values[name] = sopsBenchValue(i)
	}
	h.benchFreshActivations(b, n)
}

// BenchmarkSopsBinaryFiles is a first activation of 1000 secrets, each from its own sops file
// in sops' binary format (copies of the interop corpus' blob.sops.json).
func BenchmarkSopsBinaryFiles(b *testing.B) {
	const n = 1000
	blob, err := os.ReadFile(interop.Enc(b, "blob.sops.json"))
	if err != nil {
		b.Fatal(err)
	}
	value := interop.Expected(b, "sops-binary.blob")
	h := newBenchHost(b)
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("b%d", i)
		file := filepath.Join(h.dir, "enc", name+".sops.json")
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(file, blob, 0o644); err != nil {
			b.Fatal(err)
		}
		h.secrets = append(h.secrets, manifest.Secret{Name: name, File: file})
		h.values[name] = value
	}
	h.benchFreshActivations(b, n)
}

// benchFreshActivations checks one activation of the host's secrets, then times activations
// each on a fresh mount point.
func (h *benchHost) benchFreshActivations(b *testing.B, n int) {
	m := h.manifest(true)
	h.activate(m)
	h.verify(m)
	h.unmountAll()
	var cpu cpuMeter
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		h.unmountAll()
		m := h.manifest(true)
		b.StartTimer()
		cpu.start()
		h.activate(m)
		cpu.stop()
	}
	b.StopTimer()
	cpu.report(b, n)
}

// sopsBenchValue is key k<i>'s value in bench/testdata/k1000.sops.yaml; make-testdata.sh
// writes the same.
func sopsBenchValue(i int) []byte {
	return fmt.Appendf(nil, "value-%04d-of-a-thousand-keys", i)
}
