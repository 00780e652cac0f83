package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestPublicKeyRecipients: the age recipient derived from a public key is the one of the
// private key's ssh-to-age identity (checked against ssh-to-age in the identity tests), in
// .pub, authorized_keys and ssh-keyscan forms.
func TestPublicKeyRecipients(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	id, err := X25519FromEd25519(priv)
	if err != nil {
		t.Fatal(err)
	}
	want := id.Recipient().String()
	for name, input := range map[string]string{
		"pub":             line + " root@host\n",
		"authorized_keys": `no-pty,command="true" ` + line + " user@laptop\n",
		"ssh-keyscan":     "# host.example:22 SSH-2.0-OpenSSH_9.6\nhost.example " + line + "\n",
	} {
		keys, err := ParsePublicKeys([]byte(input))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(keys) != 1 || keys[0].Age != want || keys[0].SSH != line {
			t.Errorf("%s: got %+v, want age %s", name, keys, want)
		}
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, err := ssh.NewPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParsePublicKeys(ssh.MarshalAuthorizedKey(rsaPub))
	if err != nil || len(keys) != 1 || keys[0].Age != "" || !strings.HasPrefix(keys[0].SSH, "ssh-rsa ") {
		t.Errorf("RSA key: %+v, %v; want its ssh-rsa recipient only", keys, err)
	}
	ecdsa := "web1 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=\n"
	keys, err = ParsePublicKeys([]byte(ecdsa + "web1 " + line + "\n"))
	if err != nil || len(keys) != 2 || keys[0].Unusable == "" || keys[0].Name != "web1" || keys[1].Age != want {
		t.Errorf("ssh-keyscan output with an ECDSA key: %+v, %v", keys, err)
	}
	if _, err := ParsePublicKeys([]byte("ssh-ed25519 AAAA bogus\n")); err == nil {
		t.Error("a malformed key was accepted")
	}
}
