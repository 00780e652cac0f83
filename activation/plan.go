// Package activation turns a manifest into a live generation of secrets: it plans (what would be
// added, changed, removed, and which units told), decrypts everything in memory, writes a new
// generation, swaps it in atomically, makes the path symlinks, prunes, records state and signals
// the units of what changed — in that order, so a failure before the swap leaves the live
// generation untouched.
package activation

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/secretd/secretd/units"
)

// Kinds of output file.
const (
	KindSecret   = "secret"
	KindTemplate = "template"
)

// Output is one file of a generation, resolved to numbers. Its content is never printed,
// marshalled or logged.
type Output struct {
	Name         string   `json:"name"` // relative to secretsDir
	Kind         string   `json:"kind"`
	File         string   `json:"file,omitempty"`
	Format       string   `json:"format,omitempty"`
	Key          string   `json:"key,omitempty"`
	Owner        string   `json:"owner"`
	Group        string   `json:"group"`
	UID          int      `json:"uid"`
	GID          int      `json:"gid"`
	Mode         uint32   `json:"-"`
	ModeString   string   `json:"mode"`
	Link         string   `json:"link,omitempty"`
	Copy         bool     `json:"copy,omitempty"` // Link is a copy of the file, not a symlink
	RestartUnits []string `json:"restartUnits,omitempty"`
	ReloadUnits  []string `json:"reloadUnits,omitempty"`

	content []byte
	// unchanged is set when the live file holds this output's content already (see reuser);
	// content is then read back only to be copied into a new generation.
	unchanged bool
}

// Change actions.
const (
	ActionAdd    = "add"
	ActionChange = "change"
	ActionRemove = "remove"
)

// Change is how one output differs from the live generation.
type Change struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Action  string `json:"action"`
	Content bool   `json:"content,omitempty"`
	Owner   bool   `json:"owner,omitempty"`
	Mode    bool   `json:"mode,omitempty"`
	// Before and After describe ownership and mode, never content.
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// Plan is what an activation does, as data: printable before anything is written.
type Plan struct {
	Manifest        string         `json:"manifest"`
	SecretsDir      string         `json:"secretsDir"`
	MountPoint      string         `json:"mountPoint"`
	LiveGeneration  int            `json:"liveGeneration"`
	FirstActivation bool           `json:"firstActivation"`
	NewGeneration   bool           `json:"newGeneration"`
	Outputs         []Output       `json:"outputs"`
	Changes         []Change       `json:"changes"`
	Restart         []string       `json:"restart"`
	Reload          []string       `json:"reload"`
	Links           []string       `json:"links,omitempty"`
	StaleLinks      []string       `json:"staleLinks,omitempty"`
	Units           []units.Result `json:"units,omitempty"`
}

func ownershipString(o Output) string {
	return fmt.Sprintf("%s:%s %s", o.Owner, o.Group, o.ModeString)
}

