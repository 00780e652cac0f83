// Command pgpkey prints the OpenPGP public key that an OpenSSH RSA private key is as an OpenPGP
// key (creation time 0, as ssh-to-pgp makes it), self-signed so that gpg imports it, for
// gen.sh to encrypt test files to it with sops.
//
//	go run ./pgpkey keys/ssh_host_rsa_key > rsa.asc
package main

import (
	"crypto"
	"crypto/rsa"
	"fmt"
	"os"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"golang.org/x/crypto/ssh"
)

func main() {
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "pgpkey:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return err
	}
	key, ok := raw.(*rsa.PrivateKey)
	if !ok {
		return fmt.Errorf("%s is not an RSA key", path)
	}
	epoch := time.Unix(0, 0)
	e := &openpgp.Entity{
		PrimaryKey: packet.NewRSAPublicKey(epoch, &key.PublicKey),
		PrivateKey: packet.NewRSAPrivateKey(epoch, key),
		Identities: map[string]*openpgp.Identity{},
	}
	uid := packet.NewUserId("secretd test host", "", "host@example.invalid")
	primary := true
	sig := &packet.Signature{
		Version: 4, CreationTime: epoch, SigType: packet.SigTypePositiveCert, PubKeyAlgo: packet.PubKeyAlgoRSA,
		Hash: crypto.SHA256, IsPrimaryId: &primary, FlagsValid: true, FlagCertify: true, FlagSign: true,
		FlagEncryptStorage: true, FlagEncryptCommunications: true, IssuerKeyId: &e.PrimaryKey.KeyId,
	}
	if err := sig.SignUserId(uid.Id, e.PrimaryKey, e.PrivateKey, nil); err != nil {
		return err
	}
	e.Identities[uid.Id] = &openpgp.Identity{Name: uid.Id, UserId: uid, SelfSignature: sig, Signatures: []*packet.Signature{sig}}
	w, err := armor.Encode(os.Stdout, openpgp.PublicKeyType, nil)
	if err != nil {
		return err
	}
	if err := e.Serialize(w); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	fmt.Println()
	return nil
}
