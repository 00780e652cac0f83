package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{[]time.Duration{5}, 5},
		{[]time.Duration{9, 1, 5}, 5},
		{[]time.Duration{4, 1, 3, 2}, 2}, // (2+3)/2 in integer nanoseconds
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestRunsBeforeEachRepetitionAndReports(t *testing.T) {
	counter := filepath.Join(t.TempDir(), "count")
	var out bytes.Buffer
	err := run([]string{"-reps", "3", "-before", "echo x >> " + counter, "--", "sleep", "0.02"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(counter)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "x"); n != 3 {
		t.Errorf("before ran %d times, want 3", n)
	}
	var wall, cpu float64
	var rss, reps int
	if _, err := fmt.Sscanf(out.String(), "%f %f %d %d", &wall, &cpu, &rss, &reps); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if wall < 20 || reps != 3 || rss <= 0 {
		t.Errorf("output %q: want wall >= 20 ms, 3 reps and a positive RSS", out.String())
	}
}

func TestFailingCommandFails(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"-reps", "2", "--", "sh", "-c", "echo boom >&2; exit 3"}, &out)
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v, want the failure with the command's output", err)
	}
	if out.Len() != 0 {
		t.Errorf("a failed measurement printed figures: %q", out.String())
	}
}
