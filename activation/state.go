package activation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/identity"
	"github.com/secretd/secretd/ramfs"
	"github.com/secretd/secretd/units"
)

// StateFile is the record of the last activation, root-only, on the ramfs.
const StateFile = "state.json"

// stateVersion changes when State changes incompatibly.
const stateVersion = 1

// State is what the last activation did. It holds ownership, modes and sizes, never content
// nor any digest of it.
type State struct {
	Version     int               `json:"version"`
	Generation  int               `json:"generation"`
	ActivatedAt time.Time         `json:"activatedAt"`
	Manifest    string            `json:"manifest"`
	SecretsDir  string            `json:"secretsDir"`
	MountPoint  string            `json:"mountPoint"`
	Identities  []identity.Loaded `json:"identities"`
	Outputs     []OutputState     `json:"outputs"`
	Changes     []Change          `json:"changes"`
	Units       []units.Result    `json:"units"`
	NewGen      bool              `json:"newGeneration"`
	DurationMS  float64           `json:"durationMs"`
}

// OutputState is one output as recorded.
type OutputState struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Path  string `json:"path"`
	Link  string `json:"link,omitempty"`
	Copy  bool   `json:"copy,omitempty"` // Link is a copy, not a symlink
	Owner string `json:"owner"`
	Group string `json:"group"`
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	Mode  string `json:"mode"`
	Size  int    `json:"size"`
	// Source identifies the encrypted input (SHA-256 of the file, format and key) and Ino and
	// Ctime the file written from it, so an unchanged input need not be decrypted again.
	Source       string   `json:"source,omitempty"`
	Ino          uint64   `json:"ino,omitempty"`
	Ctime        int64    `json:"ctime,omitempty"`
	RestartUnits []string `json:"restartUnits,omitempty"`
	ReloadUnits  []string `json:"reloadUnits,omitempty"`
	// Input is kept in the compact record only: it is for the next activation, not operators.
	Input InputStamp `json:"-"`
}

// InputStamp is an encrypted file as it was read: where it is, what stat said of it, and the
// SHA-256 of its bytes. A file whose stat is the same again need not be read and hashed again,
// which on a host of a thousand secrets is most of a re-activation.
type InputStamp struct {
	File               string
	Dev, Ino           uint64
	Size, Mtime, Ctime int64
	Digest             [32]byte
}

// racyWindow is how recent a file's change may be for its stamp to be recorded: timestamps
// are coarse, so a file rewritten within the same tick, at the same size and in place, would
// keep its stamp. A file changed this recently is read again next time.
const racyWindow = 2 * time.Second

// stampOf describes a file read at now; it is the zero stamp if the file changed too recently
// for its stat to be trusted later.
func stampOf(file string, st *unix.Stat_t, digest [32]byte, now time.Time) InputStamp {
	changed := max(st.Mtim.Nano(), st.Ctim.Nano())
	if now.UnixNano()-changed < int64(racyWindow) {
		return InputStamp{}
	}
	return InputStamp{File: file, Dev: st.Dev, Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Digest: digest}
}

// matches tells whether st describes the very file the stamp was taken of.
func (s InputStamp) matches(st *unix.Stat_t) bool {
	return s.File != "" && s.Dev == st.Dev && s.Ino == st.Ino && s.Size == st.Size &&
		s.Mtime == st.Mtim.Nano() && s.Ctime == st.Ctim.Nano()
}

// maxStateSize bounds the state file status reads.
const maxStateSize = 1 << 30

// ReadState reads the state recorded under mountPoint. A missing file gives (nil, nil). The file
// must be a regular file of root's (or, in a user's store, of the user running secretd), not a
// symlink: status reads it as root from a directory it is told about.
func ReadState(mountPoint string) (*State, error) {
	path := filepath.Join(mountPoint, StateFile)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the state %s: %w", path, err)
	}
	defer unix.Close(fd)
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		return nil, fmt.Errorf("cannot read the state %s: %w", path, err)
	}
	if owner := int(fst.Uid); fst.Mode&unix.S_IFMT != unix.S_IFREG || owner != 0 && owner != unix.Geteuid() || fst.Size > maxStateSize {
		return nil, fmt.Errorf("the state %s is not a regular file of root's or this user's", path)
	}
	data, _, err := ramfs.ReadWhole(fd, path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the state %s: %w", path, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("the state %s is not valid JSON", path)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state %s: version %d, expected %d", filepath.Join(mountPoint, StateFile), st.Version, stateVersion)
	}
	return &st, nil
}

// recordFile holds the compact record of the state (see encodeRecord).
const recordFile = "state.record"

// writeState replaces the state file and its compact record atomically, readable by root only.
func writeState(mountPoint string, st *State) error {
	st.Version = stateVersion
	// Sized for the usual few hundred bytes an output, so that the encoder does not grow its
	// buffer over and over: fresh memory costs a page fault a page.
	buf := bytes.NewBuffer(make([]byte, 0, 1024+384*len(st.Outputs)))
	if err := json.NewEncoder(buf).Encode(st); err != nil {
		return err
	}
	if err := replaceFile(mountPoint, StateFile, buf.Bytes()); err != nil {
		return err
	}
	return replaceFile(mountPoint, recordFile, encodeRecord(st))
}

// readPrevious reads what the last activation recorded, from its compact record when that is
// readable, else from the state file (as an older secretd wrote it).
func readPrevious(mountPoint string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(mountPoint, recordFile))
	if err == nil {
		if st, err := decodeRecord(data); err == nil && st.Version == stateVersion {
			return st, nil
		}
	}
	return ReadState(mountPoint)
}

// pendingFile records, for the length of an activation's visible changes, what it was doing.
const pendingFile = "pending.json"

// pending is what an activation records before it swaps: a run killed after the swap has not
// told its units, and may have made links that nothing else records.
type pending struct {
	Generation int      `json:"generation"`
	Restart    []string `json:"restart,omitempty"`
	Reload     []string `json:"reload,omitempty"`
	Links      []string `json:"links,omitempty"`
}

func readPending(mountPoint string) (*pending, error) {
	data, err := os.ReadFile(filepath.Join(mountPoint, pendingFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p pending
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(mountPoint, pendingFile), err)
	}
	return &p, nil
}

func writePending(mountPoint string, p *pending) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return replaceFile(mountPoint, pendingFile, data)
}

func removePending(mountPoint string) error {
	err := os.Remove(filepath.Join(mountPoint, pendingFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// replaceFile writes name under dir atomically, readable by root only.
func replaceFile(dir, name string, data []byte) error {
	final := filepath.Join(dir, name)
	tmp := filepath.Join(dir, ".secretd-tmp-"+name)
	os.Remove(tmp)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", final, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("writing %s: %w", final, err)
	}
	return nil
}
