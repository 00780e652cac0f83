// Command recipient prints the age1… recipient of an OpenSSH ed25519 private key, the one
// ssh-to-age derives and sops-nix users encrypt to, so the benchmark can encrypt a sops file
// for a host key it has just generated. With -identity it prints the matching
// AGE-SECRET-KEY-1… instead (as `ssh-to-age -private-key` does), which the sops CLI needs to
// decrypt such a file.
//
//	recipient [-identity] /path/to/ssh_host_ed25519_key
package main

import (
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"

	"github.com/secretd/secretd/identity"
)

func main() {
	printIdentity := flag.Bool("identity", false, "print the age identity instead of the recipient")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: recipient [-identity] SSH_ED25519_PRIVATE_KEY")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *printIdentity, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "recipient:", err)
		os.Exit(1)
	}
}

func run(keyPath string, printIdentity bool, stdout io.Writer) error {
	id, err := identityOf(keyPath)
	if err != nil {
		return err
	}
	if printIdentity {
		_, err = fmt.Fprintln(stdout, id)
	} else {
		_, err = fmt.Fprintln(stdout, id.Recipient())
	}
	return err
}

func identityOf(keyPath string) (*age.X25519Identity, error) {
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", keyPath, err)
	}
	var key ed25519.PrivateKey
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		key = k
	case *ed25519.PrivateKey:
		key = *k
	default:
		return nil, fmt.Errorf("key %s is a %T, not an ed25519 key", keyPath, raw)
	}
	id, err := identity.X25519FromEd25519(key)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", keyPath, err)
	}
	return id, nil
}
