package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFileFlagsAreBounded: a file named by a flag (--input-schema,
// --against) that never ends (/dev/zero), blocks on open (a FIFO) or is
// oversized is refused with exit 2 at once, never read without end.
func TestFileFlagsAreBounded(t *testing.T) {
	dir, _, _ := tlHome(t)
	script := filepath.Join(t.TempDir(), "echo.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncat\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, []byte(`{"description":"`+strings.Repeat("x", 5<<20)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"/dev/zero", fifo, big} {
		for _, a := range [][]string{
			{"expose", "--home", dir, "s", "--exec", script, "--input-schema", file},
			{"audit", "verify", "--home", dir, "--against", file},
		} {
			stderr, code := runBounded(t, 10*time.Second, a...)
			if code != 2 || strings.Count(stderr, "\n") != 1 {
				t.Errorf("%v: exit %d, stderr %q; want 2 and one line", a, code, stderr)
			}
		}
		if stderr, code := runBounded(t, 10*time.Second, "revoke", "--home", dir, file); code != 2 || strings.Count(stderr, "\n") != 1 {
			t.Errorf("revoke %s: exit %d, stderr %q; want 2 and one line", file, code, stderr)
		}
		// decision verify answers 0 or 1, whatever the file.
		if stderr, code := runBounded(t, 10*time.Second, "decision", "verify", file); code != 1 || strings.Count(stderr, "\n") != 1 {
			t.Errorf("decision verify %s: exit %d, stderr %q; want 1 and one line", file, code, stderr)
		}
	}
}
