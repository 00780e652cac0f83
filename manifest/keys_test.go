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
