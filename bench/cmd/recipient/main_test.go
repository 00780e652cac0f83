package main

import (
	"bytes"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/secretd/secretd/internal/interop"
)

func output(t *testing.T, key string, printIdentity bool) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(interop.Key(t, key), printIdentity, &out); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out.String())
}

// The identity printed is the one the printed recipient belongs to.
func TestIdentityMatchesRecipient(t *testing.T) {
	id, err := age.ParseX25519Identity(output(t, "ssh_host_ed25519_key", true))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := id.Recipient().String(), output(t, "ssh_host_ed25519_key", false); got != want {
		t.Fatalf("identity's recipient %s, printed recipient %s", got, want)
	}
}

func TestRefusesRSAKey(t *testing.T) {
	if _, err := identityOf(interop.Key(t, "ssh_host_rsa_key")); err == nil || !strings.Contains(err.Error(), "not an ed25519 key") {
		t.Fatalf("RSA key: err = %v, want a refusal naming the key type", err)
	}
}
