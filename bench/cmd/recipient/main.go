// Command recipient prints the age1… recipient of an OpenSSH ed25519 private key, the one
// ssh-to-age derives and sops-nix users encrypt to, so the benchmark can encrypt a sops file
// for a host key it has just generated.
//
//	recipient /path/to/ssh_host_ed25519_key
package main

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/ssh"

	"github.com/secretd/secretd/identity"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: recipient SSH_ED25519_PRIVATE_KEY")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "recipient:", err)
		os.Exit(1)
	}
}

func run(keyPath string, stdout io.Writer) error {
	r, err := recipientOf(keyPath)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, r)
	return err
}

func recipientOf(keyPath string) (string, error) {
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return "", err
	}
	defer clear(data)
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return "", fmt.Errorf("key %s: %w", keyPath, err)
	}
	var key ed25519.PrivateKey
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		key = k
	case *ed25519.PrivateKey:
		key = *k
	default:
		return "", fmt.Errorf("key %s is a %T, not an ed25519 key", keyPath, raw)
	}
	id, err := identity.X25519FromEd25519(key)
	if err != nil {
		return "", fmt.Errorf("key %s: %w", keyPath, err)
	}
	return id.Recipient().String(), nil
}
