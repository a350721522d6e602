// Package testnet starts real treaty nodes on loopback for integration tests,
// in two ways. A Cluster runs N nodes inside the test process (milliseconds to
// start, a shared settable Clock); Build/Init run separate processes of the real
// binary, for what only a process shows: the CLI contract, exit codes, SIGKILL.
// Nothing is faked either way: each node has its own home, key, TLS port bound
// on 127.0.0.1:0 and local API socket. No port is chosen by closing a listener.
package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/home"
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

// binaryEnv is the environment of the binary's processes. A race-enabled
// binary sleeps a second at exit so that late race reports get printed
// (GORACE atexit_sleep_ms); a race found while the command works is still
// reported and still makes it exit 66, so the tests skip that second.
func binaryEnv() []string {
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return append(os.Environ(), "GORACE="+gorace)
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
	// partners are the nodes Federate paired this one with: they learn its
	// address whenever it starts.
	partners []*Node
}

// Init creates a node's home (not started). The node listens on 127.0.0.1:0;
// Addr is set once Start has read the bound address back.
func Init(t testing.TB, bin, name string) *Node {
	t.Helper()
	n := &Node{Name: name, Home: filepath.Join(t.TempDir(), name), bin: bin}
	out, errOut, code := n.Run(t, "init", "--name", name, "--listen", "127.0.0.1:0")
	if code != 0 {
		t.Fatalf("init %s: exit %d: %s", name, code, errOut)
	}
	n.ID = strings.TrimSpace(out)
	return n
}

// Start runs the node, waits until its local API answers, and reads back the
// address it bound. Nodes federated with it learn that address; the running
// ones have reloaded it when Start returns.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	n.log = &syncBuffer{}
	n.cmd = exec.Command(n.bin, "run", "--home", n.Home)
	n.cmd.Env = binaryEnv()
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() { n.Stop(t) })
	cl := client.New(n.Home)
	Eventually(t, 30*time.Second, func() error {
		select {
		case <-n.done:
			t.Fatalf("node %s exited during start:\n%s", n.Name, n.log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := cl.Status(ctx)
		if err != nil {
			return fmt.Errorf("node %s not up: %w\n%s", n.Name, err, n.log)
		}
		n.Addr = st.Addr
		return nil
	})
	for _, p := range n.partners {
		p.learn(t, n)
	}
}

// running reports whether the node's process is alive.
func (n *Node) running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// PID returns the node's process ID (0 before Start).
func (n *Node) PID() int {
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// learn writes peer's current address into n's peer book, as `treaty peer add`
// does, and waits until n, if running, serves with it. A peer that has not
// started yet is entered at 127.0.0.1:0, which refuses every dial.
func (n *Node) learn(t testing.TB, peer *Node) {
	t.Helper()
	addr := peer.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := home.AddPeer(n.Home, peer.Name, addr, peer.ID); err != nil {
		t.Fatalf("%s: peer add %s: %v", n.Name, peer.Name, err)
	}
	if !n.running() {
		return
	}
	cl := client.New(n.Home)
	Eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		peers, err := cl.Peers(ctx)
		if err != nil {
			return err
		}
		for _, p := range peers {
			if p.ID == peer.ID && p.Addr == addr {
				return nil
			}
		}
		return fmt.Errorf("%s has not reloaded %s at %s", n.Name, peer.Name, addr)
	})
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
	cmd.Env = binaryEnv()
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

// Federate adds each node to the other's peer book. Either may be running or
// not: a node that starts later is entered with its bound address then.
func Federate(t testing.TB, a, b *Node) {
	t.Helper()
	a.partners = append(a.partners, b)
	b.partners = append(b.partners, a)
	a.learn(t, b)
	b.learn(t, a)
}

// Eventually polls f until it returns nil or the deadline passes. The
// verdict is that of an attempt begun after the deadline: an attempt begun
// before it (a call, which takes a second or more under -race on a loaded
// machine) can observe the state from before the change it waits for and
// return after the deadline, which says nothing about the deadline.
func Eventually(t testing.TB, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		begun := time.Now()
		err := f()
		if err == nil {
			return
		}
		if begun.After(deadline) {
			t.Fatalf("not true after %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}
