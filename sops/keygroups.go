package sops

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/getsops/sops/v3/shamir"
)

// unwrapDataKey recovers the data key: from the first age recipient an identity matches in the
// only key group, or, when several groups each hold a Shamir share of it, from the shares of
// at least shamirThreshold groups, combined as sops combines them.
func unwrapDataKey(md *metadata, ids []age.Identity) ([]byte, error) {
	if !md.hasAge() {
		if len(md.keyTypes) == 0 {
			return nil, errors.New("the file's sops metadata lists no master keys")
		}
		return nil, fmt.Errorf("the file's data key is encrypted only to %s keys; secretd only decrypts age recipients", strings.Join(md.keyTypes, ", "))
	}
	if len(ids) == 0 {
		return nil, errors.New("no identities to decrypt the sops data key with")
	}
	if len(md.groups) == 1 {
		key, err := unwrapGroup(md.groups[0], ids, dataKeySize)
		if err != nil {
			return nil, errors.New(err.Error() + md.otherKeyTypes())
		}
		return key, nil
	}
	return combineShares(md, ids)
}

// combineShares unwraps one share per key group and combines them. A share is the data key's
// length plus one byte, the x coordinate shamir.Split appends.
func combineShares(md *metadata, ids []age.Identity) ([]byte, error) {
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
		share, err := unwrapGroup(g, ids, dataKeySize+1)
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

// unwrapGroup decrypts the first age entry of group that an identity matches; the plaintext
// must be size bytes.
func unwrapGroup(group []ageKey, ids []age.Identity, size int) ([]byte, error) {
	var recipients, failures []string
	for i, k := range group {
		recipients = append(recipients, k.recipient)
		r, err := age.Decrypt(armor.NewReader(strings.NewReader(k.enc)), ids...)
		if err != nil {
			var noMatch *age.NoIdentityMatchError
			if !errors.As(err, &noMatch) {
				failures = append(failures, fmt.Sprintf("age entry %d (%s): %v", i, k.recipient, err))
			}
			continue
		}
		key, err := io.ReadAll(io.LimitReader(r, int64(size)+1))
		if err != nil {
			failures = append(failures, fmt.Sprintf("age entry %d (%s): %v", i, k.recipient, err))
			continue
		}
		if len(key) != size {
			clear(key)
			failures = append(failures, fmt.Sprintf("age entry %d (%s): data key is not %d bytes", i, k.recipient, size))
			continue
		}
		return key, nil
	}
	msg := fmt.Sprintf("no identity given (%d tried) matches the file's age recipients: %s", len(ids), strings.Join(recipients, ", "))
	if len(recipients) == 0 {
		msg = "it has no age recipient"
	}
	if len(failures) > 0 {
		msg += "; errors: " + strings.Join(failures, "; ")
	}
	return nil, errors.New(msg)
}

// hasAge reports whether any key group has an age recipient.
func (md *metadata) hasAge() bool {
	for _, g := range md.groups {
		if len(g) > 0 {
			return true
		}
	}
	return false
}

// otherKeyTypes names the file's non-age key types for an error message, or is empty.
func (md *metadata) otherKeyTypes() string {
	var others []string
	for _, t := range md.keyTypes {
		if t != "age" {
			others = append(others, t)
		}
	}
	if len(others) == 0 {
		return ""
	}
	return fmt.Sprintf(" (it also lists %s keys, which secretd does not use)", strings.Join(others, ", "))
}
