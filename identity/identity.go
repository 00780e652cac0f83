// Package identity loads the host's decryption identities — OpenSSH ed25519 and RSA host keys,
// native age identity files and age plugin identities — once per run, and derives from an ed25519
// host key the X25519 identity that ssh-to-age derives, so files encrypted to the host's age1…
// recipient decrypt too.
package identity

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"strings"
	"sync"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"filippo.io/age/plugin"
	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"
)

// Set is the usable identities loaded from a list of paths. Its identities record which one
// unwrapped a file key, so an operator can see which key worked.
type Set struct {
	identities []age.Identity
	loaded     []Loaded
	// pgp are the RSA keys again, as OpenPGP keys.
	pgp []*PGPKey

	// public accumulates the public halves of every identity, for Fingerprint.
	public hash.Hash

	mu   sync.Mutex
	used map[string]bool
}

// Loaded describes one identity that was loaded: the file it came from and its kind.
type Loaded struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
}

// Kinds of identity.
const (
	KindSSHEd25519   = "ssh-ed25519"
	KindSSHRSA       = "ssh-rsa"
	KindSSHToAge     = "x25519 (derived from ssh-ed25519)"
	KindAgeX25519    = "age x25519"
	KindAgeHybrid    = "age hybrid post-quantum"
	KindAgePlugin    = "age plugin"
	KindAgeIdentites = "age"
)

// Load reads every path. A path that does not exist is skipped with a warning as long as another
// path gives a usable identity; an unreadable, malformed or passphrase-protected key is an error.
func Load(paths []string, log *zap.Logger) (*Set, error) {
	set := &Set{used: map[string]bool{}, public: sha256.New()}
	var missing []string
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, path)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("identity file is readable by group or others", zap.String("identity", path), zap.String("mode", fmt.Sprintf("%04o", fi.Mode().Perm())))
		}
		ids, kinds, err := parse(data, unattendedUI())
		clear(data)
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", path, err)
		}
		for i, id := range ids {
			if s, ok := id.(sshIdentity); ok && s.rsa != nil {
				set.pgp = append(set.pgp, newPGPKey(path, s.rsa))
			}
			set.add(id, Loaded{Path: path, Kind: kinds[i]})
			fmt.Fprintf(set.public, "%s\x00%s\x00", kinds[i], publicOf(id))
		}
	}
	if len(set.identities) == 0 {
		if len(missing) > 0 {
			return nil, fmt.Errorf("no usable identity: %s not found", strings.Join(missing, ", "))
		}
		return nil, errors.New("no usable identity: no identity paths given")
	}
	for _, path := range missing {
		log.Warn("identity file not found, skipped", zap.String("identity", path))
	}
	return set, nil
}

// Fingerprint identifies the loaded identities by their public halves only: a different key
// set gives a different fingerprint.
func (s *Set) Fingerprint() string {
	return hex.EncodeToString(s.public.Sum(nil))
}

// publicOf describes the public half of an identity.
func publicOf(id age.Identity) string {
	switch k := id.(type) {
	case *age.X25519Identity:
		return k.Recipient().String()
	case *x25519Identity:
		return k.recipient
	case *age.HybridIdentity:
		return k.Recipient().String()
	case *plugin.Identity:
		return k.Recipient().String()
	case sshIdentity:
		return k.public
	}
	return fmt.Sprintf("%T", id)
}

// Identities returns the identities to hand to age.Decrypt.
func (s *Set) Identities() []age.Identity { return s.identities }

// PGPKeys returns the RSA keys as OpenPGP keys, for sops files encrypted to them.
func (s *Set) PGPKeys() []*PGPKey { return s.pgp }

// Loaded lists what was loaded, in order.
func (s *Set) Loaded() []Loaded { return s.loaded }

// Used lists the identities that unwrapped at least one file key so far.
func (s *Set) Used() []Loaded {
	s.mu.Lock()
	defer s.mu.Unlock()
	var used []Loaded
	for _, l := range s.loaded {
		if s.used[l.Path+"\x00"+l.Kind] {
			used = append(used, l)
		}
	}
	return used
}

func (s *Set) add(id age.Identity, l Loaded) {
	s.identities = append(s.identities, &recording{Identity: id, set: s, key: l.Path + "\x00" + l.Kind})
	s.loaded = append(s.loaded, l)
}

// sshIdentity carries an OpenSSH identity's public key, which agessh does not print, and an RSA
// key, which also serves as an OpenPGP key.
type sshIdentity struct {
	age.Identity
	public string
	rsa    *rsa.PrivateKey
}

// recording wraps an identity to note when it unwraps a file key.
type recording struct {
	age.Identity
	set *Set
	key string
}

func (r *recording) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	fileKey, err := r.Identity.Unwrap(stanzas)
	if err == nil {
		r.set.mu.Lock()
		r.set.used[r.key] = true
		r.set.mu.Unlock()
	}
	return fileKey, err
}

