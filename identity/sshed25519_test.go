package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	mathrand "math/rand/v2"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"
)

// The oracle throughout is agessh, the implementation the prepared identity replaces.

type outcome int

const (
	unwrapped outcome = iota
	incorrect
	failed
)

func (o outcome) String() string {
	return [...]string{"file key", "ErrIncorrectIdentity", "other error"}[o]
}

func classify(err error) outcome {
	switch {
	case err == nil:
		return unwrapped
	case errors.Is(err, age.ErrIncorrectIdentity):
		return incorrect
	}
	return failed
}

// testKey is an ed25519 host key with its prepared identities and, as oracles, the identities
// of agessh and age they replace.
type testKey struct {
	key       ed25519.PrivateKey
	pub       ssh.PublicKey
	prepared  *sshEd25519Identity
	oracle    *agessh.Ed25519Identity
	recipient *agessh.Ed25519Recipient

	// The X25519 identity ssh-to-age derives.
	x25519          *x25519Identity
	x25519Oracle    *age.X25519Identity
	x25519Recipient *age.X25519Recipient
}

func newTestKey(t testing.TB, seed []byte) *testKey {
	t.Helper()
	if seed == nil {
		seed = make([]byte, ed25519.SeedSize)
		rand.Read(seed)
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	prepared, err := newSSHEd25519Identity(key)
	if err != nil {
		t.Fatal(err)
	}
	oracle, err := agessh.NewEd25519Identity(key)
	if err != nil {
		t.Fatal(err)
	}
	recipient, err := agessh.NewEd25519Recipient(pub)
	if err != nil {
		t.Fatal(err)
	}
	x25519Oracle, err := X25519FromEd25519(key)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha512.Sum512(seed)
	x25519, err := newX25519Identity(digest[:32], x25519Oracle)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{key, pub, prepared, oracle, recipient, x25519, x25519Oracle, x25519Oracle.Recipient()}
}

// sameUnwrap checks the prepared ssh-ed25519 identity against agessh's.
func (k *testKey) sameUnwrap(t *testing.T, what string, stanzas []*age.Stanza) outcome {
	t.Helper()
	return sameUnwrap(t, what, k.prepared, k.oracle, stanzas)
}

// sameUnwrap checks both identities give the same file key, or the same class of error. File
// keys are never printed.
func sameUnwrap(t *testing.T, what string, prepared, oracle age.Identity, stanzas []*age.Stanza) outcome {
	t.Helper()
	want, wantErr := oracle.Unwrap(stanzas)
	got, gotErr := prepared.Unwrap(stanzas)
	if classify(gotErr) != classify(wantErr) {
		t.Fatalf("%s: got %v (%v), agessh gives %v (%v)", what, classify(gotErr), gotErr, classify(wantErr), wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: file keys differ (%d and %d bytes)", what, len(got), len(want))
	}
	return classify(wantErr)
}

func (k *testKey) wrap(t *testing.T, fileKey []byte) *age.Stanza {
	t.Helper()
	stanzas, err := k.recipient.Wrap(fileKey)
	if err != nil {
		t.Fatal(err)
	}
	return stanzas[0]
}

func TestSSHEd25519MatchesAgesshOnFiles(t *testing.T) {
	keys := 50
	if testing.Short() {
		keys = 10
	}
	native, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[outcome]int{}
	for range keys {
		k := newTestKey(t, nil)
		other := newTestKey(t, nil)
		files := [][]age.Recipient{
			{k.recipient},
			{k.recipient},
			{native.Recipient(), other.recipient, k.recipient},
			{k.recipient, native.Recipient(), other.recipient},
			{other.recipient, k.recipient},
			{native.Recipient(), other.recipient},
		}
		for n, recipients := range files {
			file, header := encryptPayload(t, recipients)
			want, wantErr := age.DecryptHeader(header, k.oracle)
			got, gotErr := age.DecryptHeader(header, k.prepared)
			if classify(gotErr) != classify(wantErr) || !bytes.Equal(got, want) {
				t.Fatalf("file %d: got %v (%v), agessh gives %v (%v), or the file keys differ", n, classify(gotErr), gotErr, classify(wantErr), wantErr)
			}
			counts[classify(wantErr)]++

			if wantErr == nil {
				r, err := age.Decrypt(bytes.NewReader(file), k.prepared)
				if err != nil {
					t.Fatalf("file %d: %v", n, err)
				}
				if plain, err := io.ReadAll(r); err != nil || string(plain) != "payload" {
					t.Fatalf("file %d: plaintext mismatch or %v", n, err)
				}
			}
		}
	}
	if counts[unwrapped] != 5*keys || counts[incorrect] != keys {
		t.Fatalf("outcomes %v, want %d file keys and %d mismatches", counts, 5*keys, keys)
	}
}

func TestSSHEd25519MatchesAgesshOnMalformedStanzas(t *testing.T) {
	k := newTestKey(t, nil)
	other := newTestKey(t, nil)
	fileKey := make([]byte, 16)
	rand.Read(fileKey)
	good := k.wrap(t, fileKey)
	foreign := other.wrap(t, fileKey)

	edit := func(f func(s *age.Stanza)) *age.Stanza {
		s := &age.Stanza{Type: good.Type, Args: append([]string(nil), good.Args...), Body: bytes.Clone(good.Body)}
		f(s)
		return s
	}
	withShare := func(share []byte) *age.Stanza {
		return edit(func(s *age.Stanza) { s.Args[1] = stanzaBase64.EncodeToString(share) })
	}
	cases := []struct {
		name  string
		block *age.Stanza
		want  outcome
	}{
		{"good", good, unwrapped},
		{"other key", foreign, incorrect},
		{"other type", edit(func(s *age.Stanza) { s.Type = "X25519" }), incorrect},
		{"ssh-rsa type", edit(func(s *age.Stanza) { s.Type = "ssh-rsa"; s.Args = s.Args[:1] }), incorrect},
		{"no args", edit(func(s *age.Stanza) { s.Args = nil }), failed},
		{"one arg", edit(func(s *age.Stanza) { s.Args = s.Args[:1] }), failed},
		{"three args", edit(func(s *age.Stanza) { s.Args = append(s.Args, "x") }), failed},
		{"padded share", edit(func(s *age.Stanza) { s.Args[1] += "=" }), failed},
		{"non-canonical share", edit(func(s *age.Stanza) { s.Args[1] = nonCanonicalBase64(s.Args[1]) }), failed},
		{"newline in share", edit(func(s *age.Stanza) { s.Args[1] = s.Args[1][:10] + "\n" + s.Args[1][10:] }), failed},
		{"carriage return in share", edit(func(s *age.Stanza) { s.Args[1] = s.Args[1][:10] + "\r" + s.Args[1][10:] }), failed},
		{"bad character", edit(func(s *age.Stanza) { s.Args[1] = "*" + s.Args[1][1:] }), failed},
		{"empty share", edit(func(s *age.Stanza) { s.Args[1] = "" }), failed},
		{"short share", withShare(make([]byte, 31)), failed},
		{"long share", withShare(make([]byte, 33)), failed},
		{"malformed share, other key", edit(func(s *age.Stanza) { s.Args[0] = foreign.Args[0]; s.Args[1] += "=" }), failed},
		{"wrong fingerprint", edit(func(s *age.Stanza) { s.Args[0] = foreign.Args[0] }), incorrect},
		{"empty fingerprint", edit(func(s *age.Stanza) { s.Args[0] = "" }), incorrect},
		{"zero share", withShare(make([]byte, 32)), failed},
		{"order-8 share", withShare(lePoint(t, order8a)), failed},
		// 2 is the u-coordinate of a point on the twist: 2³ + 486662·2² + 2 is not a square.
		{"twist share", withShare(lePoint(t, big.NewInt(2))), incorrect},
		{"other share", edit(func(s *age.Stanza) { s.Args[1] = foreign.Args[1] }), incorrect},
		{"empty body", edit(func(s *age.Stanza) { s.Body = nil }), incorrect},
		{"short body", edit(func(s *age.Stanza) { s.Body = s.Body[:15] }), incorrect},
		{"truncated body", edit(func(s *age.Stanza) { s.Body = s.Body[:len(s.Body)-1] }), incorrect},
		{"extended body", edit(func(s *age.Stanza) { s.Body = append(s.Body, 0) }), incorrect},
		// agessh does not bound the wrapped key's length, so neither may the prepared identity.
		{"empty file key", k.wrap(t, nil), unwrapped},
		{"32-byte file key", k.wrap(t, make([]byte, 32)), unwrapped},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := k.sameUnwrap(t, c.name, []*age.Stanza{c.block}); got != c.want {
				t.Fatalf("both give %v, want %v", got, c.want)
			}
		})
	}

	for i := range len(good.Body) * 8 {
		tampered := edit(func(s *age.Stanza) { s.Body[i/8] ^= 1 << (i % 8) })
		if got := k.sameUnwrap(t, "tampered body", []*age.Stanza{tampered}); got != incorrect {
			t.Fatalf("flipping body bit %d gives %v", i, got)
		}
	}

	malformed := edit(func(s *age.Stanza) { s.Args = s.Args[:1] })
	mismatched := edit(func(s *age.Stanza) { s.Body[0] ^= 1 })
	native := &age.Stanza{Type: "X25519", Args: []string{good.Args[1]}, Body: good.Body}
	sequences := []struct {
		name    string
		stanzas []*age.Stanza
		want    outcome
	}{
		{"none", nil, incorrect},
		{"others first", []*age.Stanza{native, foreign, mismatched, good}, unwrapped},
		{"good first", []*age.Stanza{good, malformed}, unwrapped},
		{"malformed first", []*age.Stanza{malformed, good}, failed},
		{"malformed after mismatches", []*age.Stanza{foreign, mismatched, malformed, good}, failed},
		{"only mismatches", []*age.Stanza{native, foreign, mismatched}, incorrect},
	}
	for _, c := range sequences {
		t.Run("stanzas/"+c.name, func(t *testing.T) {
			if got := k.sameUnwrap(t, c.name, c.stanzas); got != c.want {
				t.Fatalf("both give %v, want %v", got, c.want)
			}
		})
	}
}

