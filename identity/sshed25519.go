package identity

// Unwrapping ssh-ed25519 stanzas with two X25519 operations instead of four.
//
// Every agenix file is encrypted to the host's ssh-ed25519 key, so unwrapping its stanza is the
// cost of activation. agessh computes the shared secret as X25519(t, X25519(s, u)), where u is
// the stanza's ephemeral share, s the X25519 scalar derived from the ed25519 seed and t a tweak
// derived from the public key. Each x/crypto X25519 call builds a crypto/ecdh private key, which
// also derives its public key: two scalar multiplications per call, four per stanza, although
// only the two on u depend on the stanza. Here both private keys are built once, when the host
// key is loaded, so a stanza costs the two crypto/ecdh operations on u.

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
)

const sshEd25519Label = "age-encryption.org/v1/ssh-ed25519"

// age's own base64: unpadded and strict, so a share has a single encoding.
var stanzaBase64 = base64.RawStdEncoding.Strict()

// sshEd25519Identity unwraps ssh-ed25519 stanzas exactly like agessh.Ed25519Identity. It is
// read-only after construction, so one value serves concurrent decryptions.
type sshEd25519Identity struct {
	fingerprint  string
	ourPublicKey []byte // X25519(s, 9), the second half of the HKDF salt

	// s and t are the prepared X25519 keys of the seed's scalar and of the tweak. crypto/ecdh
	// keeps its own copy of each scalar and offers no way to wipe it; every other copy of the
	// key material is cleared as soon as it is used.
	s, t *ecdh.PrivateKey
}

var _ age.Identity = (*sshEd25519Identity)(nil)

func newSSHEd25519Identity(key ed25519.PrivateKey) (*sshEd25519Identity, error) {
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	wire := pub.Marshal()
	sum := sha256.Sum256(wire)

	digest := sha512.Sum512(key.Seed())
	defer clear(digest[:])
	// agessh passes the public key as the HKDF salt, with an empty secret.
	tweak, err := hkdf.Key(sha256.New, nil, wire, sshEd25519Label, 32)
	if err != nil {
		return nil, err
	}
	defer clear(tweak)

	s, err := ecdh.X25519().NewPrivateKey(digest[:32])
	if err != nil {
		return nil, err
	}
	t, err := ecdh.X25519().NewPrivateKey(tweak)
	if err != nil {
		return nil, err
	}
	return &sshEd25519Identity{
		fingerprint:  base64.RawStdEncoding.EncodeToString(sum[:4]),
		ourPublicKey: s.PublicKey().Bytes(),
		s:            s,
		t:            t,
	}, nil
}

// Unwrap follows agessh's multiUnwrap: stanzas for other identities are skipped, the first other
// error stops the search.
func (i *sshEd25519Identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	return multiUnwrap(i.unwrap, stanzas)
}

// unwrap checks the stanza in agessh's order, so a malformed stanza for another key is still an
// error and not a skip.
func (i *sshEd25519Identity) unwrap(block *age.Stanza) ([]byte, error) {
	if block.Type != "ssh-ed25519" {
		return nil, age.ErrIncorrectIdentity
	}
	if len(block.Args) != 2 {
		return nil, errors.New("invalid ssh-ed25519 recipient block")
	}
	share, err := decodeShare("ssh-ed25519", block.Args[1])
	if err != nil {
		return nil, err
	}
	if block.Args[0] != i.fingerprint {
		return nil, age.ErrIncorrectIdentity
	}
	shared, err := i.sharedSecret(share)
	if err != nil {
		return nil, err
	}
	defer clear(shared)
	// agessh does not bound the body length, so neither does this: any length that
	// authenticates gives the same key as there. The fingerprint is a 32-bit hint, so a body
	// that does not authenticate may be for another key.
	return openFileKey(shared, share, i.ourPublicKey, sshEd25519Label, block.Body)
}

// sharedSecret is agessh's X25519(t, X25519(s, share)), down to ignoring an error from the
// second X25519, which leaves the HKDF secret empty there and so here.
func (i *sshEd25519Identity) sharedSecret(share []byte) ([]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(share)
	if err != nil {
		return nil, fmt.Errorf("invalid X25519 recipient: %v", err)
	}
	first, err := i.s.ECDH(p)
	if err != nil {
		return nil, fmt.Errorf("invalid X25519 recipient: %v", err)
	}
	defer clear(first)
	q, err := ecdh.X25519().NewPublicKey(first)
	if err != nil {
		return nil, nil
	}
	second, err := i.t.ECDH(q)
	if err != nil {
		return nil, nil
	}
	return second, nil
}
