package results

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseVerdicts(t *testing.T) {
	stream := strings.Join([]string{
		"[    3.1] random kernel line",
		"VMTEST BOOT 1\r",
		"VMTEST BEGIN boot",
		"VMTEST LOG boot ok: ramfs",
		"VMTEST PASS boot",
		"VMTEST BEGIN rotation",
		"VMTEST LOG rotation FAILED: consumer restarted",
		"VMTEST FAIL rotation",
		"VMTEST BEGIN security",
		"VMTEST INFO security exposure 4.2 OK",
		"VMTEST PASS security",
		"VMTEST BEGIN hang",
		"VMTEST HALT 1",
		"garbage VMTEST BOOT 2",
		"VMTEST BEGIN reboot",
		"VMTEST PASS reboot",
		"VMTEST END",
	}, "\n")
	rep, err := Parse(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"boot": "passed", "rotation": "failed", "security": "passed",
		"hang": "unfinished", "reboot": "passed", "missing": "not run",
	}
	for name, verdict := range want {
		if got := rep.Scenario(name).Verdict(); got != verdict {
			t.Errorf("%s: %s, want %s", name, got, verdict)
		}
	}
	if !rep.Ended {
		t.Error("END not seen")
	}
	if !rep.HaltedIn(1) || rep.HaltedIn(2) {
		t.Errorf("halted %v, want [1]", rep.Halted)
	}
	if !reflect.DeepEqual(rep.Boots, []int{1, 2}) {
		t.Errorf("boots %v", rep.Boots)
	}
	if got := rep.Scenario("reboot").Boot; got != 2 {
		t.Errorf("reboot began in boot %d, want 2", got)
	}
	if got := rep.Scenario("security").Info; !reflect.DeepEqual(got, []string{"exposure 4.2 OK"}) {
		t.Errorf("security info %q", got)
	}
	if got := rep.Scenario("rotation").Log; !reflect.DeepEqual(got, []string{"FAILED: consumer restarted"}) {
		t.Errorf("rotation log %q", got)
	}
	wantOrder := []string{"boot", "rotation", "security", "hang", "reboot"}
	if !reflect.DeepEqual(rep.Order, wantOrder) {
		t.Errorf("order %v, want %v", rep.Order, wantOrder)
	}
}

func TestPassAndFailMeansFailed(t *testing.T) {
	rep, err := Parse(strings.NewReader("VMTEST BEGIN a\nVMTEST PASS a\nVMTEST FAIL a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Scenario("a").Verdict(); got != "failed" {
		t.Errorf("verdict %s, want failed", got)
	}
	if rep.Ended {
		t.Error("END reported without its marker")
	}
}

func TestPassWithoutBeginIsNotRun(t *testing.T) {
	rep, err := Parse(strings.NewReader("VMTEST PASS a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Scenario("a").Verdict(); got != "not run" {
		t.Errorf("verdict %s, want not run", got)
	}
}

func TestParseJournals(t *testing.T) {
	stream := "noise\nVMTEST-JOURNAL BEGIN 1\na\r\nb\nVMTEST-JOURNAL END\nVMTEST-JOURNAL BEGIN 2\nc\n"
	got, err := ParseJournals(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	want := []Journal{
		{Boot: "1", Lines: []string{"a", "b"}, Complete: true},
		{Boot: "2", Lines: []string{"c"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
