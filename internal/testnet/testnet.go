// Package testnet starts real treaty nodes, as separate processes of the real
// binary on loopback, for integration tests. Nothing is faked: each node has its
// own home, key, TLS port and local API socket.
package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Build compiles cmd/treaty into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "treaty")
	cmd := exec.CommandContext(ctx, "go", "build", "-race", "-o", bin, "github.com/treaty-dev/treaty/cmd/treaty")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testnet: build: %w\n%s", err, out)
	}
	return bin, nil
}

// Node is one treaty process.
type Node struct {
	Name string
	Home string
	ID   string
	Addr string
	bin  string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// syncBuffer is a bytes.Buffer safe for the process's writer and a test reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Init creates a node's home (not started).
func Init(t testing.TB, bin, name string) *Node {
	t.Helper()
	n := &Node{Name: name, Home: filepath.Join(t.TempDir(), name), Addr: FreeAddr(t), bin: bin}
	out, errOut, code := n.Run(t, "init", "--name", name, "--listen", n.Addr)
	if code != 0 {
		t.Fatalf("init %s: exit %d: %s", name, code, errOut)
	}
	n.ID = strings.TrimSpace(out)
	return n
}

// Start runs the node and waits until `treaty status` succeeds.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	n.log = &syncBuffer{}
	n.cmd = exec.Command(n.bin, "run", "--home", n.Home)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() { n.Stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, _, code := n.Run(t, "status"); code == 0 {
			return
		}
		select {
		case <-n.done:
			t.Fatalf("node %s exited during start:\n%s", n.Name, n.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not up after 30s:\n%s", n.Name, n.log)
		}
	}
}

// Stop terminates the node and waits for it.
func (n *Node) Stop(t testing.TB) {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
}

// Kill sends SIGKILL and waits for the process to die: no clean shutdown.
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Kill()
	<-n.done
}

// Log returns what the node printed so far (for failure messages).
func (n *Node) Log() string {
	if n.log == nil {
		return ""
	}
	return n.log.String()
}

// Run runs a treaty command against this node's home.
func (n *Node) Run(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return n.RunInput(t, nil, args...)
}

// RunInput is Run with stdin.
func (n *Node) RunInput(t testing.TB, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.bin, append(args, "--home", n.Home)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// Must runs a command and fails the test unless it exits 0.
func (n *Node) Must(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, code := n.Run(t, args...)
	if code != 0 {
		t.Fatalf("%s: treaty %v: exit %d: %s", n.Name, args, code, errOut)
	}
	return out
}

// Federate adds each node to the other's peer book.
func Federate(t testing.TB, a, b *Node) {
	t.Helper()
	a.Must(t, "peer", "add", "--name", b.Name, "--addr", b.Addr, b.ID)
	b.Must(t, "peer", "add", "--name", a.Name, "--addr", a.Addr, a.ID)
}

// Eventually polls f until it returns nil or the deadline passes.
func Eventually(t testing.TB, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
