// Command measure runs a command several times and prints its median wall time, its median CPU
// time (user+sys, its waited-for descendants included) and its peak resident set size, read
// from wait4's rusage rather than from /usr/bin/time, whose 10 ms resolution is too coarse for
// runs of a few milliseconds.
//
//	measure [-reps N] [-before 'shell command'] -- command [args...]
//
// The -before command runs untimed before every repetition (to unmount a ramfs, or put back
// the state a run starts from). Output is one line: "wall_ms cpu_ms rss_kb reps", medians of
// wall and CPU and the largest peak RSS seen. A failing run makes measure fail with that run's
// output, so a broken benchmark never reports a time.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "measure:", err)
		os.Exit(1)
	}
}

// sample is one timed run.
type sample struct {
	wall, cpu time.Duration
	rssKB     int64
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("measure", flag.ContinueOnError)
	reps := fs.Int("reps", 5, "how many timed runs")
	before := fs.String("before", "", "shell command run, untimed, before each timed run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 || *reps < 1 {
		return errors.New("usage: measure [-reps N] [-before CMD] -- command [args...]")
	}
	var samples []sample
	for range *reps {
		if *before != "" {
			if out, err := exec.Command("bash", "-c", *before).CombinedOutput(); err != nil {
				return fmt.Errorf("before %q: %w\n%s", *before, err, out)
			}
		}
		s, err := timed(fs.Args())
		if err != nil {
			return err
		}
		samples = append(samples, s)
	}
	walls := make([]time.Duration, len(samples))
	cpus := make([]time.Duration, len(samples))
	var rss int64
	for i, s := range samples {
		walls[i], cpus[i] = s.wall, s.cpu
		rss = max(rss, s.rssKB)
	}
	fmt.Fprintf(stdout, "%.2f %.2f %d %d\n", ms(median(walls)), ms(median(cpus)), rss, len(samples))
	return nil
}

func timed(argv []string) (sample, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%v: %w\n%s", argv, err, out.Bytes())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return sample{}, errors.New("no rusage for the child")
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return sample{wall: wall, cpu: cpu, rssKB: ru.Maxrss}, nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
