package sops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/getsops/sops/v3/shamir"
)

// PGPIdentity opens the data key sops encrypted to an OpenPGP key: an RSA host key used as one,
// or a GnuPG home (see package identity).
type PGPIdentity interface {
	// Name says which key it is, for errors.
	Name() string
	// DecryptPGP decrypts an ASCII-armored OpenPGP message.
	DecryptPGP(message string) ([]byte, error)
}

// keys are what a data key may be unwrapped with.
type keys struct {
	age []age.Identity
	pgp []PGPIdentity
}

// unwrapDataKey recovers the data key: from the first recipient an identity opens in the only
// key group, or, when several groups each hold a Shamir share of it, from the shares of at
// least shamirThreshold groups, combined as sops combines them.
func unwrapDataKey(md *metadata, k keys) ([]byte, error) {
	if !md.hasUsable() {
		if len(md.keyTypes) == 0 {
			return nil, errors.New("the file's sops metadata lists no master keys")
		}
		return nil, fmt.Errorf("the file's data key is encrypted only to %s keys; secretd decrypts age and PGP recipients", strings.Join(md.keyTypes, ", "))
	}
	if len(k.age) == 0 && len(k.pgp) == 0 {
		return nil, errors.New("no identities to decrypt the sops data key with")
	}
	if len(md.groups) == 1 {
		key, err := unwrapGroup(md.groups[0], k, dataKeySize)
		if err != nil {
			return nil, errors.New(err.Error() + md.otherKeyTypes())
		}
		return key, nil
	}
	return combineShares(md, k)
}

// combineShares unwraps one share per key group and combines them. A share is the data key's
// length plus one byte, the x coordinate shamir.Split appends.
func combineShares(md *metadata, k keys) ([]byte, error) {
	threshold := md.shamirThreshold
	if threshold == 0 {
		// sops splits with as many shares needed as there are groups when none is set.
		threshold = len(md.groups)
	}
	var shares [][]byte
	defer func() {
		for _, s := range shares {
			clear(s)
		}
	}()
	var failures []string
	for i, g := range md.groups {
		share, err := unwrapGroup(g, k, dataKeySize+1)
		if err != nil {
			failures = append(failures, fmt.Sprintf("key group %d: %v", i, err))
			continue
		}
		shares = append(shares, share)
	}
	if len(shares) < threshold {
		return nil, fmt.Errorf("the data key is split across %d key groups (Shamir) and %d of them are needed, but this host's identities open %d: %s%s",
			len(md.groups), threshold, len(shares), strings.Join(failures, "; "), md.otherKeyTypes())
	}
	key, err := shamir.Combine(shares)
	if err != nil {
		return nil, fmt.Errorf("combining the data key's Shamir shares: %w", err)
	}
	if len(key) != dataKeySize {
		clear(key)
		return nil, fmt.Errorf("the data key combined from the Shamir shares is not %d bytes", dataKeySize)
	}
	return key, nil
}

// unwrapGroup decrypts the first entry of group that a key opens, age entries first; the
// plaintext must be size bytes.
func unwrapGroup(group keyGroup, k keys, size int) ([]byte, error) {
	var recipients, failures []string
	check := func(what string, key []byte, err error) []byte {
		switch {
		case err != nil:
			failures = append(failures, fmt.Sprintf("%s: %v", what, err))
		case len(key) != size:
			clear(key)
			failures = append(failures, fmt.Sprintf("%s: data key is not %d bytes", what, size))
		default:
			return key
		}
		return nil
	}
	for i, e := range group.age {
		recipients = append(recipients, e.recipient)
		if len(k.age) == 0 {
			continue
		}
		key, err := decryptDataKey(e.enc, k.age, size)
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			continue
		}
		if key = check(fmt.Sprintf("age entry %d (%s)", i, e.recipient), key, err); key != nil {
			return key, nil
		}
	}
	for i, e := range group.pgp {
		recipients = append(recipients, "PGP "+e.fp)
		for _, id := range k.pgp {
			key, err := id.DecryptPGP(e.enc)
			if err != nil {
				continue // not encrypted to this key
			}
			if key = check(fmt.Sprintf("pgp entry %d (%s) with %s", i, e.fp, id.Name()), key, nil); key != nil {
				return key, nil
			}
		}
	}
	msg := fmt.Sprintf("no identity given (%d age, %d PGP tried) matches the file's recipients: %s", len(k.age), len(k.pgp), strings.Join(recipients, ", "))
	if len(recipients) == 0 {
		msg = "it has no age or PGP recipient"
	}
	if len(failures) > 0 {
		msg += "; errors: " + strings.Join(failures, "; ")
	}
	return nil, errors.New(msg)
}

// decryptDataKey decrypts one armored age file holding a data key (or a share of it, size
// bytes). The file is decoded whole and decrypted with age.DecryptReaderAt, which allocates half
// of what the streaming age.Decrypt does, and a host may read a thousand sops files.
func decryptDataKey(armored string, ids []age.Identity, size int) ([]byte, error) {
	encrypted, err := io.ReadAll(armor.NewReader(strings.NewReader(armored)))
	if err != nil {
		return nil, err
	}
	r, n, err := age.DecryptReaderAt(bytes.NewReader(encrypted), int64(len(encrypted)), ids...)
	if err != nil {
		return nil, err
	}
	if n != int64(size) {
		return nil, fmt.Errorf("data key is not %d bytes", size)
	}
	key := make([]byte, n)
	if got, err := r.ReadAt(key, 0); got != len(key) || err != nil && err != io.EOF {
		clear(key)
		return nil, fmt.Errorf("reading the data key: %w", err)
	}
	return key, nil
}

// hasUsable reports whether any key group has an age or PGP recipient.
func (md *metadata) hasUsable() bool {
	for _, g := range md.groups {
		if len(g.age)+len(g.pgp) > 0 {
			return true
		}
	}
	return false
}

// otherKeyTypes names the file's key types secretd does not use, for an error message, or is
// empty.
func (md *metadata) otherKeyTypes() string {
	var others []string
	for _, t := range md.keyTypes {
		if t != "age" && t != "pgp" {
			others = append(others, t)
		}
	}
	if len(others) == 0 {
		return ""
	}
	return fmt.Sprintf(" (it also lists %s keys, which secretd does not use)", strings.Join(others, ", "))
}
