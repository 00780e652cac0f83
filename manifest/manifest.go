// Package manifest defines the secretd manifest (version 1), the JSON contract between the
// NixOS module and the daemon, and decodes and validates it strictly.
package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Version is the only manifest version this build understands.
const Version = 1

// Defaults applied to optional fields.
const (
	DefaultOwner           = "root"
	DefaultGroup           = "root"
	DefaultMode            = "0400"
	DefaultFormat          = FormatBinary
	DefaultKeepGenerations = 1 // 0, given explicitly, keeps every generation
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
	Version    int    `json:"version"`
	SecretsDir string `json:"secretsDir"`
	MountPoint string `json:"mountPoint"`
	// KeepGenerations is how many complete generations are kept; 0 keeps them all.
	KeepGenerations int      `json:"keepGenerations"`
	Identities      []string `json:"identities"`
	// GnuPGHome, when set, is a GnuPG home whose secret keys open sops files' PGP recipients,
	// through the gpg binary (sops-nix's sops.gnupg.home).
	GnuPGHome    string            `json:"gnupgHome,omitempty"`
	Secrets      []Secret          `json:"secrets"`
	Placeholders map[string]string `json:"placeholders,omitempty"`
	Templates    []Template        `json:"templates"`
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
	// Symlink false makes Path a copy of the file instead of a symlink to it (agenix's
	// symlink = false). Nil means true.
	Symlink *bool `json:"symlink,omitempty"`
	Consumers
}

// Template is one output file rendered from text whose placeholders stand for secrets: Content,
// or the file File names (a store path, so that a NixOS configuration can build the text
// without evaluating it), which Load reads into Content.
type Template struct {
	Name    string `json:"name"`
	Content string `json:"content"`
	File    string `json:"file,omitempty"`
	Ownership
	Path    string `json:"path,omitempty"`
	Symlink *bool  `json:"symlink,omitempty"`
	Consumers
}

// CopyToPath reports whether an output's path is a copy of its file rather than a symlink.
func CopyToPath(path string, symlink *bool) bool { return path != "" && symlink != nil && !*symlink }

// Load reads and decodes the manifest at path, with the text of templates given by file. See
// Decode.
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	m, err := decodeWith(data, readTemplateFiles)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}

// Decode parses a manifest strictly (unknown or repeated fields, trailing data and a missing
// or unknown version are errors), fills in defaults and validates it. A document that cannot be
// decoded is reported at its first error; a decoded one that does not validate, with every
// problem found, each naming its JSON location. Template files are not read.
func Decode(data []byte) (*Manifest, error) {
	return decodeWith(data, nil)
}

func decodeWith(data []byte, load func(*Manifest) Problems) (*Manifest, error) {
	m, err := decode(data)
	if err != nil {
		return nil, err
	}
	m.applyDefaults()
	var p Problems
	if load != nil {
		p = load(m)
	}
	if err := m.Validate(); err != nil {
		var more Problems
		if errors.As(err, &more) {
			p = append(p, more...)
		} else {
			return nil, err
		}
	}
	if len(p) > 0 {
		return nil, p
	}
	return m, nil
}

// readTemplateFiles reads the text of each template given by file into its content.
func readTemplateFiles(m *Manifest) Problems {
	var p Problems
	for i := range m.Templates {
		t := &m.Templates[i]
		if t.File == "" || !filepath.IsAbs(t.File) {
			continue // Validate reports a relative file
		}
		if t.Content != "" {
			p.add(place{"templates", i, t.Name}.String()+".file", "is set, and so is content: set one of them")
			continue
		}
		data, err := os.ReadFile(t.File)
		if err != nil {
			p.add(place{"templates", i, t.Name}.String()+".file", "%v", err)
			continue
		}
		t.Content = string(data)
	}
	return p
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
