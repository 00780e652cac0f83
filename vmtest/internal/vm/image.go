// Package vm builds a Debian disk image and a small initramfs, caches both by a hash of
// their recipe, and boots them under QEMU with a per-run payload and a watchdog. It exists
// so tests can exercise code on a real kernel with systemd as PID 1.
package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// recipeFormat changes whenever the way an image is built changes in a way the recipe
// fields do not capture, so old cache entries stop matching.
const recipeFormat = "vm-image-1"

// ImageRecipe describes a root filesystem built with mmdebstrap and written to an ext4
// disk image.
type ImageRecipe struct {
	Suite    string   // Debian suite, e.g. "bookworm"
	Variant  string   // mmdebstrap variant, e.g. "minbase"
	Packages []string // extra packages to include
	// Customize is a shell script run on the host after the packages are installed, with
	// the root directory as $1 (chroot "$1" ... runs commands inside it).
	Customize []byte
	SizeMiB   int
	// Mirror is an optional mirror URL; empty means mmdebstrap's default.
	Mirror string
}

// Key is a short hash identifying everything that goes into the image.
func (r ImageRecipe) Key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%d\x00%s\x00", recipeFormat, r.Suite, r.Variant,
		strings.Join(r.Packages, ","), r.SizeMiB, r.Mirror)
	h.Write(r.Customize)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Logf receives progress messages.
type Logf func(format string, args ...any)

// EnsureImage returns the path of the raw disk image for r inside cacheDir, building it
// first when no image with r's key is cached. Concurrent callers are serialised by a lock
// file in cacheDir.
func EnsureImage(ctx context.Context, cacheDir string, r ImageRecipe, logf Logf) (string, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("image cache: %w", err)
	}
	unlock, err := lockDir(cacheDir)
	if err != nil {
		return "", err
	}
	defer unlock()

	final := filepath.Join(cacheDir, "rootfs-"+r.Key()+".img")
	if _, err := os.Stat(final); err == nil {
		logf("using cached image %s", final)
		return final, nil
	}
	logf("building image %s (cache miss)", final)
	work, err := os.MkdirTemp(cacheDir, "build-")
	if err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	defer os.RemoveAll(work)

	customize := filepath.Join(work, "customize.sh")
	if err := os.WriteFile(customize, r.Customize, 0o755); err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	root := filepath.Join(work, "root")
	args := []string{
		"--variant=" + r.Variant,
		"--include=" + strings.Join(r.Packages, ","),
		// Documentation and translations only slow down writing the image.
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--customize-hook=sh " + customize + ` "$1"`,
		r.Suite, root,
	}
	if r.Mirror != "" {
		args = append(args, r.Mirror)
	}
	start := time.Now()
	if err := run(ctx, filepath.Join(work, "mmdebstrap.log"), "mmdebstrap", args...); err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	logf("mmdebstrap took %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	img := filepath.Join(work, "rootfs.img")
	if err := run(ctx, filepath.Join(work, "mkfs.log"), "mkfs.ext4", "-q", "-F", "-L", "vmroot",
		"-d", root, img, fmt.Sprintf("%dM", r.SizeMiB)); err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	logf("mkfs.ext4 took %s", time.Since(start).Round(time.Millisecond))
	if err := os.Rename(img, final); err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	return final, nil
}

// run runs a command, keeping its output in logPath and quoting the output's tail in
// the error when it fails.
func run(ctx context.Context, logPath, name string, args ...string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, tail(logPath, 40))
	}
	return nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// hashFiles hashes the contents of files, for cache keys derived from host files.
func hashFiles(h io.Writer, paths ...string) error {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

var errNoKernel = errors.New("no Debian cloud kernel in /boot (install linux-image-cloud-amd64)")
