package vmtest_test

import (
	"path/filepath"
	"testing"
)

func TestParseExecStart(t *testing.T) {
	cases := []struct {
		unit, binary, manifest string
		ok                     bool
	}{
		{"[Service]\nExecStart=/usr/local/bin/secretd activate --manifest /etc/secretd/manifest.json\n", "/usr/local/bin/secretd", "/etc/secretd/manifest.json", true},
		{"ExecStart=!/nix/store/x-secretd/bin/secretd activate --for-users --manifest=/nix/store/y-m.json\n", "/nix/store/x-secretd/bin/secretd", "/nix/store/y-m.json", true},
		{"ExecStart=/usr/bin/secretd activate\n", "", "", false},
		{"ExecStart=secretd activate --manifest /m.json\n", "", "", false},
		{"Description=no exec\n", "", "", false},
	}
	for _, c := range cases {
		binary, manifest, err := parseExecStart([]byte(c.unit))
		if (err == nil) != c.ok || binary != c.binary || manifest != c.manifest {
			t.Errorf("parseExecStart(%q) = %q, %q, %v", c.unit, binary, manifest, err)
		}
	}
}

// TestGoldenUnitsAreUsable checks that the units rendered from nixos/module.nix name a
// binary and a manifest the VM test can put in place.
func TestGoldenUnitsAreUsable(t *testing.T) {
	units := loadActivationUnits(t, filepath.Join(repoRoot(t), "vmtest"))
	if len(units) != 2 {
		t.Fatalf("%d units", len(units))
	}
	if units["secretd.service"].manifest == units["secretd-for-users.service"].manifest {
		t.Error("both units activate the same manifest")
	}
}
