package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cli is the treaty binary, built for a test that drives it as outside tools
// do: separate processes, exit codes, stderr.
type cli struct {
	t   *testing.T
	bin string
}

func buildCLI(t *testing.T) cli {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "treaty")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if b, err := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return cli{t, bin}
}

// run runs the binary with stdin and returns what it printed and its exit
// code; a run past 30 s is killed and fails the test (a hang).
func (c cli) run(stdin string, a ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, a...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		c.t.Fatalf("treaty %v hung (killed after 30s)", a)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		c.t.Fatalf("treaty %v: %v", a, err)
	}
	return o.String(), e.String(), code
}

// expect runs a and checks the contract of a failure: the documented code,
// one line on stderr that starts with "treaty: " and holds want, and no Go
// panic or stack trace.
func (c cli) expect(code int, want string, stdin string, a ...string) {
	c.t.Helper()
	_, stderr, got := c.run(stdin, a...)
	if got != code || !strings.Contains(stderr, want) || !strings.HasPrefix(stderr, "treaty: ") ||
		strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		c.t.Errorf("treaty %v: exit %d, stderr %q; want %d and one line with %q", a, got, stderr, code, want)
	}
}

// TestProcessErrorPaths drives the built binary through the error paths an
// outside tool meets: a missing home, no node, a stale socket, bad flags,
// unknown peers by nickname and by did:key, oversized stdin, and a second
// node on one home. Each ends with its documented exit code and one line.
func TestProcessErrorPaths(t *testing.T) {
	c := buildCLI(t)
	root := t.TempDir()
	missing := filepath.Join(root, "missing")
	home := filepath.Join(root, "h")
	id, stderr, code := c.run("", "init", "--home", home, "--name", "alice", "--listen", "127.0.0.1:0")
	if code != 0 || strings.Count(id, "\n") != 1 || !strings.HasPrefix(id, "did:key:z") {
		t.Fatalf("init: exit %d, stdout %q, stderr %q; want the peer ID on one line", code, id, stderr)
	}
	other := tlDID(t, 3)

	c.expect(1, "no key at", "", "id", "--home", missing)
	c.expect(1, "no treaty home at "+missing, "", "status", "--home", missing)
	c.expect(1, "no node is running", "", "call", "--home", home, "bob", "echo")
	c.expect(2, "unknown flag", "", "status", "--home", home, "--frobnicate")
	c.expect(2, "invalid argument", "", "status", "--home", home, "--wait", "soon")
	c.expect(2, "unknown command", "", "peer", "remove", "--home", home, "bob")
	c.expect(2, `no peer "bob"`, "", "peer", "rm", "--home", home, "bob")
	c.expect(2, `no peer "`+other+`"`, "", "grant", "--home", home, other, "echo")
	c.expect(2, "did:key", "", "peer", "add", "--home", home, "--name", "bob", "--addr", "127.0.0.1:1", "did:key:z6MkNOPE")
	c.expect(2, "16 MiB", strings.Repeat(" ", 16<<20+1), "call", "--home", home, "bob", "echo", "-")
	c.expect(2, "not valid JSON", "{", "call", "--home", home, "bob", "echo", "-")

	// Output that cannot be written (a full disk) is a failure, not exit 0.
	if full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0); err == nil {
		for _, a := range [][]string{{"id", "--home", home}, {"version"}} {
			cmd := exec.Command(c.bin, a...)
			var e bytes.Buffer
			cmd.Stdout, cmd.Stderr = full, &e
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(e.String(), "write stdout") {
				t.Errorf("treaty %v > /dev/full: %v, stderr %q; want exit 1 naming the write", a, err, e.String())
			}
		}
		full.Close()
	}

	// A node that died without cleaning up leaves its socket: not running.
	run := exec.Command(c.bin, "run", "--home", home)
	var runErr bytes.Buffer
	run.Stderr = &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer run.Process.Kill()
	if out, stderr, code := c.run("", "status", "--home", home, "--wait", "20s"); code != 0 || !strings.HasPrefix(out, "up alice ") {
		t.Fatalf("status --wait: exit %d, %q %q\nnode: %s", code, out, stderr, runErr.String())
	}
	c.expect(1, "already running", "", "run", "--home", home)
	c.expect(3, "unknown peer", "", "call", "--home", home, "bob", "echo")
	c.expect(3, "not in the peer book", "", "call", "--home", home, other, "echo")
	if err := run.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	run.Wait()
	if _, err := os.Stat(filepath.Join(home, "treaty.sock")); err != nil {
		t.Fatalf("the killed node left no socket to test with: %v", err)
	}
	c.expect(1, "no node is running", "", "status", "--home", home)
	c.expect(1, "no node is running", "", "caps", "--home", home, "bob")

	// A node starts again over the stale socket.
	again := exec.Command(c.bin, "run", "--home", home)
	if err := again.Start(); err != nil {
		t.Fatal(err)
	}
	defer again.Process.Kill()
	if out, stderr, code := c.run("", "status", "--home", home, "--wait", "20s"); code != 0 {
		t.Fatalf("status after a restart over a stale socket: exit %d, %q %q", code, out, stderr)
	}
	again.Process.Signal(syscall.SIGTERM)
	if err := again.Wait(); err != nil {
		t.Fatalf("run after SIGTERM: %v; want exit 0", err)
	}
	if _, err := os.Stat(filepath.Join(home, "treaty.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a node stopped by SIGTERM left its socket: %v", err)
	}
}
