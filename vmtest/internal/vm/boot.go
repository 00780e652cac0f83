package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Machine is one QEMU run: a kernel, initramfs parts concatenated in order, a disk, and
// serial ports captured to files. QEMU exits when the guest powers off or reboots, so a
// reboot is a second Boot of a Machine on the same Disk.
type Machine struct {
	Kernel    string
	Initramfs []string
	// Disk is a qcow2 overlay (see CreateOverlay), so the cached base image is never
	// written and successive boots see each other's writes.
	Disk      string
	Cmdline   string
	MemoryMiB int
	CPUs      int
	// Serials names the guest's serial ports in order (ttyS0, ttyS1, ...); each one's
	// output is written to <WorkDir>/<name>.log.
	Serials []string
	WorkDir string
	// Timeout bounds the whole run; QEMU is killed when it passes.
	Timeout time.Duration
}

// Run is the outcome of a boot.
type Run struct {
	Elapsed  time.Duration
	TimedOut bool
	Accel    string
	// ExitErr is QEMU's own failure (it exits 0 when the guest powers off, whatever the
	// guest did), nil otherwise.
	ExitErr error
}

// SerialLog returns the path of the file capturing the named serial port.
func (m *Machine) SerialLog(name string) string {
	return filepath.Join(m.WorkDir, name+".log")
}

// Accelerator chooses KVM only when the host CPU advertises hardware virtualisation and
// /dev/kvm is usable; nested setups that expose /dev/kvm without vmx/svm cannot run a
// full guest there, and QEMU does not fall back by itself.
func Accelerator() (accel string, cpu string) {
	if os.Getenv("SECRETD_VMTEST_ACCEL") == "tcg" {
		return "tcg,thread=multi", "max"
	}
	info, err := os.ReadFile("/proc/cpuinfo")
	hw := err == nil && (strings.Contains(string(info), " vmx") || strings.Contains(string(info), " svm"))
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		if hw {
			return "kvm", "host"
		}
	}
	return "tcg,thread=multi", "max"
}

// Boot runs the machine until the guest powers off or the timeout passes.
func (m *Machine) Boot(ctx context.Context) (*Run, error) {
	if err := os.MkdirAll(m.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	initrd := filepath.Join(m.WorkDir, "initrd.img")
	if err := concat(initrd, m.Initramfs); err != nil {
		return nil, fmt.Errorf("boot: initramfs: %w", err)
	}
	accel, cpu := Accelerator()
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", "pc", "-accel", accel, "-cpu", cpu,
		"-m", strconv.Itoa(m.MemoryMiB), "-smp", strconv.Itoa(m.CPUs),
		"-kernel", m.Kernel, "-initrd", initrd, "-append", m.Cmdline,
		"-drive", "file=" + m.Disk + ",format=qcow2,if=virtio,cache=unsafe",
		// A guest reboot ends the run: reloading a large initramfs after a warm reset is
		// very slow under TCG, and a fresh QEMU per boot gets a watchdog of its own.
		"-no-reboot",
	}
	for _, name := range m.Serials {
		log := m.SerialLog(name)
		if err := os.WriteFile(log, nil, 0o644); err != nil {
			return nil, fmt.Errorf("boot: %w", err)
		}
		args = append(args, "-serial", "file:"+log)
	}

	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	qemuLog, err := os.Create(filepath.Join(m.WorkDir, "qemu.log"))
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	defer qemuLog.Close()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.Stdout, cmd.Stderr = qemuLog, qemuLog
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err = cmd.Run()
	run := &Run{Elapsed: time.Since(start), Accel: accel}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		run.TimedOut = true
		return run, nil
	}
	if err != nil {
		run.ExitErr = fmt.Errorf("qemu: %w\n%s", err, tail(qemuLog.Name(), 20))
	}
	return run, nil
}

func concat(dst string, parts []string) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	for _, p := range parts {
		in, err := os.Open(p)
		if err != nil {
			out.Close()
			return err
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

// CreateOverlay makes a qcow2 file at path whose reads fall through to the raw image base
// and which receives every write.
func CreateOverlay(ctx context.Context, base, path string) error {
	abs, err := filepath.Abs(base)
	if err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", abs, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("overlay: qemu-img create: %w\n%s", err, out)
	}
	return nil
}
