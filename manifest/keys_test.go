package manifest_test

import (
	"strings"
	"testing"

	"github.com/secretd/secretd/manifest"
)

// encoding/json alone would accept "Mode" for "mode" and let a repeated field win silently.
func TestFieldsMatchExactlyAndOnce(t *testing.T) {
	for _, c := range []struct{ name, data, want string }{
		{"case variant", `{"version": 1, "identities": ["/k"], "secrets": [{"name": "a", "file": "/a", "Mode": "0444"}]}`, `secrets[0]: unknown field "Mode"`},
		{"repeated in a secret", `{"version": 1, "identities": ["/k"], "secrets": [{"name": "a", "file": "/a", "mode": "0400", "mode": "0444"}]}`, `secrets[0]: field "mode" appears twice`},
		{"repeated at the top", `{"version": 1, "identities": ["/k"], "secretsDir": "/run/a", "secretsDir": "/run/b"}`, `field "secretsDir" appears twice`},
		{"case variant at the top", `{"version": 1, "Identities": ["/k"]}`, `unknown field "Identities"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := manifest.Decode([]byte(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// The key scanner must step over values holding quotes, brackets and commas.
func TestKeyScanAcrossTrickyValues(t *testing.T) {
	base := `{"version": 1, "identities": ["/k, \"x\"]", "/l"],
	  "placeholders": {"a": "<SECRETD:x>"},
	  "secrets": [{"name": "a", "file": "/a", "uid": 7, "restartUnits": ["a.service"], "mode": "0400"}],
	  "templates": [{"name": "t", "content": "a \"quoted\" } ] { , <SECRETD:x>", "gid": 0, "mode": "0440"}]%s}`
	m, err := manifest.Decode([]byte(strings.Replace(base, "%s", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Identities) != 2 || *m.Secrets[0].UID != 7 || m.Templates[0].Mode != "0440" {
		t.Fatalf("decoded %+v", m)
	}
	_, err = manifest.Decode([]byte(strings.Replace(base, "%s", `, "keepGenerations": 2, "identities": ["/z"]`, 1)))
	if err == nil || !strings.Contains(err.Error(), `field "identities" appears twice`) {
		t.Fatalf("error %v", err)
	}
	if _, err := manifest.Decode([]byte(`{"version": 1, "identities": ["/k"], "secrets": [{"name": "a", "file": "/a", "mo\u0064e": "0400"}]}`)); err != nil {
		t.Fatalf("an escaped field name was refused: %v", err)
	}
}
