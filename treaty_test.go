package treaty_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty"
)

func quiet() treaty.Options {
	return treaty.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func open(t *testing.T, name string) *treaty.Node {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	id, err := treaty.Init(dir, name, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := treaty.Open(t.Context(), dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if n.ID() != id {
		t.Fatalf("ID = %s, Init said %s", n.ID(), id)
	}
	if !strings.HasPrefix(n.Addr(), "127.0.0.1:") || strings.HasSuffix(n.Addr(), ":0") {
		t.Fatalf("Addr = %s, want a bound loopback port", n.Addr())
	}
	return n
}

// TestEmbeddedCall drives the embedding API end to end: two nodes on loopback,
// a Go handler exposed on one and called from the other, refused until granted.
func TestEmbeddedCall(t *testing.T) {
	t.Parallel()
	acme, globex := open(t, "acme"), open(t, "globex")
	if err := acme.AddPeer("globex", globex.Addr(), globex.ID()); err != nil {
		t.Fatal(err)
	}
	if err := globex.AddPeer("acme", acme.Addr(), acme.ID()); err != nil {
		t.Fatal(err)
	}
	var sawPeer string
	err := globex.Expose("echo", "returns its input", func(_ context.Context, peer string, in []byte) ([]byte, error) {
		sawPeer = peer
		return in, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := globex.Expose("Bad Name", "", func(context.Context, string, []byte) ([]byte, error) { return nil, nil }); err == nil {
		t.Fatal("Expose accepted an invalid capability name")
	}
	if err := globex.Expose("nil-handler", "", nil); err == nil {
		t.Fatal("Expose accepted a nil handler")
	}

	_, err = acme.Call(t.Context(), "globex", "echo", []byte(`{"x":1}`))
	var r *treaty.Refusal
	if !errors.As(err, &r) || r.Stage != "policy" || !r.Remote || treaty.ExitCode(err) != 3 {
		t.Fatalf("ungranted call: err = %v, want a remote policy refusal (exit 3)", err)
	}

	if err := globex.Grant("acme", "echo"); err != nil {
		t.Fatal(err)
	}
	out, err := acme.Call(t.Context(), "globex", "echo", []byte(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"x":1}` || sawPeer != acme.ID() {
		t.Fatalf("out = %s, handler saw peer %s; want {\"x\":1} from %s", out, sawPeer, acme.ID())
	}

	_, err = acme.Call(t.Context(), "initech", "echo", []byte(`{}`))
	if !errors.As(err, &r) || r.Stage != "resolve" || treaty.ExitCode(err) != 3 {
		t.Fatalf("call to unknown peer: err = %v, want resolve (exit 3)", err)
	}
	if err := acme.AddPeer("x", "127.0.0.1:1", "did:key:nope"); err == nil {
		t.Fatal("AddPeer accepted a malformed peer ID")
	}
	if err := acme.Grant("nobody", "echo"); err == nil {
		t.Fatal("Grant accepted an unknown peer")
	}
}

// TestOpenFailureReleasesNode: when the federation port is taken, Open fails
// and leaves nothing of the node open: no file in its home, no goroutine.
func TestOpenFailureReleasesNode(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := filepath.Join(t.TempDir(), "busy")
	if _, err := treaty.Init(dir, "busy", taken.Addr().String()); err != nil {
		t.Fatal(err)
	}
	// A first Open and Close warms lazily started runtime goroutines (the
	// SQLite driver's, net's) so that the baseline below is steady.
	if n, err := treaty.Open(t.Context(), dir, quiet()); err == nil {
		n.Close()
		t.Fatal("Open succeeded on a port another listener holds")
	}
	before := runtime.NumGoroutine()

	n, err := treaty.Open(t.Context(), dir, quiet())
	if err == nil {
		n.Close()
		t.Fatal("Open succeeded on a port another listener holds")
	}
	// Close is synchronous, so this holds at once; the deadline only absorbs
	// goroutines of the runtime that finish on their own.
	deadline := time.Now().Add(5 * time.Second)
	for {
		files := openFilesUnder(t, dir)
		g := runtime.NumGoroutine()
		if len(files) == 0 && g <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a failed Open: files still open %v, goroutines %d (before %d)", files, g, before)
		}
		<-time.After(10 * time.Millisecond)
	}
}

// openFilesUnder lists this process's open files inside dir (Linux /proc).
func openFilesUnder(t *testing.T, dir string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd on this system")
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && (strings.HasPrefix(target, dir+"/") || strings.HasPrefix(target, real+"/")) {
			open = append(open, target)
		}
	}
	return open
}
