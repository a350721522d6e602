package backend

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func readPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s: %v", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A backend that answers and exits but leaves a child behind (detached from
// its stdout) does not outlive its call: the child dies with the call, so a
// peer cannot pile up work past its concurrency budget.
func TestExecCallKillsLeftoverChildren(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	e := &Exec{Argv: script(t, `sleep 300 >/dev/null 2>&1 & echo $! > `+pidFile+`; echo '{}'`), Timeout: 5 * time.Second}
	out, err := e.Call(t.Context(), inv(t, `{}`))
	if err != nil || string(out) != `{}` {
		t.Fatalf("Call = %s, %v", out, err)
	}
	waitGone(t, readPid(t, pidFile))
}

// A child that keeps the backend's stdout open neither holds the call past
// the backend's exit for long nor survives it.
func TestExecCallChildHoldingStdout(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	e := &Exec{Argv: script(t, `sleep 300 & echo $! > `+pidFile+`; echo '{}'`), Timeout: 5 * time.Second}
	out, err := e.Call(t.Context(), inv(t, `{}`))
	if err != nil || string(out) != `{}` {
		t.Fatalf("Call = %s, %v", out, err)
	}
	waitGone(t, readPid(t, pidFile))
}

func TestExecStreamKillsLeftoverChildren(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	e := &Exec{Argv: script(t, `sleep 300 >/dev/null 2>&1 & echo $! > `+pidFile+`; echo '{"n":1}'`), Timeout: 5 * time.Second}
	var got []string
	err := e.Stream(t.Context(), inv(t, `{}`), func(b []byte) error { got = append(got, string(b)); return nil })
	if err != nil || len(got) != 1 {
		t.Fatalf("Stream = %q, %v", got, err)
	}
	waitGone(t, readPid(t, pidFile))
}

// A backend whose output passes the limit is stopped there, not at its
// timeout: a peer's input that makes it print without end costs no more.
func TestExecCallStopsAtTheOutputLimit(t *testing.T) {
	t.Parallel()
	e := &Exec{Argv: script(t, `yes '{"x":1}'`), Timeout: 30 * time.Second, MaxOutput: 1000}
	start := time.Now()
	_, err := e.Call(t.Context(), inv(t, `{}`))
	var f *Failure
	if !errors.As(err, &f) || f.Reason != "output exceeds limit max_output_bytes=1000" {
		t.Fatalf("err = %v, want the output limit", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Call returned after %v", d)
	}
}
