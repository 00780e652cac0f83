package identity

// Unwrapping ssh-ed25519 stanzas with one Montgomery ladder instead of four.
//
// Every agenix file is encrypted to the host's ssh-ed25519 key, so unwrapping its stanza is the
// cost of activation. agessh computes the shared secret as X25519(t, X25519(s, u)), where u is
// the stanza's ephemeral share, s the X25519 scalar derived from the ed25519 seed and t a tweak
// derived from the public key. Each x/crypto X25519 call builds a crypto/ecdh private key, which
// also derives its public key: two ladders per call, four per stanza, although only two depend
// on u and none of it needs redoing per stanza except the ladder on u itself.
//
// The algebra. X25519 clamps its scalar, so clamp(s) = 8a and clamp(t) = 8b with a, b < 2^252,
// below the prime l of the Curve25519 subgroup. The curve's group has order 8l, so for a point P
// on the curve [8x]P depends only on x mod l, and
//
//	X25519(t, X25519(s, P)) = u([8b][8a]P) = u([8·((8ab) mod l)]P).
//
// The combined scalar k = 8·((8ab) mod l) is computed once per key. It is a multiple of 8, so it
// still clears the cofactor, and it may exceed 2^255, so the ladder runs over all 256 bits and
// does not clamp. A result of zero appears exactly when P has order dividing 8, which is exactly
// when agessh's first X25519 fails, so it is the same error. The second X25519 can never fail
// after a successful first: its input lies in the order-l subgroup and b is not a multiple of l.
//
// The twist. Any 32-byte u is accepted by X25519, and about half of them are not on the curve
// but on its quadratic twist, whose order is 4l' for another prime l'; there the folding above
// is wrong. Honest encryptors never send such u, but a stanza must unwrap the same way as with
// agessh whatever it holds, so a u off the curve goes through the two ladders agessh uses, with
// crypto/ecdh keys prepared once. Whether u is on the curve depends only on the public u, so
// branching on it leaks nothing about the key.

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
	"golang.org/x/crypto/chacha20poly1305"
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

	// k is 8·((8ab) mod l), little-endian, used as is by the ladder.
	k [32]byte

	// s and t serve shares on the twist, where k does not apply.
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

	a, err := clampedOverEight(digest[:32])
	if err != nil {
		return nil, err
	}
	b, err := clampedOverEight(tweak)
	if err != nil {
		return nil, err
	}
	eight, err := edwards25519.NewScalar().SetCanonicalBytes(append([]byte{8}, make([]byte, 31)...))
	if err != nil {
		return nil, err
	}
	c := edwards25519.NewScalar().Multiply(a, b)
	c.Multiply(c, eight)
	cb := c.Bytes()
	defer clear(cb)

	id := &sshEd25519Identity{
		fingerprint:  base64.RawStdEncoding.EncodeToString(sum[:4]),
		ourPublicKey: s.PublicKey().Bytes(),
		s:            s,
		t:            t,
	}
	// c < l < 2^253, so 8c fits in 256 bits.
	for i := 31; i > 0; i-- {
		id.k[i] = cb[i]<<3 | cb[i-1]>>5
	}
	id.k[0] = cb[0] << 3
	return id, nil
}

// clampedOverEight returns clamp(x)/8, which is below 2^252 and so a canonical scalar.
func clampedOverEight(x []byte) (*edwards25519.Scalar, error) {
	var v [32]byte
	defer clear(v[:])
	copy(v[:], x)
	v[0] &= 248
	v[31] &= 127
	v[31] |= 64
	for i := 0; i < 31; i++ {
		v[i] = v[i]>>3 | v[i+1]<<5
	}
	v[31] >>= 3
	return edwards25519.NewScalar().SetCanonicalBytes(v[:])
}

