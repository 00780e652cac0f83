package vm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/secretd/secretd/vmtest/internal/cpio"
)

// Kernel is a kernel image with its modules, taken from the host's /boot and /lib/modules.
type Kernel struct {
	Release    string // e.g. 6.1.0-26-cloud-amd64
	Image      string // path of the vmlinuz
	ModulesDir string // /lib/modules/<release>
}

// FindKernel picks the newest kernel matching glob in bootDir (e.g. "vmlinuz-*-cloud-amd64").
func FindKernel(bootDir, glob, modulesRoot string) (Kernel, error) {
	matches, err := filepath.Glob(filepath.Join(bootDir, glob))
	if err != nil {
		return Kernel{}, fmt.Errorf("kernel: %w", err)
	}
	if len(matches) == 0 {
		return Kernel{}, errNoKernel
	}
	sort.Strings(matches)
	img := matches[len(matches)-1]
	release := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
	mods := filepath.Join(modulesRoot, release)
	if _, err := os.Stat(filepath.Join(mods, "modules.dep")); err != nil {
		return Kernel{}, fmt.Errorf("kernel %s: modules: %w", release, err)
	}
	return Kernel{Release: release, Image: img, ModulesDir: mods}, nil
}

// ModuleLoadOrder resolves module names (as modprobe takes them) to module files relative
// to the modules directory, dependencies first, leaving out modules built into the kernel.
func (k Kernel) ModuleLoadOrder(names []string) ([]string, error) {
	deps, err := readModulesDep(filepath.Join(k.ModulesDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	builtin, err := readBuiltin(filepath.Join(k.ModulesDir, "modules.builtin"))
	if err != nil {
		return nil, err
	}
	byName := map[string]string{}
	for path := range deps {
		byName[moduleName(path)] = path
	}
	var order []string
	seen := map[string]bool{}
	for _, name := range names {
		name = strings.ReplaceAll(name, "-", "_")
		if builtin[name] {
			continue
		}
		path, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("kernel %s: module %s neither built in nor in modules.dep", k.Release, name)
		}
		// modules.dep lists a module's dependencies so that loading them in reverse works.
		chain := append([]string{path}, deps[path]...)
		for i := len(chain) - 1; i >= 0; i-- {
			p := chain[i]
			if seen[p] {
				continue
			}
			if !strings.HasSuffix(p, ".ko") {
				return nil, fmt.Errorf("kernel %s: module %s is compressed; the initramfs loads plain .ko files only", k.Release, p)
			}
			seen[p] = true
			order = append(order, p)
		}
	}
	return order, nil
}

func moduleName(path string) string {
	base := filepath.Base(path)
	base = base[:strings.Index(base, ".ko")]
	return strings.ReplaceAll(base, "-", "_")
}

func readModulesDep(path string) (map[string][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("modules.dep: %w", err)
	}
	defer f.Close()
	deps := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
	}
	return deps, sc.Err()
}

func readBuiltin(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("modules.builtin: %w", err)
	}
	out := map[string]bool{}
	for _, line := range strings.Fields(string(data)) {
		out[moduleName(line)] = true
	}
	return out, nil
}

// InitramfsSpec is the cached base initramfs: busybox, kernel modules and an /init script.
type InitramfsSpec struct {
	Kernel  Kernel
	Busybox string   // path of a statically linked busybox
	Modules []string // module names to load, in order
	Init    []byte   // the /init script
}

// EnsureInitramfs returns the path of the base initramfs for spec inside cacheDir, writing
// it when missing. The /init script finds the module files to load in /etc/modules.order.
func EnsureInitramfs(cacheDir string, spec InitramfsSpec) (string, error) {
	order, err := spec.Kernel.ModuleLoadOrder(spec.Modules)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "initramfs-1\x00%s\x00%s\x00", spec.Kernel.Release, strings.Join(order, ","))
	h.Write(spec.Init)
	if err := hashFiles(h, spec.Busybox); err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	for _, m := range order {
		if err := hashFiles(h, filepath.Join(spec.Kernel.ModulesDir, m)); err != nil {
			return "", fmt.Errorf("initramfs: %w", err)
		}
	}
	final := filepath.Join(cacheDir, "initramfs-"+hex.EncodeToString(h.Sum(nil))[:16]+".cpio")
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}

	a := cpio.New()
	busybox, err := os.ReadFile(spec.Busybox)
	if err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	var list bytes.Buffer
	steps := []error{
		a.AddFile("bin/busybox", 0o755, busybox),
		a.AddFile("init", 0o755, spec.Init),
		a.AddDir("proc", 0o755), a.AddDir("sys", 0o755), a.AddDir("dev", 0o755),
		a.AddDir("newroot", 0o755), a.AddDir("payload", 0o755),
	}
	for _, m := range order {
		data, err := os.ReadFile(filepath.Join(spec.Kernel.ModulesDir, m))
		if err != nil {
			return "", fmt.Errorf("initramfs: %w", err)
		}
		steps = append(steps, a.AddFile("lib/modules/"+filepath.Base(m), 0o644, data))
		fmt.Fprintln(&list, filepath.Base(m))
	}
	steps = append(steps, a.AddFile("etc/modules.order", 0o644, list.Bytes()))
	for _, err := range steps {
		if err != nil {
			return "", fmt.Errorf("initramfs: %w", err)
		}
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	return final, writeAtomically(final, a)
}

func writeAtomically(path string, a *cpio.Archive) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	if _, err := a.WriteTo(w); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
