package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"filippo.io/age/plugin"
	"filippo.io/edwards25519"
	"golang.org/x/crypto/ssh"
)

// PublicKey is one OpenSSH public key with the recipients that encrypt to it: SSH (the
// `ssh-ed25519 …` or `ssh-rsa …` recipient agenix uses) and, for ed25519 keys, Age (the age1…
// recipient ssh-to-age derives, which sops-nix uses).
type PublicKey struct {
	SSH, Age string
	// Name is the key's comment, or the host that ssh-keyscan named.
	Name string
	// Unusable says why age cannot encrypt to the key (an ECDSA key, say); SSH and Age are
	// then empty.
	Unusable string
}

// ParsePublicKeys reads OpenSSH public keys one per line: `.pub` files, `authorized_keys`
// lines (options allowed) and `ssh-keyscan` output. Blank and "#" lines are skipped; a line
// that is no key is an error naming it; keys of types age cannot encrypt to (ssh-keyscan
// prints every type a host has) are returned as Unusable.
func ParsePublicKeys(data []byte) ([]PublicKey, error) {
	var out []PublicKey
	for n, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		key, name, err := parsePublicKeyLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		pk, err := recipientsOf(key)
		if err != nil {
			pk = PublicKey{Unusable: err.Error()}
		}
		pk.Name = name
		out = append(out, pk)
	}
	if len(out) == 0 {
		return nil, errors.New("no OpenSSH public key found")
	}
	return out, nil
}

// authorizedKeysFlags are the authorized_keys options without a value; any other first word
// before a key names hosts, as in ssh-keyscan output.
var authorizedKeysFlags = map[string]bool{
	"agent-forwarding": true, "cert-authority": true, "no-agent-forwarding": true, "no-port-forwarding": true,
	"no-pty": true, "no-user-rc": true, "no-x11-forwarding": true, "port-forwarding": true, "pty": true,
	"restrict": true, "user-rc": true, "x11-forwarding": true, "no-touch-required": true, "verify-required": true,
}

func parsePublicKeyLine(line []byte) (ssh.PublicKey, string, error) {
	first, _, _ := strings.Cut(string(line), " ")
	keyType := strings.HasPrefix(first, "ssh-") || strings.HasPrefix(first, "ecdsa-") || strings.HasPrefix(first, "sk-")
	if keyType || strings.ContainsAny(first, `=,"`) || authorizedKeysFlags[strings.ToLower(first)] {
		if key, comment, _, _, err := ssh.ParseAuthorizedKey(line); err == nil {
			return key, comment, nil
		}
	}
	_, hosts, key, comment, _, err := ssh.ParseKnownHosts(line)
	if err != nil {
		if key, comment, _, _, err := ssh.ParseAuthorizedKey(line); err == nil {
			return key, comment, nil
		}
		return nil, "", errors.New("not an OpenSSH public key")
	}
	if len(hosts) > 0 {
		comment = hosts[0]
	}
	return key, comment, nil
}

func recipientsOf(key ssh.PublicKey) (PublicKey, error) {
	pk := PublicKey{SSH: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))}
	switch key.Type() {
	case ssh.KeyAlgoRSA:
		return pk, nil
	case ssh.KeyAlgoED25519:
		crypto, ok := key.(ssh.CryptoPublicKey)
		if !ok {
			return pk, errors.New("unreadable ed25519 key")
		}
		r, err := X25519RecipientOf(crypto.CryptoPublicKey().(ed25519.PublicKey))
		if err != nil {
			return pk, err
		}
		pk.Age = r.String()
		return pk, nil
	}
	return pk, fmt.Errorf("%s keys cannot be age recipients; use ed25519 or RSA", key.Type())
}

// X25519RecipientOf converts an ed25519 public key to the age X25519 recipient ssh-to-age
// derives: the Montgomery form of the Edwards point, matching X25519FromEd25519.
func X25519RecipientOf(pub ed25519.PublicKey) (*age.X25519Recipient, error) {
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, fmt.Errorf("invalid ed25519 public key: %w", err)
	}
	encoded, err := bech32Encode("age", p.BytesMontgomery())
	if err != nil {
		return nil, err
	}
	return age.ParseX25519Recipient(encoded)
}

// Parse reads identities from data as Load reads a file: an OpenSSH private key or an age
// identity file. ui answers the age plugins it names; nil refuses every question, as at boot.
func Parse(data []byte, ui *plugin.ClientUI) ([]age.Identity, error) {
	if ui == nil {
		ui = unattendedUI()
	}
	ids, _, err := parse(data, ui)
	return ids, err
}

// ParseRecipient reads a recipient as sops and agenix take it: age1… (X25519), age1pq1…
// (hybrid), an age plugin's recipient (a second "1": bech32 data never holds one, so it names
// a plugin), or an ssh-ed25519/ssh-rsa public key. ui answers the plugin; nil refuses.
func ParseRecipient(s string, ui *plugin.ClientUI) (age.Recipient, error) {
	if ui == nil {
		ui = unattendedUI()
	}
	var r age.Recipient
	var err error
	switch {
	case strings.HasPrefix(s, "age1pq1"):
		r, err = age.ParseHybridRecipient(s)
	case strings.HasPrefix(s, "age1") && strings.Count(s, "1") > 1:
		r, err = plugin.NewRecipient(s, ui)
	case strings.HasPrefix(s, "age1"):
		r, err = age.ParseX25519Recipient(s)
	case strings.HasPrefix(s, "ssh-"):
		r, err = agessh.ParseRecipient(s)
	default:
		err = errors.New("not an age1… or ssh- recipient")
	}
	if err != nil {
		return nil, fmt.Errorf("recipient %q: %w", s, err)
	}
	return r, nil
}
