package identity

import (
	"errors"
	"strings"
)

// bech32Encode encodes data as BIP 173 bech32, the encoding of age keys. Only encoding is
// needed: age parses what this produces.
func bech32Encode(hrp string, data []byte) (string, error) {
	const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	values, err := regroup(data, 8, 5)
	if err != nil {
		return "", err
	}
	checksum := bech32Checksum(hrp, values)
	var b strings.Builder
	b.WriteString(hrp)
	b.WriteByte('1')
	for _, v := range append(values, checksum...) {
		b.WriteByte(charset[v])
	}
	return b.String(), nil
}

func regroup(data []byte, from, to uint) ([]byte, error) {
	var acc, bits uint
	var out []byte
	maxv := uint(1)<<to - 1
	for _, b := range data {
		if uint(b)>>from != 0 {
			return nil, errors.New("bech32: invalid input byte")
		}
		acc = acc<<from | uint(b)
		bits += from
		for bits >= to {
			bits -= to
			out = append(out, byte(acc>>bits&maxv))
		}
	}
	if bits > 0 {
		out = append(out, byte(acc<<(to-bits)&maxv))
	}
	return out, nil
}

func bech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := 0; i < 5; i++ {
			if top>>uint(i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

func bech32Checksum(hrp string, data []byte) []byte {
	var values []byte
	for i := 0; i < len(hrp); i++ {
		values = append(values, hrp[i]>>5)
	}
	values = append(values, 0)
	for i := 0; i < len(hrp); i++ {
		values = append(values, hrp[i]&31)
	}
	values = append(values, data...)
	values = append(values, 0, 0, 0, 0, 0, 0)
	mod := bech32Polymod(values) ^ 1
	out := make([]byte, 6)
	for i := range out {
		out[i] = byte(mod >> uint(5*(5-i)) & 31)
	}
	return out
}