// Unwrap follows agessh's multiUnwrap: stanzas for other identities are skipped, the first other
// error stops the search.
func (i *sshEd25519Identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		fileKey, err := i.unwrap(s)
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

// unwrap checks the stanza in agessh's order, so a malformed stanza for another key is still an
// error and not a skip.
func (i *sshEd25519Identity) unwrap(block *age.Stanza) ([]byte, error) {
	if block.Type != "ssh-ed25519" {
		return nil, age.ErrIncorrectIdentity
	}
	if len(block.Args) != 2 {
		return nil, errors.New("invalid ssh-ed25519 recipient block")
	}
	// Newlines would be skipped by the decoder; age refuses them to keep one encoding.
	if strings.ContainsAny(block.Args[1], "\n\r") {
		return nil, errors.New("failed to parse ssh-ed25519 recipient: unexpected newline character")
	}
	share, err := stanzaBase64.DecodeString(block.Args[1])
	if err != nil {
		return nil, fmt.Errorf("failed to parse ssh-ed25519 recipient: %v", err)
	}
	if len(share) != 32 {
		return nil, errors.New("invalid ssh-ed25519 recipient block")
	}
	if block.Args[0] != i.fingerprint {
		return nil, age.ErrIncorrectIdentity
	}

	shared, _, err := i.sharedSecret(share)
	if err != nil {
		return nil, err
	}
	defer clear(shared)

	salt := make([]byte, 0, 64)
	salt = append(salt, share...)
	salt = append(salt, i.ourPublicKey...)
	wrappingKey, err := hkdf.Key(sha256.New, shared, salt, sshEd25519Label, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(wrappingKey)
	aead, err := chacha20poly1305.New(wrappingKey)
	if err != nil {
		return nil, err
	}
	// agessh does not bound the body length, so neither does this: any length that
	// authenticates gives the same key as there.
	fileKey, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), block.Body, nil)
	if err != nil {
		// The fingerprint is a 32-bit hint and may belong to another key.
		return nil, age.ErrIncorrectIdentity
	}
	return fileKey, nil
}

// sharedSecret returns what agessh computes as X25519(t, X25519(s, share)), and whether share
// was on the twist.
func (i *sshEd25519Identity) sharedSecret(share []byte) (shared []byte, twist bool, err error) {
	var u field.Element
	if _, err := u.SetBytes(share); err != nil {
		return nil, false, err
	}
	if !onCurve(&u) {
		shared, err := i.twistSharedSecret(share)
		return shared, true, err
	}
	r := ladder(&i.k, &u)
	if r.Equal(new(field.Element)) == 1 {
		return nil, false, errors.New("invalid X25519 recipient: low order point")
	}
	return r.Bytes(), false, nil
}

// twistSharedSecret is agessh's computation, down to ignoring an error from the second X25519
// (which would leave the HKDF secret empty); as argued above, that error cannot happen.
func (i *sshEd25519Identity) twistSharedSecret(share []byte) ([]byte, error) {
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

// onCurve reports whether u³ + 486662u² + u is a square (zero included), that is whether u is
// the u-coordinate of a point of Curve25519 rather than of its twist.
func onCurve(u *field.Element) bool {
	var a, rhs field.Element
	a.Mult32(new(field.Element).One(), 486662)
	rhs.Add(u, &a)
	rhs.Multiply(&rhs, u)
	rhs.Add(&rhs, new(field.Element).One())
	rhs.Multiply(&rhs, u)
	_, wasSquare := new(field.Element).SqrtRatio(&rhs, new(field.Element).One())
	return wasSquare == 1
}

// ladder returns u([k]P) for the point P of u-coordinate u, zero for the point at infinity. It
// is the ladder of RFC 7748 section 5, in constant time in k, over all 256 bits and unclamped.
func ladder(k *[32]byte, u *field.Element) *field.Element {
	var x2, z2, x3, z3 field.Element
	var a, aa, b, bb, e, c, d, da, cb field.Element
	x2.One()
	x3.Set(u)
	z3.One()
	swap := 0
	for pos := 255; pos >= 0; pos-- {
		bit := int(k[pos/8]>>(pos&7)) & 1
		swap ^= bit
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = bit

		a.Add(&x2, &z2)
		aa.Square(&a)
		b.Subtract(&x2, &z2)
		bb.Square(&b)
		e.Subtract(&aa, &bb)
		c.Add(&x3, &z3)
		d.Subtract(&x3, &z3)
		da.Multiply(&d, &a)
		cb.Multiply(&c, &b)
		x3.Add(&da, &cb)
		x3.Square(&x3)
		z3.Subtract(&da, &cb)
		z3.Square(&z3)
		z3.Multiply(&z3, u)
		x2.Multiply(&aa, &bb)
		z2.Mult32(&e, 121665)
		z2.Add(&aa, &z2)
		z2.Multiply(&e, &z2)
	}
	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)
	z2.Invert(&z2)
	return x2.Multiply(&x2, &z2)
}
