package manifest

import (
	"fmt"
	"os"
	"strings"
)

// Defaults of a user's manifest, relative to the user's runtime directory.
const (
	DefaultUserSecretsDir = "secrets"
	DefaultUserMountPoint = "secretd.d"
)

// RuntimeDirVars are the spellings that stand for the user's runtime directory in a user's
// manifest: sops-nix's `%r` and the `${XDG_RUNTIME_DIR}` agenix's home-manager module writes.
// Nix evaluates the manifest before the directory is known.
var RuntimeDirVars = []string{"%r", "${XDG_RUNTIME_DIR}", "$XDG_RUNTIME_DIR"}

// User is whom a user's manifest is activated for (`secretd activate --user`).
type User struct {
	// RuntimeDir is $XDG_RUNTIME_DIR, the user's private tmpfs.
	RuntimeDir string
	UID, GID   int
}

// LoadUser reads and decodes a user's manifest at path. See DecodeUser.
func LoadUser(path string, u User) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	m, err := DecodeUser(data, u)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}

// DecodeUser decodes a manifest of a user's own secrets. Everything belongs to the user, so
// owner, group, uid and gid are refused; modes apply. The runtime directory's spellings in
// RuntimeDirVars are replaced in secretsDir, mountPoint, identities and paths, and secretsDir
// and mountPoint default to <runtime dir>/secrets and <runtime dir>/secretd.d.
func DecodeUser(data []byte, u User) (*Manifest, error) {
	m, err := decode(data)
	if err != nil {
		return nil, err
	}
	var p Problems
	refuseOwnership := func(pl place, o *Ownership) {
		fields := []struct {
			name string
			set  bool
		}{{"owner", o.Owner != ""}, {"group", o.Group != ""}, {"uid", o.UID != nil}, {"gid", o.GID != nil}}
		for _, f := range fields {
			if f.set {
				p.add(pl.String()+"."+f.name, "is set, but a user's secrets all belong to that user")
			}
		}
		uid, gid := u.UID, u.GID
		o.UID, o.GID = &uid, &gid
	}
	for i := range m.Secrets {
		refuseOwnership(place{"secrets", i, m.Secrets[i].Name}, &m.Secrets[i].Ownership)
	}
	for i := range m.Templates {
		refuseOwnership(place{"templates", i, m.Templates[i].Name}, &m.Templates[i].Ownership)
	}
	if len(p) > 0 {
		return nil, p
	}
	if m.SecretsDir == "" {
		m.SecretsDir = u.RuntimeDir + "/" + DefaultUserSecretsDir
	}
	if m.MountPoint == "" {
		m.MountPoint = u.RuntimeDir + "/" + DefaultUserMountPoint
	}
	expand := func(s *string) {
		for _, v := range RuntimeDirVars {
			*s = strings.ReplaceAll(*s, v, u.RuntimeDir)
		}
	}
	expand(&m.SecretsDir)
	expand(&m.MountPoint)
	for i := range m.Identities {
		expand(&m.Identities[i])
	}
	for i := range m.Secrets {
		expand(&m.Secrets[i].Path)
	}
	for i := range m.Templates {
		expand(&m.Templates[i].Path)
	}
	m.applyDefaults()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}
