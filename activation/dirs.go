package activation

import "path/filepath"

// dirAttrs is who owns a directory of a generation, made for nested names, and its mode.
type dirAttrs struct {
	UID, GID int
	Mode     uint32
}

// directories decides the owner, group and mode of every directory made for nested names
// (app/db/password makes app and app/db): owned by the one user who owns every output below it
// (else root) and by the one group they share (else root), mode r-x for that owner, r-x for
// that group when an output below grants its group access, and --x (search, no listing) for
// others only when someone else must get through: an output readable by others, owned by
// another user, or shared with another group. app/db/password owned by app, mode 0400, so
// gives app and app/db owned by app, mode 0500: app reads it, no one else can even look in.
func directories(outputs []Output) map[string]dirAttrs {
	type acc struct {
		dirAttrs
		mixedUID, mixedGID bool
	}
	dirs := map[string]*acc{}
	ancestors := func(name string, visit func(dir string)) {
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			visit(d)
		}
	}
	for _, o := range outputs {
		ancestors(o.Name, func(d string) {
			a := dirs[d]
			if a == nil {
				a = &acc{dirAttrs: dirAttrs{UID: o.UID, GID: o.GID}}
				dirs[d] = a
			}
			a.mixedUID = a.mixedUID || a.UID != o.UID
			a.mixedGID = a.mixedGID || a.GID != o.GID
		})
	}
	for _, a := range dirs {
		if a.mixedUID {
			a.UID = 0
		}
		if a.mixedGID {
			a.GID = 0
		}
		a.Mode = 0o500
	}
	for _, o := range outputs {
		groupBits, otherBits := o.Mode&0o070 != 0, o.Mode&0o007 != 0
		ancestors(o.Name, func(d string) {
			a := dirs[d]
			if groupBits && o.GID == a.GID {
				a.Mode |= 0o050
			}
			if otherBits || o.UID != a.UID && o.UID != 0 || groupBits && o.GID != a.GID {
				a.Mode |= 0o001
			}
		})
	}
	out := make(map[string]dirAttrs, len(dirs))
	for d, a := range dirs {
		out[d] = a.dirAttrs
	}
	return out
}
