// Package manifest defines the secretd manifest (version 1), the JSON contract between the
// NixOS module and the daemon, and decodes and validates it strictly.
package manifest

import (
	"fmt"
	"os"
)

// Version is the only manifest version this build understands.
const Version = 1

// Defaults applied to optional fields.
const (
	DefaultOwner           = "root"
	DefaultGroup           = "root"
	DefaultMode            = "0400"
	DefaultFormat          = FormatBinary
	DefaultKeepGenerations = 1
	DefaultSecretsDir      = "/run/secrets"
	DefaultMountPoint      = "/run/secrets.d"
)

// Formats of a secret's plaintext, selecting how Key is looked up.
const (
	FormatBinary = "binary"
	FormatYAML   = "yaml"
	FormatJSON   = "json"
	FormatDotenv = "dotenv"
	FormatINI    = "ini"
)

// Formats lists every accepted format.
var Formats = []string{FormatBinary, FormatYAML, FormatJSON, FormatDotenv, FormatINI}

// Manifest is a whole activation: where secrets go, which identities decrypt them, and each
// secret and template.
type Manifest struct {
	Version         int               `json:"version"`
	SecretsDir      string            `json:"secretsDir"`
	MountPoint      string            `json:"mountPoint"`
	KeepGenerations int               `json:"keepGenerations"`
	Identities      []string          `json:"identities"`
	Secrets         []Secret          `json:"secrets"`
	Placeholders    map[string]string `json:"placeholders,omitempty"`
	Templates       []Template        `json:"templates"`
}

// Ownership is who owns an output file and with which permission bits. Owner and Group are
// names; UID and GID, when set, are numbers used instead of a name lookup.
type Ownership struct {
	Owner string `json:"owner,omitempty"`
	Group string `json:"group,omitempty"`
	UID   *int   `json:"uid,omitempty"`
	GID   *int   `json:"gid,omitempty"`
	Mode  string `json:"mode,omitempty"`
}

// Consumers are the systemd units told about a change of an output file.
type Consumers struct {
	RestartUnits []string `json:"restartUnits,omitempty"`
	ReloadUnits  []string `json:"reloadUnits,omitempty"`
}

// Secret is one output file decrypted from an encrypted file.
type Secret struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Format string `json:"format,omitempty"`
	Key    string `json:"key,omitempty"`
	Ownership
	// Path is an optional extra symlink pointing at <secretsDir>/<name>.
	Path string `json:"path,omitempty"`
	Consumers
}

// Template is one output file rendered from text whose placeholders stand for secrets.
type Template struct {
	Name    string `json:"name"`
	Content string `json:"content"`
	Ownership
	Path string `json:"path,omitempty"`
	Consumers
}

// Load reads and decodes the manifest at path. See Decode.
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	m, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}

// Decode parses a manifest strictly (unknown or repeated fields, trailing data and a missing
// or unknown version are errors), fills in defaults and validates it. A document that cannot be
// decoded is reported at its first error; a decoded one that does not validate, with every
// problem found, each naming its JSON location.
func Decode(data []byte) (*Manifest, error) {
	m, err := decode(data)
	if err != nil {
		return nil, err
	}
	m.applyDefaults()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func position(data []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < offset && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func (m *Manifest) applyDefaults() {
	if m.SecretsDir == "" {
		m.SecretsDir = DefaultSecretsDir
	}
	if m.MountPoint == "" {
		m.MountPoint = DefaultMountPoint
	}
	if m.KeepGenerations == 0 {
		m.KeepGenerations = DefaultKeepGenerations
	}
	for i := range m.Secrets {
		s := &m.Secrets[i]
		s.Ownership.applyDefaults()
		if s.Format == "" {
			s.Format = DefaultFormat
		}
	}
	for i := range m.Templates {
		m.Templates[i].Ownership.applyDefaults()
	}
}

func (o *Ownership) applyDefaults() {
	if o.Owner == "" && o.UID == nil {
		o.Owner = DefaultOwner
	}
	if o.Group == "" && o.GID == nil {
		o.Group = DefaultGroup
	}
	if o.Mode == "" {
		o.Mode = DefaultMode
	}
}
