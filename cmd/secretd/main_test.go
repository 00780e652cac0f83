package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/secretd/secretd/internal/interop"
	"github.com/secretd/secretd/internal/testns"
)

// namespaced runs the tests in a private mount namespace, where scripts may mount ramfs.
type namespaced struct{ m *testing.M }

func (n namespaced) Run() int { return testns.Run(n.m) }

func TestMain(m *testing.M) {
	testscript.Main(namespaced{m}, map[string]func(){
		"secretd": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scripts in testdata/script. $INTEROP is the interop corpus.
func TestScripts(t *testing.T) {
	testns.Require(t)
	dir := interop.Dir(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("INTEROP", dir)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"expand":   expand,
			"samefile": samefile,
			"noleak":   noleak,
			"chmodx":   chmodx,
		},
	})
}

// expand replaces $VARS in files in place, so manifests can name absolute paths.
func expand(ts *testscript.TestScript, neg bool, args []string) {
	for _, name := range args {
		p := ts.MkAbs(name)
		data, err := os.ReadFile(p)
		ts.Check(err)
		ts.Check(os.WriteFile(p, []byte(os.Expand(string(data), ts.Getenv)), 0o644))
	}
}

// samefile compares two files without ever printing their content, which may be a secret.
func samefile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: samefile got want")
	}
	got, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	want, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	same := bytes.Equal(got, want)
	if same == neg {
		ts.Fatalf("%s and %s: same content %v (%d and %d bytes)", args[0], args[1], same, len(got), len(want))
	}
}

// noleak fails if the stdout or stderr of the last command holds the content of any given file.
func noleak(ts *testscript.TestScript, neg bool, args []string) {
	out := ts.ReadFile("stdout") + ts.ReadFile("stderr")
	for _, name := range args {
		data, err := os.ReadFile(ts.MkAbs(name))
		ts.Check(err)
		s := strings.TrimSpace(string(data))
		if len(s) >= 4 && strings.Contains(out, s) {
			ts.Fatalf("the plaintext of %s appears in the output", filepath.Base(name))
		}
	}
}

// chmodx sets a file's mode: chmodx 0644 file.
func chmodx(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: chmodx MODE file")
	}
	var mode uint32
	for _, c := range args[0] {
		mode = mode*8 + uint32(c-'0')
	}
	ts.Check(os.Chmod(ts.MkAbs(args[1]), os.FileMode(mode)))
}
