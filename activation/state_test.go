package activation

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/identity"
	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
)

// The next activation reads the compact record, and the state file when the record is missing
// or unreadable, as after an upgrade from a secretd that wrote only the state file.
func TestPreviousStateRecord(t *testing.T) {
	dir := t.TempDir()
	want := &State{
		Generation: 7, ActivatedAt: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), SecretsDir: "/run/secrets",
		Identities: []identity.Loaded{{Path: "/etc/ssh/ssh_host_ed25519_key", Kind: identity.KindSSHEd25519}},
		Outputs: []OutputState{
			{Name: "a", Kind: KindSecret, Source: "ab12", Ino: 42, Ctime: 1234, Size: 5, RestartUnits: []string{"x.service"}, Link: "/etc/a",
				Input: InputStamp{File: "/nix/store/a.age", Dev: 1, Ino: 2, Size: 300, Mtime: -1, Ctime: 1 << 62, Digest: [32]byte{9, 8, 7}}},
			{Name: "rendered/t", Kind: KindTemplate, ReloadUnits: []string{"y.service", "z.service"}},
		},
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
		if !reflect.DeepEqual(got.Outputs, want.Outputs) || got.Generation != want.Generation || !reflect.DeepEqual(got.Identities, want.Identities) {
			t.Fatalf("%s: read %+v, want %+v", what, got, want)
		}
		return got
	}

	os.Rename(filepath.Join(dir, StateFile), filepath.Join(dir, "aside"))
	read("record alone")
	os.Rename(filepath.Join(dir, "aside"), filepath.Join(dir, StateFile))

	// The state file has no input stamps: they are for the next activation only.
	if st, err := ReadState(dir); err != nil || st.Outputs[0].Input != (InputStamp{}) {
		t.Fatalf("state file: %v, input %+v", err, st.Outputs[0].Input)
	}
	want.Outputs[0].Input = InputStamp{}

	os.WriteFile(filepath.Join(dir, recordFile), []byte("not a record"), 0o600)
	read("unreadable record")

	os.Remove(filepath.Join(dir, recordFile))
	read("state file alone")

	os.Remove(filepath.Join(dir, StateFile))
	if st, err := readPrevious(dir); st != nil || err != nil {
		t.Fatalf("nothing recorded: %v, %v", st, err)
	}
}

// A file whose stamp matches is not read at all: here it is a directory, which reading refuses.
func TestMatchingStampIsNotRead(t *testing.T) {
	dir := t.TempDir()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	digest := [32]byte{1, 2, 3}
	s := &manifest.Secret{Name: "a", File: dir, Format: manifest.FormatBinary}
	stamp := InputStamp{File: dir, Dev: st.Dev, Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Digest: digest}
	in := &inputSet{paths: []string{dir}, secretsOf: map[string][]*manifest.Secret{dir: {s}}, identities: "ids"}
	reuserWith := func(stamp InputStamp) *reuser {
		return &reuser{
			prev:   map[string]*OutputState{"a": {Name: "a", Kind: KindSecret, Source: sourceID(digest, s, "ids"), Ino: 7, Ctime: 8, Size: 3}},
			live:   map[string]liveFile{"a": {kind: KindSecret, info: ramfs.FileInfo{Ino: 7, Ctime: 8, Size: 3, Regular: true}}},
			stamps: map[string]InputStamp{dir: stamp},
		}
	}
	var out decryptedFile
	decryptFile(dir, in, nil, nil, &out, reuserWith(stamp), time.Now())
	if out.err != nil || !out.reused || out.digest != digest || out.stamp != stamp {
		t.Fatalf("matching stamp: err %v, reused %v, stamp kept %v", out.err, out.reused, out.stamp == stamp)
	}
	stamp.Ctime++
	out = decryptedFile{}
	decryptFile(dir, in, nil, nil, &out, reuserWith(stamp), time.Now())
	if out.err == nil || out.reused {
		t.Fatalf("stale stamp: err %v, reused %v; want the directory read, and refused", out.err, out.reused)
	}
}

// A damaged record is refused whole, whatever the damage, never half read.
func TestDamagedRecordRefused(t *testing.T) {
	record := encodeRecord(&State{Version: stateVersion, Generation: 3, Outputs: []OutputState{
		{Name: "a", Kind: KindSecret, Source: "ab", RestartUnits: []string{"u"}, Input: InputStamp{File: "/f", Digest: [32]byte{1}}},
	}})
	if _, err := decodeRecord(record); err != nil {
		t.Fatal(err)
	}
	for n := range len(record) {
		if st, err := decodeRecord(record[:n]); err == nil {
			t.Fatalf("a record cut at %d of %d bytes decoded: %+v", n, len(record), st)
		}
	}
	if _, err := decodeRecord(append(record, 0)); err == nil {
		t.Fatal("a record with a trailing byte decoded")
	}
	huge := append([]byte(recordMagic), 2, 6, 0, 0xff, 0xff, 0xff, 0xff, 0x0f)
	if _, err := decodeRecord(huge); err == nil {
		t.Fatal("a record claiming billions of outputs decoded")
	}
}
