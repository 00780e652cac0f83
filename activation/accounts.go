package activation

import (
	"fmt"
	"os/user"
	"strconv"

	"github.com/secretd/secretd/manifest"
)

// Accounts resolves user and group names to numbers.
type Accounts interface {
	UserID(name string) (int, error)
	GroupID(name string) (int, error)
}

// SystemAccounts reads the host's user database, caching each answer for the run: thousands of
// secrets owned by one user cost one lookup.
type SystemAccounts struct {
	users, groups map[string]int
}

// NewSystemAccounts returns an empty cache over the host's user database.
func NewSystemAccounts() *SystemAccounts {
	return &SystemAccounts{users: map[string]int{}, groups: map[string]int{}}
}

func (a *SystemAccounts) UserID(name string) (int, error) {
	if id, ok := a.users[name]; ok {
		return id, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fmt.Errorf("unknown user %q", name)
	}
	id, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, fmt.Errorf("user %q has a non-numeric uid %q", name, u.Uid)
	}
	a.users[name] = id
	return id, nil
}

func (a *SystemAccounts) GroupID(name string) (int, error) {
	if id, ok := a.groups[name]; ok {
		return id, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("unknown group %q", name)
	}
	id, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q has a non-numeric gid %q", name, g.Gid)
	}
	a.groups[name] = id
	return id, nil
}

// rootOnly answers for secrets needed before users exist: nothing but root may be named, so no
// user database is read at all.
type rootOnly struct{}

func (rootOnly) UserID(name string) (int, error) {
	if name == "root" {
		return 0, nil
	}
	return 0, fmt.Errorf("owner %q: secrets needed before users exist are owned by root", name)
}

func (rootOnly) GroupID(name string) (int, error) {
	if name == "root" {
		return 0, nil
	}
	return 0, fmt.Errorf("group %q: secrets needed before users exist belong to group root", name)
}

// resolve fills the numeric owner of an output. The user's name is kept for display.
func resolve(o *Output, own manifest.Ownership, accounts Accounts, forUsers bool) error {
	switch {
	case own.UID != nil:
		o.UID = *own.UID
		o.Owner = strconv.Itoa(o.UID)
	default:
		id, err := accounts.UserID(own.Owner)
		if err != nil {
			return err
		}
		o.UID, o.Owner = id, own.Owner
	}
	switch {
	case own.GID != nil:
		o.GID = *own.GID
		o.Group = strconv.Itoa(o.GID)
	default:
		id, err := accounts.GroupID(own.Group)
		if err != nil {
			return err
		}
		o.GID, o.Group = id, own.Group
	}
	if forUsers && (o.UID != 0 || o.GID != 0) {
		return fmt.Errorf("owner %d:%d: secrets needed before users exist are owned by root:root", o.UID, o.GID)
	}
	mode, err := manifest.ParseMode(own.Mode)
	if err != nil {
		return err
	}
	o.Mode, o.ModeString = mode, fmt.Sprintf("%04o", mode)
	return nil
}
