package activation

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// The next activation reads the compact record, and the state file when the record is missing
// or unreadable, as after an upgrade from a secretd that wrote only the state file.
func TestPreviousStateRecord(t *testing.T) {
	dir := t.TempDir()
	want := &State{
		Generation: 7, ActivatedAt: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), SecretsDir: "/run/secrets",
		Outputs: []OutputState{{Name: "a", Kind: KindSecret, Source: "ab12", Ino: 42, Ctime: 1234, Size: 5, RestartUnits: []string{"x.service"}}},
	}
	if err := writeState(dir, want); err != nil {
		t.Fatal(err)
	}
	read := func(what string) *State {
		t.Helper()
		got, err := readPrevious(dir)
		if err != nil || got == nil {
			t.Fatalf("%s: %v, %v", what, got, err)
		}
		if !reflect.DeepEqual(got.Outputs, want.Outputs) || got.Generation != want.Generation || !got.ActivatedAt.Equal(want.ActivatedAt) {
			t.Fatalf("%s: read %+v, want %+v", what, got, want)
		}
		return got
	}

	os.Rename(filepath.Join(dir, StateFile), filepath.Join(dir, "aside"))
	read("record alone")
	os.Rename(filepath.Join(dir, "aside"), filepath.Join(dir, StateFile))

	os.WriteFile(filepath.Join(dir, recordFile), []byte("not a record"), 0o600)
	read("unreadable record")

	os.Remove(filepath.Join(dir, recordFile))
	read("state file alone")

	os.Remove(filepath.Join(dir, StateFile))
	if st, err := readPrevious(dir); st != nil || err != nil {
		t.Fatalf("nothing recorded: %v, %v", st, err)
	}
}
