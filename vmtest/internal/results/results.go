// Package results reads the line protocol that the guest's scenario runner writes to its
// results serial port, and the journal dumps it writes to a second port.
//
// Results lines start with "VMTEST " followed by a verb:
//
//	VMTEST BOOT <n>                  the runner started in the guest's n-th boot
//	VMTEST BEGIN <scenario>          a scenario started
//	VMTEST LOG <scenario> <text>     a check and its outcome, for the test output
//	VMTEST INFO <scenario> <text>    a figure reported without a verdict
//	VMTEST PASS <scenario>           every check of the scenario held
//	VMTEST FAIL <scenario>           at least one check did not hold
//	VMTEST HALT <n>                  the runner finished its work in boot n
//	VMTEST END                       the runner finished all scenarios
//
// Anything else (kernel noise on a shared port, partial lines) is ignored, so only an
// explicit PASS marks a scenario as passed.
package results

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

const prefix = "VMTEST "

// Scenario is what the guest reported about one scenario.
type Scenario struct {
	Name    string
	Boot    int // the boot during which it began
	Started bool
	Passed  bool
	Failed  bool
	Log     []string
	Info    []string
}

// Verdict summarises a scenario for a test: "passed", "failed", "unfinished" (begun without
// a verdict, e.g. the guest hung or crashed) or "not run".
func (s *Scenario) Verdict() string {
	switch {
	case s == nil || !s.Started:
		return "not run"
	case s.Failed:
		return "failed"
	case s.Passed:
		return "passed"
	}
	return "unfinished"
}

// Report is everything read from a results stream.
type Report struct {
	Boots     []int
	Halted    []int // boots whose runner finished
	Scenarios map[string]*Scenario
	Order     []string // scenario names in the order they began
	Ended     bool
}

// HaltedIn reports whether the runner finished its work in boot n.
func (r *Report) HaltedIn(n int) bool {
	for _, h := range r.Halted {
		if h == n {
			return true
		}
	}
	return false
}

// Scenario returns the named scenario's report, or nil when the guest never mentioned it.
func (r *Report) Scenario(name string) *Scenario {
	return r.Scenarios[name]
}

// Parse reads a results stream to its end.
func Parse(stream io.Reader) (*Report, error) {
	rep := &Report{Scenarios: map[string]*Scenario{}}
	boot := 0
	sc := bufio.NewScanner(stream)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		i := strings.Index(line, prefix)
		if i < 0 {
			continue
		}
		verb, rest, _ := strings.Cut(line[i+len(prefix):], " ")
		name, text, _ := strings.Cut(rest, " ")
		switch verb {
		case "BOOT":
			if _, err := fmt.Sscanf(rest, "%d", &boot); err == nil {
				rep.Boots = append(rep.Boots, boot)
			}
		case "HALT":
			var n int
			if _, err := fmt.Sscanf(rest, "%d", &n); err == nil {
				rep.Halted = append(rep.Halted, n)
			}
		case "BEGIN":
			if name == "" {
				continue
			}
			s := rep.get(name)
			if !s.Started {
				rep.Order = append(rep.Order, name)
			}
			s.Started, s.Boot = true, boot
		case "LOG":
			rep.get(name).Log = append(rep.get(name).Log, text)
		case "INFO":
			rep.get(name).Info = append(rep.get(name).Info, text)
		case "PASS":
			rep.get(name).Passed = true
		case "FAIL":
			rep.get(name).Failed = true
		case "END":
			rep.Ended = true
		}
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("reading results: %w", err)
	}
	return rep, nil
}

func (r *Report) get(name string) *Scenario {
	s, ok := r.Scenarios[name]
	if !ok {
		s = &Scenario{Name: name}
		r.Scenarios[name] = s
	}
	return s
}

const (
	journalBegin = "VMTEST-JOURNAL BEGIN "
	journalEnd   = "VMTEST-JOURNAL END"
)

// Journal is one boot's journal as dumped by the guest.
type Journal struct {
	Boot     string
	Lines    []string
	Complete bool // the end marker was seen
}

// ParseJournals splits a journal stream into its per-boot dumps.
func ParseJournals(stream io.Reader) ([]Journal, error) {
	var out []Journal
	var cur *Journal
	sc := bufio.NewScanner(stream)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, journalBegin):
			out = append(out, Journal{Boot: strings.TrimPrefix(line, journalBegin)})
			cur = &out[len(out)-1]
		case line == journalEnd && cur != nil:
			cur.Complete = true
			cur = nil
		case cur != nil:
			cur.Lines = append(cur.Lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("reading journal dump: %w", err)
	}
	return out, nil
}
