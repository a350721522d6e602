package main

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/api"
)

// runBounded runs the CLI in-process and fails the test if it has not
// returned within limit (a `treaty run` that started instead of refusing).
func runBounded(t *testing.T, limit time.Duration, a ...string) (stderr string, code int) {
	t.Helper()
	type result struct {
		stderr string
		code   int
	}
	done := make(chan result, 1)
	go func() {
		_, e, c := runTL(t, a...)
		done <- result{e, c}
	}()
	select {
	case r := <-done:
		return r.stderr, r.code
	case <-time.After(limit):
		t.Fatalf("%v still running after %v", a, limit)
		return "", 0
	}
}

// TestRunRefusesBeforeStarting: a second `treaty run` on a home whose node is
// up, and a home whose socket path the system cannot bind, are refused with
// one clear line before the node opens anything.
func TestRunRefusesBeforeStarting(t *testing.T) {
	dir, _, _ := tlHome(t)
	ln, err := net.Listen("unix", filepath.Join(dir, api.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"did:key:z6Mkx","name":"alice","addr":"127.0.0.1:7420"}`))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	stderr, code := runBounded(t, 20*time.Second, "run", "--home", dir)
	if code != 1 || !strings.Contains(stderr, "already running") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("run with a node up: exit %d, stderr %q; want 1 and one line saying a node is already running", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "audit.db")); err == nil {
		t.Fatal("the refused run opened the home's audit log")
	}

	long := filepath.Join(t.TempDir(), strings.Repeat("x", 110))
	out, stderr, code := runTL(t, "init", "--home", long, "--name", "longhome", "--listen", "127.0.0.1:0")
	if code != 0 || !strings.HasPrefix(out, "did:key:") || !strings.Contains(stderr, "warning: 'treaty run' cannot serve") {
		t.Fatalf("init of a home with a too-long socket path: exit %d, out %q, stderr %q; want the ID and a warning", code, out, stderr)
	}
	short := filepath.Join(t.TempDir(), "h")
	if _, stderr, code := runTL(t, "init", "--home", short, "--name", "shorthome"); code != 0 || stderr != "" {
		t.Fatalf("init: exit %d, stderr %q; want no warning", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(short, api.SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("init's trial of the socket left it behind: %v", err)
	}
	stderr, code = runBounded(t, 20*time.Second, "run", "--home", long)
	if code != 1 || !strings.Contains(stderr, "longer than") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("run on a home with a too-long socket path: exit %d, stderr %q", code, stderr)
	}
}
