package activation

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/secretd/secretd/identity"
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
}

// ReadState reads the state recorded under mountPoint. A missing file gives (nil, nil).
func ReadState(mountPoint string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(mountPoint, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("state %s: %w", filepath.Join(mountPoint, StateFile), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state %s: version %d, expected %d", filepath.Join(mountPoint, StateFile), st.Version, stateVersion)
	}
	return &st, nil
}

// recordFile holds the state again, in the form the next activation reads: decoding a thousand
// outputs from JSON takes milliseconds of every boot, from gob a tenth of that. StateFile stays
// the record operators and `secretd status` read.
const recordFile = "state.gob"

// writeState replaces the state file and its compact copy atomically, readable by root only.
func writeState(mountPoint string, st *State) error {
	st.Version = stateVersion
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := replaceFile(mountPoint, StateFile, data); err != nil {
		return err
	}
	var record bytes.Buffer
	if err := gob.NewEncoder(&record).Encode(st); err != nil {
		return err
	}
	return replaceFile(mountPoint, recordFile, record.Bytes())
}

// readPrevious reads what the last activation recorded, from its compact copy when that is
// readable, else from the state file (as an older secretd wrote it).
func readPrevious(mountPoint string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(mountPoint, recordFile))
	if err == nil {
		var st State
		if gob.NewDecoder(bytes.NewReader(data)).Decode(&st) == nil && st.Version == stateVersion {
			return &st, nil
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
