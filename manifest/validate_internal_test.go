package manifest

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// CheckName and checkUnit check bytes by hand instead of with regular expressions; they must
// accept exactly what the expressions did, and say the same otherwise. Every string of up to
// four symbols from an alphabet of the interesting bytes is tried.
func TestNameAndUnitChecksMatchTheirExpressions(t *testing.T) {
	alphabet := []string{"a", "Z", "0", ".", "/", "_", "@", "+", "-", ":", "\\", " ", "é", "\xff", "\x00", "*"}
	var all []string
	var gen func(s string, n int)
	gen = func(s string, n int) {
		all = append(all, s)
		if n == 0 {
			return
		}
		for _, a := range alphabet {
			gen(s+a, n-1)
		}
	}
	gen("", 4)

	for _, s := range all {
		if got, want := fmt.Sprint(CheckName(s)), fmt.Sprint(oracleCheckName(s)); got != want {
			t.Errorf("CheckName(%q) = %s, was %s", s, got, want)
		}
	}
	var units []string
	for _, s := range all[:len(all)/16] { // up to three symbols
		for _, suffix := range []string{"service", "automount", "mount", "device", "servic", "Service", "", "service.", "x"} {
			units = append(units, s+suffix, s+"."+suffix)
		}
	}
	for _, u := range units {
		if got, want := fmt.Sprint(checkUnit(u)), fmt.Sprint(oracleCheckUnit(u)); got != want {
			t.Errorf("checkUnit(%q) = %s, was %s", u, got, want)
		}
	}
}

func TestWithin(t *testing.T) {
	for _, c := range [][2]string{{"/run/s/x", "/run/s"}, {"/run/s", "/run/s"}, {"/run/sx", "/run/s"}, {"/run", "/run/s"}, {"/", ""}, {"", ""}, {"/a", "/"}, {"//a", "/"}} {
		if got, want := within(c[0], c[1]), oracleWithin(c[0], c[1]); got != want {
			t.Errorf("within(%q, %q) = %v, was %v", c[0], c[1], got, want)
		}
	}
}

// The checks as they were first written, with regular expressions.

// oracleSegmentPattern matches text without "/" or control characters (C0, DEL, C1).
var oracleSegmentPattern = regexp.MustCompile(`^[^/\x00-\x1f\x7f\x{80}-\x{9f}]+$`)

// oracleCheckName is CheckName as it was, with a regular expression.
func oracleCheckName(name string) error {
	if name == "" {
		return fmt.Errorf("name is empty")
	}
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("%q is absolute; names are relative to secretsDir", name)
	}
	for _, seg := range strings.Split(name, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%q has an empty path segment", name)
		case seg == "." || seg == "..":
			return fmt.Errorf("%q has a %q segment", name, seg)
		case !utf8.ValidString(seg) || !oracleSegmentPattern.MatchString(seg):
			return fmt.Errorf("%q: segment %q must be UTF-8 text without control characters", name, seg)
		}
	}
	return nil
}

var oracleUnitPattern = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|timer|path|mount|automount|swap|slice|scope|device)$`)

func oracleCheckUnit(u string) error {
	if !oracleUnitPattern.MatchString(u) {
		return fmt.Errorf("%q is not a systemd unit name (such as foo.service)", u)
	}
	return nil
}

func oracleWithin(path, dir string) bool {
	return strings.HasPrefix(path, dir+"/")
}
