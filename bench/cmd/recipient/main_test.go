package main

import (
	"os"
	"strings"
	"testing"

	"github.com/secretd/secretd/internal/interop"
)

// The corpus' recipient file was written by ssh-to-age itself.
func TestMatchesSSHToAge(t *testing.T) {
	want, err := os.ReadFile(interop.Key(t, "ssh_host_ed25519_key.age-recipient"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := recipientOf(interop.Key(t, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	if got != strings.TrimSpace(string(want)) {
		t.Fatalf("recipient %s, ssh-to-age says %s", got, strings.TrimSpace(string(want)))
	}
}

func TestRefusesRSAKey(t *testing.T) {
	if _, err := recipientOf(interop.Key(t, "ssh_host_rsa_key")); err == nil || !strings.Contains(err.Error(), "not an ed25519 key") {
		t.Fatalf("RSA key: err = %v, want a refusal naming the key type", err)
	}
}