// nonCanonicalBase64 changes the last character's unused low bits, which a strict decoder refuses.
func nonCanonicalBase64(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last^1])
}

func TestEd25519IdentitiesUsesPreparedIdentity(t *testing.T) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	ids, kinds, err := parse(pem.EncodeToMemory(block), unattendedUI())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || kinds[0] != KindSSHEd25519 || kinds[1] != KindSSHToAge {
		t.Fatalf("kinds %v", kinds)
	}
	wrapper, ok := ids[0].(sshIdentity)
	if !ok {
		t.Fatalf("identity is %T", ids[0])
	}
	if _, ok := wrapper.Identity.(*sshEd25519Identity); !ok {
		t.Fatalf("ssh-ed25519 identity is %T", wrapper.Identity)
	}
	if !strings.HasPrefix(wrapper.public, "ssh-ed25519 ") {
		t.Fatalf("public key %q", wrapper.public)
	}
	if _, ok := ids[1].(*x25519Identity); !ok {
		t.Fatalf("ssh-to-age identity is %T", ids[1])
	}
}

// Points of small order of Curve25519 and their other encodings.
var (
	fieldP  = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	order8a = bigInt("325606250916557431795983626356110631294008115727848805560023387167927233504")
	order8b = bigInt("39382357235489614581723060781553021112529911719440698176882885853963445705823")
)

func bigInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return n
}

// lePoint encodes n, below 2^256, as 32 little-endian bytes.
func lePoint(t testing.TB, n *big.Int) []byte {
	if n.Sign() < 0 || n.BitLen() > 256 {
		t.Fatalf("%v does not fit 32 bytes", n)
	}
	be := n.FillBytes(make([]byte, 32))
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		be[i], be[j] = be[j], be[i]
	}
	return be
}

func specialShares(t testing.TB) [][]byte {
	one := big.NewInt(1)
	values := []*big.Int{
		big.NewInt(0), one, new(big.Int).Sub(fieldP, one), fieldP, new(big.Int).Add(fieldP, one),
		new(big.Int).Sub(new(big.Int).Lsh(one, 255), one),
		order8a, order8b, new(big.Int).Add(order8a, fieldP), new(big.Int).Add(order8b, fieldP),
		big.NewInt(9), new(big.Int).Add(fieldP, big.NewInt(9)),
	}
	for i := range 19 {
		values = append(values, big.NewInt(int64(i)), new(big.Int).Add(fieldP, big.NewInt(int64(i))))
	}
	var shares [][]byte
	for _, v := range values {
		u := lePoint(t, v)
		high := bytes.Clone(u)
		high[31] |= 0x80
		shares = append(shares, u, high)
	}
	return shares
}

