package identity

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// Unwrapping X25519 stanzas with the private key prepared once.
//
// The X25519 identity ssh-to-age derives from the host key decrypts every sops file of a host
// (sops-nix encrypts to it) and every age file encrypted to its age1… recipient. age's
// X25519Identity builds a crypto/ecdh private key for each stanza, deriving its public key each
// time: two scalar multiplications where the key agreement needs one. This identity builds the
// key once and unwraps stanzas exactly as age does.

const x25519Label = "age-encryption.org/v1/X25519"

// fileKeySize is the size of an age file key, which X25519 stanzas wrap.
const fileKeySize = 16

// x25519Identity unwraps X25519 stanzas exactly like age.X25519Identity. It is read-only after
// construction, so one value serves concurrent decryptions. crypto/ecdh keeps its own copy of
// the scalar and offers no way to wipe it.
type x25519Identity struct {
	key          *ecdh.PrivateKey
	ourPublicKey []byte
	recipient    string
}

var _ age.Identity = (*x25519Identity)(nil)

// newX25519Identity prepares the identity of scalar; id is the same identity as age parses it,
// which gives the recipient.
func newX25519Identity(scalar []byte, id *age.X25519Identity) (*x25519Identity, error) {
	key, err := ecdh.X25519().NewPrivateKey(scalar)
	if err != nil {
		return nil, err
	}
	return &x25519Identity{key: key, ourPublicKey: key.PublicKey().Bytes(), recipient: id.Recipient().String()}, nil
}

// Unwrap follows age's multiUnwrap: stanzas for other identities are skipped, the first other
// error stops the search.
func (i *x25519Identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	return multiUnwrap(i.unwrap, stanzas)
}

func (i *x25519Identity) unwrap(block *age.Stanza) ([]byte, error) {
	if block.Type != "X25519" {
		return nil, age.ErrIncorrectIdentity
	}
	if len(block.Args) != 1 {
		return nil, errors.New("invalid X25519 recipient block")
	}
	share, err := decodeShare("X25519", block.Args[0])
	if err != nil {
		return nil, err
	}
	p, err := ecdh.X25519().NewPublicKey(share)
	if err != nil {
		return nil, fmt.Errorf("invalid X25519 recipient: %v", err)
	}
	shared, err := i.key.ECDH(p)
	if err != nil {
		return nil, fmt.Errorf("invalid X25519 recipient: %v", err)
	}
	defer clear(shared)
	if len(block.Body) != fileKeySize+chacha20poly1305.Overhead {
		return nil, errors.New("invalid X25519 recipient block: incorrect file key size")
	}
	return openFileKey(shared, share, i.ourPublicKey, x25519Label, block.Body)
}

// multiUnwrap tries unwrap on each stanza: stanzas for other identities are skipped, the first
// other error stops the search.
func multiUnwrap(unwrap func(*age.Stanza) ([]byte, error), stanzas []*age.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		fileKey, err := unwrap(s)
		if errors.Is(err, age.ErrIncorrectIdentity) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return fileKey, nil
	}
	return nil, age.ErrIncorrectIdentity
}

// decodeShare decodes a stanza's 32-byte ephemeral share as age does: unpadded strict base64,
// and no newlines, which the decoder would skip.
func decodeShare(stanzaType, arg string) ([]byte, error) {
	if strings.ContainsAny(arg, "\n\r") {
		return nil, fmt.Errorf("failed to parse %s recipient: unexpected newline character", stanzaType)
	}
	share, err := stanzaBase64.DecodeString(arg)
	if err != nil {
		return nil, fmt.Errorf("failed to parse %s recipient: %v", stanzaType, err)
	}
	if len(share) != 32 {
		return nil, fmt.Errorf("invalid %s recipient block", stanzaType)
	}
	return share, nil
}

// openFileKey derives the wrapping key from the shared secret, salted with both public shares
// as age does, and opens the wrapped file key; a body that does not authenticate is a stanza
// for another key.
func openFileKey(shared, share, ourPublicKey []byte, label string, body []byte) ([]byte, error) {
	salt := make([]byte, 0, len(share)+len(ourPublicKey))
	salt = append(salt, share...)
	salt = append(salt, ourPublicKey...)
	wrappingKey, err := hkdf.Key(sha256.New, shared, salt, label, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(wrappingKey)
	aead, err := chacha20poly1305.New(wrappingKey)
	if err != nil {
		return nil, err
	}
	fileKey, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), body, nil)
	if err != nil {
		return nil, age.ErrIncorrectIdentity
	}
	return fileKey, nil
}
