package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorExitCodes: a home that is not there, or a node that is not
// running, fails a check and exits 1 with the fix in the output; a bad flag
// is a usage error.
func TestDoctorExitCodes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "h")
	out, _, code := runTL(t, "doctor", "--home", dir)
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, "treaty init") {
		t.Fatalf("doctor of a missing home: exit %d, %q", code, out)
	}
	mustRun(t, "init", "--home", dir, "--name", "acme", "--listen", "127.0.0.1:0")
	out, _, code = runTL(t, "doctor", "--home", dir)
	if code != 1 || !strings.Contains(out, "No node answers") || !strings.Contains(out, "treaty run") {
		t.Fatalf("doctor of a stopped node: exit %d, %q", code, out)
	}
	if _, _, code := runTL(t, "doctor", "--home", dir, "--timeout", "0s"); code != 2 {
		t.Fatalf("--timeout 0s: exit %d, want 2", code)
	}
}
