package manifest_test

import (
	"strings"
	"testing"

	"github.com/secretd/secretd/manifest"
)

var alice = manifest.User{RuntimeDir: "/run/user/1000", UID: 1000, GID: 100}

func TestDecodeUserDefaultsAndRuntimeDir(t *testing.T) {
	m, err := manifest.DecodeUser([]byte(`{
  "version": 1,
  "identities": ["/home/alice/.config/sops/age/keys.txt", "%r/key"],
  "secrets": [
    {"name": "token", "file": "/nix/store/x-token.age", "mode": "0440", "path": "${XDG_RUNTIME_DIR}/agenix/token"},
    {"name": "npmrc", "file": "/nix/store/x-npmrc.age", "path": "/home/alice/.npmrc"}
  ],
  "templates": [{"name": "gitconfig", "content": "x", "path": "$XDG_RUNTIME_DIR/gitconfig"}]
}`), alice)
	if err != nil {
		t.Fatal(err)
	}
	if m.SecretsDir != "/run/user/1000/secrets" || m.MountPoint != "/run/user/1000/secretd.d" {
		t.Errorf("secretsDir %q, mountPoint %q; want them under the runtime dir", m.SecretsDir, m.MountPoint)
	}
	if m.Identities[1] != "/run/user/1000/key" {
		t.Errorf("identity %q: %%r not replaced", m.Identities[1])
	}
	if got := m.Secrets[0].Path; got != "/run/user/1000/agenix/token" {
		t.Errorf("path %q: ${XDG_RUNTIME_DIR} not replaced", got)
	}
	if got := m.Templates[0].Path; got != "/run/user/1000/gitconfig" {
		t.Errorf("template path %q: $XDG_RUNTIME_DIR not replaced", got)
	}
	for _, o := range []manifest.Ownership{m.Secrets[0].Ownership, m.Secrets[1].Ownership, m.Templates[0].Ownership} {
		if o.UID == nil || *o.UID != 1000 || o.GID == nil || *o.GID != 100 || o.Owner != "" || o.Group != "" {
			t.Errorf("ownership %+v; want uid 1000, gid 100 and no names", o)
		}
	}
	if m.Secrets[0].Mode != "0440" || m.Secrets[1].Mode != "0400" {
		t.Errorf("modes %q, %q; want 0440 and the default 0400", m.Secrets[0].Mode, m.Secrets[1].Mode)
	}
}

func TestDecodeUserRefusesOwnership(t *testing.T) {
	_, err := manifest.DecodeUser([]byte(`{
  "version": 1,
  "identities": ["/home/alice/.ssh/id_ed25519"],
  "secrets": [{"name": "a", "file": "/nix/store/x-a.age", "owner": "root", "gid": 0}],
  "templates": [{"name": "t", "content": "x", "group": "wheel"}]
}`), alice)
	if err == nil {
		t.Fatal("a user's manifest naming owners was accepted")
	}
	for _, want := range []string{"secrets[0] (a).owner: is set", "secrets[0] (a).gid: is set", "templates[0] (t).group: is set"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The same manifest is fine for the system.
	if _, err := manifest.Decode([]byte(`{"version": 1, "identities": ["/k"], "secrets": [{"name": "a", "file": "/f", "owner": "root", "gid": 0}]}`)); err != nil {
		t.Errorf("system manifest: %v", err)
	}
}
