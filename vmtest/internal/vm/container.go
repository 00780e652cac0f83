package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Container boots the same disk image with systemd-nspawn: the host's kernel, but systemd
// as the container's PID 1 on the image's userland. A boot takes about a second, so
// scenarios can be tried quickly; only the VM proves behaviour at real boot.
//
// The image is mounted read-only under an overlay whose upper layer lives in WorkDir, in a
// private mount namespace that lasts one boot: nothing is mounted on the host, and what a
// boot writes is in the upper layer for the next boot and for the host to read.
type Container struct {
	Image   string // the cached raw ext4 image
	WorkDir string
	Timeout time.Duration // per boot
}

// Upper is the overlay's upper layer: files written there before a boot appear in the
// container, and files the container writes land there.
func (c *Container) Upper() string { return filepath.Join(c.WorkDir, "upper") }

// Prepare makes the directories of the overlay.
func (c *Container) Prepare() error {
	for _, d := range []string{"lower", "upper", "overlay-work", "root"} {
		if err := os.MkdirAll(filepath.Join(c.WorkDir, d), 0o755); err != nil {
			return fmt.Errorf("container: %w", err)
		}
	}
	return nil
}

// bootScript mounts the image and the overlay and replaces itself with systemd-nspawn.
// --keep-unit and --register=no: the host need not run systemd or machined.
const bootScript = `set -e
mount -o loop,ro "$1" "$2"
mount -t overlay overlay -o "lowerdir=$2,upperdir=$3,workdir=$4" "$5"
exec systemd-nspawn --quiet --keep-unit --register=no --console=pipe --boot --directory "$5"`

// Boot runs systemd in the container until it powers off or the timeout passes; the
// container's console goes to logPath.
func (c *Container) Boot(ctx context.Context, logPath string) (*Run, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	defer log.Close()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	dir := func(name string) string { return filepath.Join(c.WorkDir, name) }
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", bootScript, "sh", c.Image, dir("lower"), c.Upper(), dir("overlay-work"), dir("root"))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err = cmd.Run()
	run := &Run{Elapsed: time.Since(start), Accel: "nspawn"}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		run.TimedOut = true
		return run, nil
	}
	if err != nil {
		run.ExitErr = fmt.Errorf("systemd-nspawn: %w\n%s", err, tail(logPath, 20))
	}
	return run, nil
}
