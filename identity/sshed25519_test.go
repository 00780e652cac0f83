package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
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
	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
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

type testKey struct {
	key       ed25519.PrivateKey
	pub       ssh.PublicKey
	prepared  *sshEd25519Identity
	oracle    *agessh.Ed25519Identity
	recipient *agessh.Ed25519Recipient
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
	return &testKey{key, pub, prepared, oracle, recipient}
}

// sameUnwrap checks both identities give the same file key, or the same class of error. File
// keys are never printed.
func (k *testKey) sameUnwrap(t *testing.T, what string, stanzas []*age.Stanza) outcome {
	t.Helper()
	want, wantErr := k.oracle.Unwrap(stanzas)
	got, gotErr := k.prepared.Unwrap(stanzas)
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
			var buf bytes.Buffer
			w, err := age.Encrypt(&buf, recipients...)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, "payload")
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			header, err := age.ExtractHeader(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			want, wantErr := age.DecryptHeader(header, k.oracle)
			got, gotErr := age.DecryptHeader(header, k.prepared)
			if classify(gotErr) != classify(wantErr) || !bytes.Equal(got, want) {
				t.Fatalf("file %d: got %v (%v), agessh gives %v (%v), or the file keys differ", n, classify(gotErr), gotErr, classify(wantErr), wantErr)
			}
			counts[classify(wantErr)]++

			if wantErr == nil {
				r, err := age.Decrypt(bytes.NewReader(buf.Bytes()), k.prepared)
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
	twist := twistPoint(t)
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
		{"twist share", withShare(twist), incorrect},
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

// torsionShares gives points of the full group, [r]B plus each point of order dividing 8, so the
// cofactor in the combined scalar is exercised on points that are not in the prime-order subgroup.
func torsionShares(t testing.TB, n int) [][]byte {
	t.Helper()
	// An Edwards point of order 8.
	enc := []byte{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05}
	t8, err := new(edwards25519.Point).SetBytes(enc)
	if err != nil {
		t.Fatal(err)
	}
	var shares [][]byte
	for range n {
		wide := make([]byte, 64)
		rand.Read(wide)
		r, _ := edwards25519.NewScalar().SetUniformBytes(wide)
		p := new(edwards25519.Point).ScalarBaseMult(r)
		for range 8 {
			p.Add(p, t8)
			shares = append(shares, p.BytesMontgomery())
		}
	}
	return shares
}

// twistPoint returns a u-coordinate on the twist, found by trying random strings.
func twistPoint(t testing.TB) []byte {
	for range 200 {
		u := make([]byte, 32)
		rand.Read(u)
		var e field.Element
		if _, err := e.SetBytes(u); err != nil {
			t.Fatal(err)
		}
		if !onCurve(&e) {
			return u
		}
	}
	t.Fatal("no twist point in 200 random strings")
	return nil
}

// referenceSharedSecret is agessh's computation, from the key alone.
func referenceSharedSecret(t testing.TB, key ed25519.PrivateKey, share []byte) ([]byte, error) {
	t.Helper()
	s := sha512.Sum512(key.Seed())
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	tweak := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, nil, pub.Marshal(), []byte(sshEd25519Label)), tweak); err != nil {
		t.Fatal(err)
	}
	first, err := curve25519.X25519(s[:32], share)
	if err != nil {
		return nil, err
	}
	second, _ := curve25519.X25519(tweak, first)
	return second, nil
}

// compareSharedSecret checks the prepared computation against the reference on one share and
// reports whether it took the twist branch.
func compareSharedSecret(t testing.TB, k *testKey, share []byte) bool {
	t.Helper()
	want, wantErr := referenceSharedSecret(t, k.key, share)
	got, twist, gotErr := k.prepared.sharedSecret(share)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("share %x (twist %v): error %v, reference error %v", share, twist, gotErr, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("share %x (twist %v): shared secrets differ", share, twist)
	}
	return twist
}

func TestSSHEd25519SharedSecretMatchesX25519(t *testing.T) {
	random := 1500
	if testing.Short() {
		random = 200
	}
	prng := mathrand.NewChaCha8([32]byte{'s', 'e', 'c', 'r', 'e', 't', 'd'})
	var onCurve, twist, errs int
	for n := range 3 {
		seed := make([]byte, 32)
		prng.Read(seed)
		k := newTestKey(t, seed)
		other := newTestKey(t, nil)

		shares := specialShares(t)
		shares = append(shares, torsionShares(t, 20)...)
		for range 20 {
			for _, r := range []*testKey{k, other} {
				share, err := stanzaBase64.DecodeString(r.wrap(t, make([]byte, 16)).Args[1])
				if err != nil {
					t.Fatal(err)
				}
				high := bytes.Clone(share)
				high[31] |= 0x80
				shares = append(shares, share, high)
			}
		}
		for range random {
			u := make([]byte, 32)
			prng.Read(u)
			shares = append(shares, u)
		}
		for _, share := range shares {
			if _, err := referenceSharedSecret(t, k.key, share); err != nil {
				errs++
			}
			if compareSharedSecret(t, k, share) {
				twist++
			} else {
				onCurve++
			}
		}
		t.Logf("key %d: %d shares", n, len(shares))
	}
	t.Logf("%d on the curve, %d on the twist, %d rejected", onCurve, twist, errs)
	if onCurve == 0 || twist == 0 || errs == 0 {
		t.Fatalf("branches not all exercised: %d on the curve, %d on the twist, %d rejected", onCurve, twist, errs)
	}
}

