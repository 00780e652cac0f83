package identity

import (
	"bytes"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxPGPPlaintext bounds what a PGP message holding a sops data key may decrypt to.
const maxPGPPlaintext = 1 << 10

// PGPKey is an RSA host key used as an OpenPGP key, as sops-nix does with
// sops.gnupg.sshKeyPaths: the OpenPGP key made of it with creation time 0, whose fingerprint is
// the one ssh-to-pgp prints and sops files list.
type PGPKey struct {
	path string
	key  openpgp.Key
}

func newPGPKey(path string, k *rsa.PrivateKey) *PGPKey {
	epoch := time.Unix(0, 0)
	return &PGPKey{path: path, key: openpgp.Key{PublicKey: packet.NewRSAPublicKey(epoch, &k.PublicKey), PrivateKey: packet.NewRSAPrivateKey(epoch, k)}}
}

// Fingerprint is the key's OpenPGP fingerprint, in upper-case hex as sops writes it.
func (k *PGPKey) Fingerprint() string {
	return strings.ToUpper(hex.EncodeToString(k.key.PublicKey.Fingerprint))
}

// Name says which file the key came from.
func (k *PGPKey) Name() string { return k.path + " (ssh-rsa as OpenPGP " + k.Fingerprint() + ")" }

// DecryptPGP decrypts an ASCII-armored OpenPGP message encrypted to the key.
func (k *PGPKey) DecryptPGP(message string) ([]byte, error) {
	block, err := armor.Decode(strings.NewReader(message))
	if err != nil {
		return nil, fmt.Errorf("not an armored OpenPGP message: %w", err)
	}
	md, err := openpgp.ReadMessage(block.Body, pgpRing{k.key}, nil, nil)
	if err != nil {
		return nil, err
	}
	plain, err := io.ReadAll(io.LimitReader(md.UnverifiedBody, maxPGPPlaintext))
	if err != nil {
		clear(plain)
		return nil, err
	}
	return plain, nil
}

// pgpRing is a key ring of one key, found by its key id whatever its usage flags say (a key
// made from an SSH key has no self-signature to carry them).
type pgpRing []openpgp.Key

func (r pgpRing) KeysById(id uint64) []openpgp.Key {
	var out []openpgp.Key
	for _, k := range r {
		if k.PublicKey.KeyId == id {
			out = append(out, k)
		}
	}
	return out
}

func (r pgpRing) KeysByIdUsage(id uint64, _ byte) []openpgp.Key { return r.KeysById(id) }
func (r pgpRing) DecryptionKeys() []openpgp.Key                 { return r }

// GnuPGHome decrypts with the secret keys of a GnuPG home directory through the gpg binary on
// PATH, as sops does (and sops-nix with sops.gnupg.home).
type GnuPGHome string

// Name says which home it is.
func (h GnuPGHome) Name() string { return "GnuPG home " + string(h) }

// DecryptPGP runs gpg --decrypt on message. gpg's own messages may name keys, never plaintext.
func (h GnuPGHome) DecryptPGP(message string) ([]byte, error) {
	cmd := exec.Command("gpg", "--homedir", string(h), "--batch", "--no-tty", "--quiet", "--decrypt")
	cmd.Stdin = strings.NewReader(message)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+string(h))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		clear(stdout.Bytes())
		if errors.Is(err, exec.ErrNotFound) {
			return nil, errors.New("the gpg binary is not on PATH")
		}
		return nil, fmt.Errorf("gpg --decrypt: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	if stdout.Len() > maxPGPPlaintext {
		clear(stdout.Bytes())
		return nil, errors.New("gpg --decrypt: the message is too large to hold a data key")
	}
	return stdout.Bytes(), nil
}
