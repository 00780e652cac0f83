package manifest_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/secretd/secretd/manifest"
)

// BenchmarkDecode1000 decodes a manifest of 1000 secrets, as a large host has.
func BenchmarkDecode1000(b *testing.B) {
	var parts []string
	for i := 0; i < 1000; i++ {
		parts = append(parts, fmt.Sprintf(`{"name":"k%d","file":"/nix/store/abc-secrets.yaml","format":"yaml","key":"k%d","owner":"root","group":"root","mode":"0400","restartUnits":["a.service"]}`, i, i))
	}
	data := []byte(`{"version":1,"identities":["/etc/ssh/ssh_host_ed25519_key"],"secrets":[` + strings.Join(parts, ",") + `]}`)
	b.ResetTimer()
	for range b.N {
		if _, err := manifest.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