// groupOrder is l, the order of the prime-order subgroup.
var groupOrder = bigInt("7237005577332262213973186563042994240857116359379907606001950938285454250989")

func leInt(b []byte) *big.Int {
	be := bytes.Clone(b)
	for i, j := 0, len(be)-1; i < j; i, j = i+1, j-1 {
		be[i], be[j] = be[j], be[i]
	}
	return new(big.Int).SetBytes(be)
}

func TestSSHEd25519CombinedScalar(t *testing.T) {
	clampedOverEight := func(x []byte) *big.Int {
		v := leInt(x[:32])
		v.SetBit(v, 255, 0)
		v.SetBit(v, 254, 1)
		return v.Rsh(v, 3)
	}
	for range 20 {
		k := newTestKey(t, nil)
		s := sha512.Sum512(k.key.Seed())
		tweak := make([]byte, 32)
		if _, err := io.ReadFull(hkdf.New(sha256.New, nil, k.pub.Marshal(), []byte(sshEd25519Label)), tweak); err != nil {
			t.Fatal(err)
		}
		c := new(big.Int).Mul(clampedOverEight(s[:]), clampedOverEight(tweak))
		c.Mul(c, big.NewInt(8)).Mod(c, groupOrder)
		want := c.Lsh(c, 3)
		if leInt(k.prepared.k[:]).Cmp(want) != 0 {
			t.Fatal("combined scalar is not 8·((8ab) mod l)")
		}
	}
}

// TestLadderFullScalar checks the ladder against Edwards arithmetic on scalars X25519 never
// uses: bit 255 set, bits 0 to 2 set, beyond l. A combined scalar can in principle reach 2^255.
func TestLadderFullScalar(t *testing.T) {
	// An Edwards point of order 8.
	t8, err := new(edwards25519.Point).SetBytes([]byte{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05})
	if err != nil {
		t.Fatal(err)
	}
	one := big.NewInt(1)
	scalars := []*big.Int{
		big.NewInt(0), one, big.NewInt(8),
		new(big.Int).Sub(new(big.Int).Lsh(one, 256), one),
		new(big.Int).Lsh(one, 255),
		new(big.Int).Lsh(groupOrder, 3),
		new(big.Int).Lsh(new(big.Int).Sub(groupOrder, one), 3),
		new(big.Int).Lsh(new(big.Int).Lsh(one, 252), 3),
	}
	for range 200 {
		b := make([]byte, 32)
		rand.Read(b)
		scalars = append(scalars, leInt(b))
	}
	for i, k := range scalars {
		wide := make([]byte, 64)
		rand.Read(wide)
		r, _ := edwards25519.NewScalar().SetUniformBytes(wide)
		base := new(edwards25519.Point).ScalarBaseMult(r)
		torsion := i % 8

		p := new(edwards25519.Point).Set(base)
		for range torsion {
			p.Add(p, t8)
		}
		// [k]P = [k mod l]([r]B) + [(k·torsion) mod 8]T8.
		kl, err := edwards25519.NewScalar().SetCanonicalBytes(lePoint(t, new(big.Int).Mod(k, groupOrder)))
		if err != nil {
			t.Fatal(err)
		}
		want := new(edwards25519.Point).ScalarMult(kl, base)
		m := new(big.Int).Mod(new(big.Int).Mul(k, big.NewInt(int64(torsion))), big.NewInt(8)).Int64()
		for range m {
			want.Add(want, t8)
		}

		var u field.Element
		if _, err := u.SetBytes(p.BytesMontgomery()); err != nil {
			t.Fatal(err)
		}
		var kb [32]byte
		copy(kb[:], lePoint(t, k))
		if got := ladder(&kb, &u).Bytes(); !bytes.Equal(got, want.BytesMontgomery()) {
			t.Fatalf("scalar %d (bit length %d, torsion %d): ladder differs from Edwards arithmetic", i, k.BitLen(), torsion)
		}
	}
}

func FuzzSSHEd25519SharedSecret(f *testing.F) {
	f.Add([]byte("seed"), make([]byte, 32))
	f.Add([]byte("seed"), lePoint(f, order8a))
	f.Add([]byte{}, lePoint(f, new(big.Int).Add(fieldP, big.NewInt(1))))
	f.Add([]byte("another seed"), bytes.Repeat([]byte{0xff}, 32))
	f.Fuzz(func(t *testing.T, seed, u []byte) {
		s := sha256.Sum256(seed)
		k := newTestKey(t, s[:])
		share := make([]byte, 32)
		copy(share, u)
		compareSharedSecret(t, k, share)
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