// computeChanges compares the planned outputs with what is live and decides which units to
// signal. live maps a live output name to its description; nil means no live generation.
func (p *Plan) computeChanges(live map[string]liveFile, previous map[string]units.Request) {
	p.Changes = nil
	restart, reload := map[string]bool{}, map[string]bool{}
	consumersOf := func(req units.Request) {
		for _, u := range req.Restart {
			restart[u] = true
		}
		for _, u := range req.Reload {
			reload[u] = true
		}
	}
	for _, o := range p.Outputs {
		old, ok := live[o.Name]
		c := Change{Name: o.Name, Kind: o.Kind, After: ownershipString(o)}
		switch {
		case !ok:
			c.Action = ActionAdd
		default:
			c.Content = !o.unchanged && !old.sameContent(o.content)
			c.Owner = old.info.UID != o.UID || old.info.GID != o.GID
			c.Mode = old.info.Mode != o.Mode
			if !c.Content && !c.Owner && !c.Mode {
				continue
			}
			c.Action = ActionChange
			c.Before = fmt.Sprintf("%d:%d %04o", old.info.UID, old.info.GID, old.info.Mode)
			c.After = fmt.Sprintf("%d:%d %04o", o.UID, o.GID, o.Mode)
		}
		p.Changes = append(p.Changes, c)
		consumersOf(units.Request{Restart: o.RestartUnits, Reload: o.ReloadUnits})
	}
	planned := map[string]bool{}
	for _, o := range p.Outputs {
		planned[o.Name] = true
	}
	for _, name := range sortedKeys(live) {
		if planned[name] {
			continue
		}
		p.Changes = append(p.Changes, Change{Name: name, Kind: live[name].kind, Action: ActionRemove})
		consumersOf(previous[name])
	}
	sort.Slice(p.Changes, func(i, j int) bool { return p.Changes[i].Name < p.Changes[j].Name })
	p.NewGeneration = p.FirstActivation || len(p.Changes) > 0
	p.Restart, p.Reload = nil, nil
	if p.FirstActivation {
		// Services start after secretd by ordering: nothing running has seen an old value.
		return
	}
	for _, u := range sortedKeys(restart) {
		p.Restart = append(p.Restart, u)
	}
	for _, u := range sortedKeys(reload) {
		if !restart[u] {
			p.Reload = append(p.Reload, u)
		}
	}
}

// addUnits merges more units to signal into the plan; a restart supersedes a reload.
func (p *Plan) addUnits(restart, reload []string) {
	r, l := map[string]bool{}, map[string]bool{}
	for _, u := range append(p.Restart, restart...) {
		r[u] = true
	}
	for _, u := range append(p.Reload, reload...) {
		if !r[u] {
			l[u] = true
		}
	}
	p.Restart, p.Reload = sortedKeys(r), sortedKeys(l)
	if len(p.Restart) == 0 {
		p.Restart = nil
	}
	if len(p.Reload) == 0 {
		p.Reload = nil
	}
}

// Print writes the plan for people.
func (p *Plan) Print(w io.Writer) {
	fmt.Fprintf(w, "manifest:   %s\n", p.Manifest)
	fmt.Fprintf(w, "secretsDir: %s\n", p.SecretsDir)
	switch {
	case p.LiveGeneration == 0:
		fmt.Fprintf(w, "live:       none (first activation)\n")
	default:
		fmt.Fprintf(w, "live:       generation %d\n", p.LiveGeneration)
	}
	if !p.NewGeneration {
		fmt.Fprintf(w, "no change: %d outputs are live as declared\n", len(p.Outputs))
	}
	for _, c := range p.Changes {
		switch c.Action {
		case ActionAdd:
			fmt.Fprintf(w, "  + add     %-8s %s (%s)\n", c.Kind, c.Name, c.After)
		case ActionRemove:
			fmt.Fprintf(w, "  - remove  %-8s %s\n", c.Kind, c.Name)
		default:
			var what []string
			if c.Content {
				what = append(what, "content")
			}
			if c.Owner {
				what = append(what, "owner")
			}
			if c.Mode {
				what = append(what, "mode")
			}
			fmt.Fprintf(w, "  ~ change  %-8s %s (%s; %s -> %s)\n", c.Kind, c.Name, strings.Join(what, ", "), c.Before, c.After)
		}
	}
	for _, l := range p.StaleLinks {
		fmt.Fprintf(w, "  - unlink  %s\n", l)
	}
	if len(p.Restart) > 0 {
		fmt.Fprintf(w, "restart: %s\n", strings.Join(p.Restart, " "))
	}
	if len(p.Reload) > 0 {
		fmt.Fprintf(w, "reload:  %s\n", strings.Join(p.Reload, " "))
	}
	for _, u := range p.Units {
		fmt.Fprintf(w, "unit %s: %s -> %s\n", u.Unit, u.Action, u.Outcome)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
