package fakesystemd

import (
	"testing"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

func TestUnitPathMatchesGoSystemd(t *testing.T) {
	for _, name := range []string{"app.service", "getty@tty1.service", "dev-disk-by\\x2duuid.device", "0day.timer", "a_b-c.socket"} {
		want := dbus.ObjectPath(unitPathPrefix + "/" + sdbus.PathBusEscape(name))
		if got := UnitPath(name); got != want {
			t.Errorf("UnitPath(%q) = %s, go-systemd builds %s", name, got, want)
		}
		back, err := unitName(UnitPath(name))
		if err != nil || back != name {
			t.Errorf("unitName(UnitPath(%q)) = %q, %v", name, back, err)
		}
	}
}

func TestUnitNameRejectsOtherPaths(t *testing.T) {
	for _, path := range []dbus.ObjectPath{"/org/freedesktop/systemd1", unitPathPrefix + "/a/b", unitPathPrefix + "/x_2", unitPathPrefix + "/x_zz"} {
		if name, err := unitName(path); err == nil {
			t.Errorf("unitName(%s) = %q, want an error", path, name)
		}
	}
}
