package activation

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/manifest"
	"github.com/secretd/secretd/ramfs"
)

// Status is what is live and whether it is healthy.
type Status struct {
	Healthy bool `json:"healthy"`
	// Unreadable: the recorded state could not be read (status not run as root, for one), so
	// nothing is known of the health.
	Unreadable bool           `json:"unreadable,omitempty"`
	Problems   []string       `json:"problems"`
	State      *State         `json:"state"`
	Files      []OutputHealth `json:"files"`
}

// OutputHealth is one recorded output as found on disk now.
type OutputHealth struct {
	OutputState
	OK      bool   `json:"ok"`
	Problem string `json:"problem,omitempty"`
}

// ReadStatus inspects the activation recorded under mountPoint: secretsDir points at the
// recorded generation on a ramfs, every file still has its recorded owner, mode and size, and
// every path symlink is in place.
func ReadStatus(mountPoint string) *Status {
	return ReadStoreStatus(ramfs.Store{Root: mountPoint})
}

// ReadStoreStatus is ReadStatus for a store of either kind, such as a user's.
func ReadStoreStatus(store ramfs.Store) *Status {
	mountPoint := store.Root
	st := &Status{Problems: []string{}, Files: []OutputHealth{}}
	state, err := ReadState(mountPoint)
	switch {
	case err != nil:
		st.Problems = append(st.Problems, err.Error())
		st.Unreadable = true
		return st
	case state == nil:
		st.Problems = append(st.Problems, fmt.Sprintf("no activation recorded under %s (has secretd activate run?)", mountPoint))
		return st
	}
	st.State = state
	if state.Generation < 1 {
		st.Problems = append(st.Problems, fmt.Sprintf("the recorded state names generation %d", state.Generation))
		return st
	}
	switch {
	case store.Ready():
	case store.User:
		st.Problems = append(st.Problems, fmt.Sprintf("mountPoint %s is not a directory of this user, closed to others, on a tmpfs or ramfs", mountPoint))
	default:
		st.Problems = append(st.Problems, fmt.Sprintf("mountPoint %s is not a ramfs", mountPoint))
	}
	live, ok, err := store.Live(state.SecretsDir)
	switch {
	case err != nil:
		st.Problems = append(st.Problems, fmt.Sprintf("secretsDir %s: %v", state.SecretsDir, err))
	case !ok:
		st.Problems = append(st.Problems, fmt.Sprintf("secretsDir %s does not point at a generation under %s", state.SecretsDir, mountPoint))
	case live != state.Generation:
		st.Problems = append(st.Problems, fmt.Sprintf("secretsDir %s points at generation %d, but generation %d was activated last", state.SecretsDir, live, state.Generation))
	}
	dir := store.Dir(state.Generation)
	for _, o := range state.Outputs {
		h := OutputHealth{OutputState: o}
		// The state is root's, but status must not be made to describe (or follow a link
		// to) anything outside the generation should it be crafted.
		if err := manifest.CheckName(o.Name); err != nil {
			h.Problem = "invalid name in the recorded state: " + err.Error()
		} else {
			h.Problem = checkOutput(dir, o)
		}
		h.OK = h.Problem == ""
		if !h.OK {
			st.Problems = append(st.Problems, fmt.Sprintf("%s %s: %s", o.Kind, o.Path, h.Problem))
		}
		st.Files = append(st.Files, h)
	}
	st.Healthy = len(st.Problems) == 0
	return st
}

func checkOutput(dir string, o OutputState) string {
	info, err := ramfs.Stat(dir, o.Name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "missing"
		}
		return err.Error()
	}
	var problems []string
	if !info.Regular {
		problems = append(problems, "not a regular file")
	}
	if info.UID != o.UID || info.GID != o.GID {
		problems = append(problems, fmt.Sprintf("owner %d:%d, expected %d:%d", info.UID, info.GID, o.UID, o.GID))
	}
	if mode := fmt.Sprintf("%04o", info.Mode); mode != o.Mode {
		problems = append(problems, fmt.Sprintf("mode %s, expected %s", mode, o.Mode))
	}
	if info.Size != int64(o.Size) {
		problems = append(problems, fmt.Sprintf("size %d, expected %d", info.Size, o.Size))
	}
	if o.Link != "" && o.Copy {
		var st unix.Stat_t
		switch err := unix.Lstat(o.Link, &st); {
		case err != nil:
			problems = append(problems, fmt.Sprintf("path copy %s: %v", o.Link, err))
		case st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != o.UID || int(st.Gid) != o.GID ||
			fmt.Sprintf("%04o", st.Mode&0o7777) != o.Mode || st.Size != int64(o.Size):
			problems = append(problems, fmt.Sprintf("path copy %s is not a %d-byte file %d:%d %s", o.Link, o.Size, o.UID, o.GID, o.Mode))
		}
	} else if o.Link != "" {
		target, err := os.Readlink(o.Link)
		if err != nil {
			problems = append(problems, fmt.Sprintf("path symlink %s: %v", o.Link, err))
		} else if target != o.Path {
			problems = append(problems, fmt.Sprintf("path symlink %s points at %s, expected %s", o.Link, target, o.Path))
		}
	}
	return strings.Join(problems, "; ")
}

// Print writes the status for people.
func (s *Status) Print(w io.Writer) {
	if s.Healthy {
		fmt.Fprintln(w, "healthy")
	} else {
		fmt.Fprintln(w, "UNHEALTHY")
		for _, p := range s.Problems {
			fmt.Fprintf(w, "  problem: %s\n", p)
		}
	}
	st := s.State
	if st == nil {
		return
	}
	fmt.Fprintf(w, "generation %d, activated %s from %s\n", st.Generation, st.ActivatedAt.Format("2006-01-02 15:04:05 MST"), st.Manifest)
	fmt.Fprintf(w, "%s -> %s\n", st.SecretsDir, filepath.Join(st.MountPoint, fmt.Sprint(st.Generation)))
	for _, id := range st.Identities {
		fmt.Fprintf(w, "decrypted with %s (%s)\n", id.Path, id.Kind)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tOWNER\tGROUP\tMODE\tSIZE\tLINK\tSTATE")
	for _, f := range s.Files {
		state := "ok"
		if !f.OK {
			state = f.Problem
		}
		link := f.Link
		switch {
		case link == "":
			link = "-"
		case f.Copy:
			link += " (copy)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", f.Path, f.Owner, f.Group, f.Mode, f.Size, link, state)
	}
	tw.Flush()
	if !st.NewGen {
		fmt.Fprintln(w, "last activation: no change")
	}
	for _, c := range st.Changes {
		fmt.Fprintf(w, "last activation: %s %s %s\n", c.Action, c.Kind, c.Name)
	}
	for _, u := range st.Units {
		detail := ""
		if u.Detail != "" {
			detail = " (" + u.Detail + ")"
		}
		fmt.Fprintf(w, "unit %s: %s -> %s%s\n", u.Unit, u.Action, u.Outcome, detail)
	}
}
