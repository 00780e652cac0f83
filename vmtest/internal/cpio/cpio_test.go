package cpio

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/secretd/secretd/internal/testenv"
)

type parsed struct {
	mode, uid, gid uint32
	data           string
}

// readNewc is an independent reader used to check the writer's output.
func readNewc(t *testing.T, b []byte) ([]string, map[string]parsed) {
	t.Helper()
	var order []string
	out := map[string]parsed{}
	off := 0
	align := func() { off = (off + 3) &^ 3 }
	for {
		if off+110 > len(b) {
			t.Fatalf("truncated header at %d", off)
		}
		h := b[off : off+110]
		if string(h[:6]) != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("field %d: %v", i, err)
			}
			return uint32(v)
		}
		mode, uid, gid, size, nameSize := field(1), field(2), field(3), field(6), field(11)
		off += 110
		name := string(b[off : off+int(nameSize)-1])
		off += int(nameSize)
		align()
		data := string(b[off : off+int(size)])
		off += int(size)
		align()
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after trailer", len(b)-off)
			}
			return order, out
		}
		order = append(order, name)
		out[name] = parsed{mode: mode, uid: uid, gid: gid, data: data}
	}
}

func buildSample(t *testing.T) []byte {
	t.Helper()
	a := New()
	steps := []error{
		a.AddFile("/etc/ssh/key", 0o600, []byte("k")),
		a.AddFileOwned("var/lib/x/data", 0o640, 12, 34, []byte("hello!")),
		a.AddSymlink("etc/systemd/system/multi-user.target.wants/a.service", "../a.service"),
		a.AddDir("etc/empty", 0o700),
		a.AddFile("init", 0o755, []byte("#!/bin/sh\n")),
	}
	for _, err := range steps {
		if err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := a.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriteListsParentsFirstWithModesAndOwners(t *testing.T) {
	order, got := readNewc(t, buildSample(t))
	seen := map[string]bool{}
	for _, name := range order {
		if dir := filepath.Dir(name); dir != "." && !seen[dir] {
			t.Errorf("%s listed before its parent %s", name, dir)
		}
		seen[name] = true
	}
	want := map[string]parsed{
		"etc":            {mode: typeDir | 0o755},
		"etc/ssh":        {mode: typeDir | 0o755},
		"etc/ssh/key":    {mode: typeRegular | 0o600, data: "k"},
		"var/lib/x/data": {mode: typeRegular | 0o640, uid: 12, gid: 34, data: "hello!"},
		"etc/empty":      {mode: typeDir | 0o700},
		"init":           {mode: typeRegular | 0o755, data: "#!/bin/sh\n"},
		"etc/systemd/system/multi-user.target.wants/a.service": {mode: typeSymlink | 0o777, data: "../a.service"},
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if g != w {
			t.Errorf("%s = %+v, want %+v", name, g, w)
		}
	}
}

func TestRejectsEscapesAndClashes(t *testing.T) {
	a := New()
	for _, name := range []string{"", "/", "..", "../x", "a/../../x"} {
		if err := a.AddFile(name, 0o644, nil); err == nil {
			t.Errorf("AddFile(%q) accepted", name)
		}
	}
	if err := a.AddFile("f", 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.AddFile("f", 0o644, nil); err == nil {
		t.Error("adding f twice accepted")
	}
	if err := a.AddFile("f/g", 0o644, nil); err == nil {
		t.Error("file below a regular file accepted")
	}
	if err := a.AddFile("h", 0o104755, nil); err == nil {
		t.Error("type bits in mode accepted")
	}
}

// TestGNUCpioExtracts cross-checks the format with a second implementation.
func TestGNUCpioExtracts(t *testing.T) {
	bin := testenv.Tool(t, "cpio", "Debian package cpio")
	dir := t.TempDir()
	cmd := exec.Command(bin, "-i", "-d", "-m", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(buildSample(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "var/lib/x/data"))
	if err != nil || string(data) != "hello!" {
		t.Errorf("var/lib/x/data: %q, %v", data, err)
	}
	target, err := os.Readlink(filepath.Join(dir, "etc/systemd/system/multi-user.target.wants/a.service"))
	if err != nil || target != "../a.service" {
		t.Errorf("symlink: %q, %v", target, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "etc/ssh/key"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%o", fi.Mode().Perm()); got != "600" {
		t.Errorf("etc/ssh/key mode %s, want 600", got)
	}
}
