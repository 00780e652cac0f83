package sops

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

const (
	encPrefix = "ENC[AES256_GCM,"
	encSuffix = "]"
)

// encryptedValue is one parsed ENC[AES256_GCM,data:…,iv:…,tag:…,type:…] value.
type encryptedValue struct {
	data, iv, tag []byte
	typ           string
}

var errNotEncrypted = errors.New("not in sops' ENC[AES256_GCM,...] format")

func parseEncryptedValue(s string) (*encryptedValue, error) {
	var ev encryptedValue
	if err := ev.parse(s, nil); err != nil {
		return nil, err
	}
	return &ev, nil
}

// parse fills ev from s, decoding into scratch (which it may grow and reuse) when given.
func (ev *encryptedValue) parse(s string, scratch *[]byte) error {
	body, ok := strings.CutPrefix(s, encPrefix)
	if !ok {
		return errNotEncrypted
	}
	if body, ok = strings.CutSuffix(body, encSuffix); !ok {
		return errNotEncrypted
	}
	var parts [4]string
	for i, name := range [...]string{"data:", "iv:", "tag:", "type:"} {
		field := body
		if i < 3 {
			comma := strings.IndexByte(body, ',')
			if comma < 0 {
				return errNotEncrypted
			}
			field, body = body[:comma], body[comma+1:]
		} else if strings.IndexByte(body, ',') >= 0 {
			return errNotEncrypted
		}
		v, ok := strings.CutPrefix(field, name)
		if !ok || v == "" {
			return errNotEncrypted
		}
		parts[i] = v
	}
	var buf []byte
	if scratch != nil {
		buf = (*scratch)[:0]
	}
	need := base64.StdEncoding.DecodedLen(len(parts[0])) + base64.StdEncoding.DecodedLen(len(parts[1])) + base64.StdEncoding.DecodedLen(len(parts[2]))
	if cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	decode := func(field string) ([]byte, bool) {
		start := len(buf)
		dst := buf[start : start+base64.StdEncoding.DecodedLen(len(field))]
		n, err := base64.StdEncoding.Decode(dst, []byte(field))
		if err != nil {
			return nil, false
		}
		buf = buf[:start+n]
		return buf[start : start+n : start+n], true
	}
	if ev.data, ok = decode(parts[0]); !ok {
		return errors.New("malformed base64 in data")
	}
	if ev.iv, ok = decode(parts[1]); !ok || len(ev.iv) == 0 {
		return errors.New("malformed iv")
	}
	if ev.tag, ok = decode(parts[2]); !ok || len(ev.tag) != 16 {
		return errors.New("malformed authentication tag")
	}
	ev.typ = parts[3]
	if scratch != nil {
		*scratch = buf
	}
	return nil
}

// valueCipher decrypts a file's values with its data key.
type valueCipher struct {
	block cipher.Block
	// gcms caches one AEAD per nonce size (sops always uses 32 bytes).
	gcms map[int]cipher.AEAD
	buf  []byte
}

func newValueCipher(dataKey []byte) (*valueCipher, error) {
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	return &valueCipher{block: block, gcms: map[int]cipher.AEAD{}}, nil
}

// open authenticates and decrypts ev with the given associated data. The returned slice is
// only valid until the next call.
func (c *valueCipher) open(ev *encryptedValue, additionalData string) ([]byte, error) {
	gcm, ok := c.gcms[len(ev.iv)]
	if !ok {
		var err error
		gcm, err = cipher.NewGCMWithNonceSize(c.block, len(ev.iv))
		if err != nil {
			return nil, fmt.Errorf("iv of %d bytes: %w", len(ev.iv), err)
		}
		c.gcms[len(ev.iv)] = gcm
	}
	sealed := append(append(c.buf[:0], ev.data...), ev.tag...)
	plain, err := gcm.Open(sealed[:0], ev.iv, sealed, []byte(additionalData))
	c.buf = sealed
	if err != nil {
		return nil, err
	}
	return plain, nil
}

// wipe overwrites the cipher's scratch buffer, which last held plaintext.
func (c *valueCipher) wipe() {
	clear(c.buf[:cap(c.buf)])
}
