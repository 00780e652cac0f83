package activation

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/secretd/secretd/internal/testns"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
)

// The plan step decides links and stale links from the manifest and the records on the mount
// point alone: a secret that cannot be decrypted fails only the next step, with nothing made.
func TestPlanStepNeedsNoSecretValue(t *testing.T) {
	testns.Require(t)
	dir := t.TempDir()
	root := 0
	key, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "age.key")
	if err := os.WriteFile(keyFile, []byte(key.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{
		Version: 1, SecretsDir: filepath.Join(dir, "secrets"), MountPoint: filepath.Join(dir, "secrets.d"),
		KeepGenerations: 2, Identities: []string{keyFile},
		Secrets: []manifest.Secret{{
			Name: "db", File: filepath.Join(dir, "missing.age"), Path: filepath.Join(dir, "etc", "db"),
			Ownership: manifest.Ownership{UID: &root, GID: &root, Mode: "0400"},
		}},
	}
	os.MkdirAll(m.MountPoint, 0o751)
	old := filepath.Join(dir, "etc", "old")
	if err := writePending(m.MountPoint, &pending{Generation: 1, Links: []string{old, m.Secrets[0].Path}}); err != nil {
		t.Fatal(err)
	}

	r := newRun(m, Options{})
	defer r.close()
	plan, err := r.plan()
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if !plan.FirstActivation || len(plan.Outputs) != 1 || plan.Outputs[0].ModeString != "0400" {
		t.Errorf("plan: first activation %v, outputs %+v", plan.FirstActivation, plan.Outputs)
	}
	if !reflect.DeepEqual(plan.Links, []string{m.Secrets[0].Path}) || !reflect.DeepEqual(plan.StaleLinks, []string{old}) {
		t.Errorf("links %v, stale links %v; want [%s] and [%s]", plan.Links, plan.StaleLinks, m.Secrets[0].Path, old)
	}
	err = r.decrypt(plan)
	if err == nil || !strings.Contains(err.Error(), `secret "db"`) || !strings.Contains(err.Error(), m.Secrets[0].File) {
		t.Errorf("decrypt of a missing file: %v; want an error naming the secret and its file", err)
	}
	for _, p := range []string{m.SecretsDir, m.Secrets[0].Path} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists after plan and a failed decrypt (%v)", p, err)
		}
	}
}

// The compare step reads back only the live files it must, and adds the units a killed run
// that made the live generation never told.
func TestCompareStepAlone(t *testing.T) {
	testns.Require(t)
	liveDir := t.TempDir()
	for name, content := range map[string]string{"a": "old", "b": "same", "c": "kept"} {
		if err := os.WriteFile(filepath.Join(liveDir, name), []byte(content), 0o400); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(liveDir, name), 0o400)
	}
	live, err := readLive(liveDir)
	if err != nil {
		t.Fatal(err)
	}
	// Known unchanged, c must not be read: gone from disk, reading it would fail the step.
	os.Remove(filepath.Join(liveDir, "c"))
	r := &run{
		liveGen: 7, live: live,
		interrupted: &pending{Generation: 7, Restart: []string{"x.service"}, Reload: []string{"b.service"}},
		readBack:    &liveReader{tree: ramfs.NewTreeReader(liveDir), live: live},
	}
	defer r.readBack.close()
	out := func(name, content string) Output {
		return Output{Name: name, Kind: KindSecret, Mode: 0o400, ModeString: "0400", content: []byte(content)}
	}
	a, b, c := out("a", "new"), out("b", "same"), out("c", "")
	a.RestartUnits, b.ReloadUnits, c.unchanged, c.content = []string{"a.service"}, []string{"b.service"}, true, nil
	plan := &Plan{LiveGeneration: 7, Outputs: []Output{a, b, c}}

	if err := r.compare(plan); err != nil {
		t.Fatalf("compare: %v", err)
	}
	if len(plan.Changes) != 1 || plan.Changes[0].Name != "a" || !plan.Changes[0].Content || plan.Changes[0].Owner || plan.Changes[0].Mode {
		t.Errorf("changes %+v; want only a's content", plan.Changes)
	}
	if !plan.NewGeneration || !reflect.DeepEqual(plan.Restart, []string{"a.service", "x.service"}) || !reflect.DeepEqual(plan.Reload, []string{"b.service"}) {
		t.Errorf("new generation %v, restart %v, reload %v; want true, [a.service x.service], [b.service]", plan.NewGeneration, plan.Restart, plan.Reload)
	}
}