// parse reads an identity file; ui answers the plugins it names.
func parse(data []byte, ui *plugin.ClientUI) ([]age.Identity, []string, error) {
	trimmed := bytes.TrimSpace(data)
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		return parseSSH(trimmed)
	}
	return parseAge(trimmed, ui)
}

// PassphraseProtected reports whether path holds an OpenSSH private key that needs a
// passphrase, which nobody can type for a unit.
func PassphraseProtected(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	defer clear(data)
	_, err = ssh.ParseRawPrivateKey(bytes.TrimSpace(data))
	var passphrase *ssh.PassphraseMissingError
	return errors.As(err, &passphrase)
}

func parseSSH(pemBytes []byte) ([]age.Identity, []string, error) {
	key, err := ssh.ParseRawPrivateKey(pemBytes)
	var passphrase *ssh.PassphraseMissingError
	if errors.As(err, &passphrase) {
		return nil, nil, errors.New("the key is passphrase-protected; a host key used at boot must not be")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("not a usable OpenSSH private key: %w", err)
	}
	switch k := key.(type) {
	case *ed25519.PrivateKey:
		return ed25519Identities(*k)
	case ed25519.PrivateKey:
		return ed25519Identities(k)
	case *rsa.PrivateKey:
		id, err := agessh.NewRSAIdentity(k)
		if err != nil {
			return nil, nil, err
		}
		pub, err := ssh.NewPublicKey(&k.PublicKey)
		if err != nil {
			return nil, nil, err
		}
		return []age.Identity{sshIdentity{id, string(ssh.MarshalAuthorizedKey(pub)), k}}, []string{KindSSHRSA}, nil
	default:
		return nil, nil, fmt.Errorf("%T keys cannot decrypt age files; use an ed25519 or RSA key", key)
	}
}

func ed25519Identities(key ed25519.PrivateKey) ([]age.Identity, []string, error) {
	sshID, err := newSSHEd25519Identity(key)
	if err != nil {
		return nil, nil, err
	}
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return nil, nil, err
	}
	x25519, err := X25519FromEd25519(key)
	if err != nil {
		return nil, nil, err
	}
	digest := sha512.Sum512(key.Seed())
	defer clear(digest[:])
	prepared, err := newX25519Identity(digest[:32], x25519)
	if err != nil {
		return nil, nil, err
	}
	return []age.Identity{sshIdentity{sshID, string(ssh.MarshalAuthorizedKey(pub)), nil}, prepared}, []string{KindSSHEd25519, KindSSHToAge}, nil
}

// X25519FromEd25519 derives the age X25519 identity of an ed25519 key as ssh-to-age does: the
// scalar is the first half of SHA-512 of the seed (X25519 clamps it itself).
func X25519FromEd25519(key ed25519.PrivateKey) (*age.X25519Identity, error) {
	digest := sha512.Sum512(key.Seed())
	defer clear(digest[:])
	encoded, err := bech32Encode("age-secret-key-", digest[:32])
	if err != nil {
		return nil, err
	}
	return age.ParseX25519Identity(strings.ToUpper(encoded))
}

// parseAge reads a native identity file: AGE-SECRET-KEY-1… and AGE-SECRET-KEY-PQ-1… lines and
// AGE-PLUGIN-… lines, with # comments and blank lines ignored.
func parseAge(data []byte, ui *plugin.ClientUI) ([]age.Identity, []string, error) {
	var ids []age.Identity
	var kinds []string
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; scanner.Scan(); n++ {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var (
			id   age.Identity
			kind string
			err  error
		)
		switch {
		case strings.HasPrefix(line, "AGE-SECRET-KEY-PQ-1"):
			id, err = age.ParseHybridIdentity(line)
			kind = KindAgeHybrid
		case strings.HasPrefix(line, "AGE-SECRET-KEY-1"):
			id, err = age.ParseX25519Identity(line)
			kind = KindAgeX25519
		case strings.HasPrefix(line, "AGE-PLUGIN-"):
			id, err = plugin.NewIdentity(line, ui)
			kind = KindAgePlugin
		default:
			// The line may be key material: never echo it.
			return nil, nil, fmt.Errorf("line %d is neither an OpenSSH private key nor an age identity", n)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %v", n, err)
		}
		ids = append(ids, id)
		kinds = append(kinds, kind)
	}
	if len(ids) == 0 {
		return nil, nil, errors.New("the file holds no identity")
	}
	return ids, kinds, nil
}

// unattendedUI answers plugins at boot, where nobody can type a PIN or confirm anything.
func unattendedUI() *plugin.ClientUI {
	refuse := errors.New("no interactive input at activation")
	return &plugin.ClientUI{
		DisplayMessage: func(name, message string) error { return nil },
		RequestValue:   func(name, prompt string, secret bool) (string, error) { return "", refuse },
		Confirm:        func(name, prompt, yes, no string) (bool, error) { return false, refuse },
	}
}