// TestSSHEd25519MatchesAgesshOnShares puts unusual and random shares in a stanza with the key's
// fingerprint and checks that both identities refuse it the same way: low-order points as
// errors, everything else (on the curve or on its twist) as a stanza for another key.
func TestSSHEd25519MatchesAgesshOnShares(t *testing.T) {
	random := 500
	if testing.Short() {
		random = 100
	}
	prng := mathrand.NewChaCha8([32]byte{'s', 'e', 'c', 'r', 'e', 't', 'd'})
	seed := make([]byte, 32)
	prng.Read(seed)
	k := newTestKey(t, seed)
	good := k.wrap(t, make([]byte, 16))
	shares := specialShares(t)
	for range random {
		u := make([]byte, 32)
		prng.Read(u)
		shares = append(shares, u)
	}
	counts := map[outcome]int{}
	for _, share := range shares {
		stanza := &age.Stanza{Type: good.Type, Args: []string{good.Args[0], stanzaBase64.EncodeToString(share)}, Body: good.Body}
		counts[k.sameUnwrap(t, "share", []*age.Stanza{stanza})]++
	}
	if counts[failed] == 0 || counts[incorrect] == 0 {
		t.Fatalf("outcomes %v: low-order and ordinary shares not both exercised", counts)
	}
}

// FuzzUnwrap holds an ssh-ed25519 stanza of arbitrary fingerprint, share and body to agessh,
// and an X25519 stanza of the same share and body to age.
func FuzzUnwrap(f *testing.F) {
	k := newTestKey(f, bytes.Repeat([]byte{7}, 32))
	stanzas, err := k.recipient.Wrap(make([]byte, 16))
	if err != nil {
		f.Fatal(err)
	}
	good := stanzas[0]
	f.Add(good.Args[0], good.Args[1], good.Body)
	f.Add(good.Args[0], stanzaBase64.EncodeToString(lePoint(f, order8a)), good.Body)
	f.Add("", "", []byte{})
	x25519Stanzas, err := k.x25519Recipient.Wrap(make([]byte, 16))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("", x25519Stanzas[0].Args[0], x25519Stanzas[0].Body)
	f.Fuzz(func(t *testing.T, fingerprint, share string, body []byte) {
		k.sameUnwrap(t, "fuzzed ssh-ed25519 stanza", []*age.Stanza{{Type: "ssh-ed25519", Args: []string{fingerprint, share}, Body: body}})
		sameUnwrap(t, "fuzzed X25519 stanza", k.x25519, k.x25519Oracle, []*age.Stanza{{Type: "X25519", Args: []string{share}, Body: body}})
	})
}

func benchmarkStanza(b *testing.B) (*testKey, []*age.Stanza) {
	k := newTestKey(b, bytes.Repeat([]byte{7}, 32))
	stanzas, err := k.recipient.Wrap(make([]byte, 16))
	if err != nil {
		b.Fatal(err)
	}
	return k, stanzas
}

func BenchmarkUnwrapSSHEd25519(b *testing.B) {
	k, stanzas := benchmarkStanza(b)
	for b.Loop() {
		if _, err := k.prepared.Unwrap(stanzas); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrapSSHEd25519Agessh(b *testing.B) {
	k, stanzas := benchmarkStanza(b)
	for b.Loop() {
		if _, err := k.oracle.Unwrap(stanzas); err != nil {
			b.Fatal(err)
		}
	}
}

// encryptPayload encrypts a short payload to recipients and returns the file and its header.
func encryptPayload(t *testing.T, recipients []age.Recipient) (file, header []byte) {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipients...)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "payload")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	header, err = age.ExtractHeader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), header
}
