package identity

import (
	"bytes"
	"crypto/rand"
	"math/big"
	"testing"

	"filippo.io/age"
)

// The oracle is age's own X25519Identity, which the prepared identity replaces.

func TestX25519MatchesAgeOnFiles(t *testing.T) {
	for range 10 {
		k := newTestKey(t, nil)
		other := newTestKey(t, nil)
		for n, recipients := range [][]age.Recipient{
			{k.x25519Recipient},
			{other.x25519Recipient, k.recipient, k.x25519Recipient},
			{other.x25519Recipient},
		} {
			_, header := encryptPayload(t, recipients)
			want, wantErr := age.DecryptHeader(header, k.x25519Oracle)
			got, gotErr := age.DecryptHeader(header, k.x25519)
			if classify(gotErr) != classify(wantErr) || !bytes.Equal(got, want) {
				t.Fatalf("file %d: got %v (%v), age gives %v (%v), or the file keys differ", n, classify(gotErr), gotErr, classify(wantErr), wantErr)
			}
			if n < 2 && wantErr != nil {
				t.Fatalf("file %d: %v", n, wantErr)
			}
		}
	}
}

func TestX25519MatchesAgeOnMalformedStanzas(t *testing.T) {
	k := newTestKey(t, nil)
	other := newTestKey(t, nil)
	fileKey := make([]byte, 16)
	rand.Read(fileKey)
	wrap := func(k *testKey) *age.Stanza {
		stanzas, err := k.x25519Recipient.Wrap(fileKey)
		if err != nil {
			t.Fatal(err)
		}
		return stanzas[0]
	}
	good, foreign := wrap(k), wrap(other)
	edit := func(f func(s *age.Stanza)) *age.Stanza {
		s := &age.Stanza{Type: good.Type, Args: append([]string(nil), good.Args...), Body: bytes.Clone(good.Body)}
		f(s)
		return s
	}
	withShare := func(share []byte) *age.Stanza {
		return edit(func(s *age.Stanza) { s.Args[0] = stanzaBase64.EncodeToString(share) })
	}
	cases := []struct {
		name  string
		block *age.Stanza
		want  outcome
	}{
		{"good", good, unwrapped},
		{"other key", foreign, incorrect},
		{"ssh-ed25519 type", edit(func(s *age.Stanza) { s.Type = "ssh-ed25519" }), incorrect},
		{"no args", edit(func(s *age.Stanza) { s.Args = nil }), failed},
		{"two args", edit(func(s *age.Stanza) { s.Args = append(s.Args, "x") }), failed},
		{"padded share", edit(func(s *age.Stanza) { s.Args[0] += "=" }), failed},
		{"non-canonical share", edit(func(s *age.Stanza) { s.Args[0] = nonCanonicalBase64(s.Args[0]) }), failed},
		{"newline in share", edit(func(s *age.Stanza) { s.Args[0] = s.Args[0][:10] + "\n" + s.Args[0][10:] }), failed},
		{"short share", withShare(make([]byte, 31)), failed},
		{"zero share", withShare(make([]byte, 32)), failed},
		{"order-8 share", withShare(lePoint(t, order8a)), failed},
		{"twist share", withShare(lePoint(t, big.NewInt(2))), incorrect},
		{"empty body", edit(func(s *age.Stanza) { s.Body = nil }), failed},
		{"long body", edit(func(s *age.Stanza) { s.Body = append(s.Body, 0) }), failed},
		{"tampered body", edit(func(s *age.Stanza) { s.Body[3] ^= 1 }), incorrect},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := sameUnwrap(t, c.name, k.x25519, k.x25519Oracle, []*age.Stanza{c.block}); got != c.want {
				t.Fatalf("both give %v, want %v", got, c.want)
			}
		})
	}
	for _, share := range specialShares(t) {
		sameUnwrap(t, "special share", k.x25519, k.x25519Oracle, []*age.Stanza{withShare(share)})
	}
	if got := sameUnwrap(t, "several stanzas", k.x25519, k.x25519Oracle, []*age.Stanza{foreign, good}); got != unwrapped {
		t.Fatalf("several stanzas: both give %v", got)
	}
}
