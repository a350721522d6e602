package backend

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test MCP server (./mcptest), built once on first use, without -race:
// it stands for a real tool server, a separate process.
var (
	mcpOnce   sync.Once
	mcpDir    string
	mcpBin    string
	mcpErr    error
	mcpDirErr error
)

// MCPTestServer returns the path of the built test MCP server.
func MCPTestServer(t testing.TB) string {
	t.Helper()
	mcpOnce.Do(func() {
		if mcpDir, mcpDirErr = os.MkdirTemp("", "treaty-mcptest-"); mcpDirErr != nil {
			mcpErr = mcpDirErr
			return
		}
		out := filepath.Join(mcpDir, "mcptest")
		b, err := exec.Command("go", "build", "-o", out, "github.com/treaty-dev/treaty/internal/backend/mcptest").CombinedOutput()
		if err != nil {
			mcpErr = fmt.Errorf("building mcptest: %v\n%s", err, b)
			return
		}
		mcpBin = out
	})
	if mcpErr != nil {
		t.Fatal(mcpErr)
	}
	return mcpBin
}

func removeMCPServer() {
	if mcpDir != "" {
		os.RemoveAll(mcpDir)
	}
}

// ReadPID polls path until the server wrote a pid other than not.
func ReadPID(t testing.TB, path string, not int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != not {
				return pid
			}
		}
		time.Sleep(5 * time.Millisecond) // polling a file another process writes
	}
	t.Fatalf("no new pid in %s", path)
	return 0
}

func stdioMCP(t *testing.T, tool string) (*MCP, string) {
	t.Helper()
	pidfile := filepath.Join(t.TempDir(), "pid")
	m := &MCP{Argv: []string{MCPTestServer(t), "-pidfile", pidfile}, Tool: tool, Timeout: 10 * time.Second}
	t.Cleanup(func() { m.Close() })
	return m, pidfile
}

func callMCP(t *testing.T, m *MCP, input string) (map[string]any, error) {
	t.Helper()
	out, err := m.Call(t.Context(), Invocation{Capability: "c", Input: []byte(input), CallToken: "tok", Home: "/h"})
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("output %s: %v", out, err)
	}
	return v, nil
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestMCPDescribeAndCall(t *testing.T) {
	m, _ := stdioMCP(t, "echo")
	desc, schema, err := m.Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if desc != "echoes msg" {
		t.Errorf("description %q", desc)
	}
	props, _ := schema["properties"].(map[string]any)
	if _, ok := props["msg"]; !ok || schema["type"] != "object" {
		t.Errorf("schema %v lacks properties.msg", schema)
	}
	v, err := callMCP(t, m, `{"msg":"hi"}`)
	if err != nil {
		t.Fatal(err)
	}
	if v["msg"] != "hi" {
		t.Errorf("output %v", v)
	}
	// The server sees nothing of the call: no peer, call token or home.
	if env, _ := v["treaty_env"].([]any); len(env) != 0 {
		t.Errorf("server saw %v", env)
	}
	if _, err := callMCP(t, m, `[1]`); err == nil {
		t.Error("a non-object input reached the tool")
	}
}

func TestMCPResultShapes(t *testing.T) {
	for tool, want := range map[string]string{"text": `{"text":"hello"}`, "jsontext": `{"a":1}`} {
		m, _ := stdioMCP(t, tool)
		out, err := m.Call(t.Context(), Invocation{Input: []byte(`{}`)})
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		if string(out) != want {
			t.Errorf("%s: %s, want %s", tool, out, want)
		}
	}
	m, _ := stdioMCP(t, "fail")
	_, err := m.Call(t.Context(), Invocation{Input: []byte(`{}`)})
	var f *Failure
	if !errors.As(err, &f) || f.Reason != "tool reported an error" {
		t.Fatalf("isError: %v", err)
	}
	if strings.Contains(f.Reason, "secret") || !strings.Contains(f.Err.Error(), "secret detail") {
		t.Errorf("the tool's text belongs in Err only: %q / %v", f.Reason, f.Err)
	}
	m, _ = stdioMCP(t, "nosuch")
	if _, _, err := m.Describe(t.Context()); err == nil || !strings.Contains(err.Error(), `no tool "nosuch"`) {
		t.Errorf("missing tool: %v", err)
	}
}

func TestMCPConcurrentCallsShareOneServer(t *testing.T) {
	m, pidfile := stdioMCP(t, "echo")
	var wg sync.WaitGroup
	pids := make([]float64, 16)
	errs := make([]error, 16)
	for i := range 16 {
		wg.Go(func() {
			v, err := callMCP(t, m, fmt.Sprintf(`{"msg":"%d"}`, i))
			errs[i] = err
			if err == nil {
				pids[i], _ = v["pid"].(float64)
			}
		})
	}
	wg.Wait()
	pid := ReadPID(t, pidfile, 0)
	for i := range 16 {
		if errs[i] != nil || int(pids[i]) != pid {
			t.Fatalf("call %d: pid %v err %v, want one server %d", i, pids[i], errs[i], pid)
		}
	}
}

func TestMCPRestartsAKilledServer(t *testing.T) {
	m, pidfile := stdioMCP(t, "echo")
	if _, err := callMCP(t, m, `{"msg":"a"}`); err != nil {
		t.Fatal(err)
	}
	first := ReadPID(t, pidfile, 0)
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Calls in flight or inside the backoff may fail; within the deadline one
	// must succeed on a new server.
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := callMCP(t, m, `{"msg":"b"}`)
		if err == nil {
			if int(v["pid"].(float64)) == first {
				t.Fatal("answered by the killed server")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no restart: %v", err)
		}
	}
	second := ReadPID(t, pidfile, first)
	if second == first || !alive(second) {
		t.Errorf("restarted server %d", second)
	}
}

func TestMCPBackoffAfterRepeatedDeaths(t *testing.T) {
	m := &MCP{Argv: []string{"/nonexistent/mcp-server"}, Tool: "x", Timeout: 5 * time.Second}
	defer m.Close()
	var reasons []string
	for range 3 {
		_, err := m.Call(t.Context(), Invocation{Input: []byte(`{}`)})
		var f *Failure
		if !errors.As(err, &f) {
			t.Fatalf("%v", err)
		}
		reasons = append(reasons, f.Reason)
	}
	// The first failure starts at once; the next attempt waits out the backoff.
	if reasons[0] != "could not start mcp server" || !strings.HasPrefix(reasons[2], "mcp server restarting") {
		t.Errorf("reasons %q", reasons)
	}
}

func TestMCPStopsWhenIdleAndOnClose(t *testing.T) {
	m, pidfile := stdioMCP(t, "echo")
	m.idleAfter = 50 * time.Millisecond
	if _, err := callMCP(t, m, `{"msg":"a"}`); err != nil {
		t.Fatal(err)
	}
	pid := ReadPID(t, pidfile, 0)
	waitGone(t, pid)
	// The next call starts it again.
	if _, err := callMCP(t, m, `{"msg":"b"}`); err != nil {
		t.Fatal(err)
	}
	m2, pidfile2 := stdioMCP(t, "echo")
	if _, err := callMCP(t, m2, `{"msg":"a"}`); err != nil {
		t.Fatal(err)
	}
	pid2 := ReadPID(t, pidfile2, 0)
	if err := m2.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	waitGone(t, pid2)
	if _, err := callMCP(t, m2, `{}`); err == nil {
		t.Error("a call after Close succeeded")
	}
}

// httpServer runs the test server on streamable HTTP at addr and returns
// its process and the address it bound.
func httpServer(t *testing.T, addr string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(MCPTestServer(t), "-http", addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("server on %s: %v", addr, err)
	}
	return cmd, strings.TrimSpace(line)
}

func TestMCPStreamableHTTP(t *testing.T) {
	cmd, addr := httpServer(t, "127.0.0.1:0")
	m := &MCP{URL: "http://" + addr, Tool: "echo", Timeout: 10 * time.Second}
	defer m.Close()
	v, err := callMCP(t, m, `{"msg":"over http"}`)
	if err != nil {
		t.Fatal(err)
	}
	if v["msg"] != "over http" || int(v["pid"].(float64)) != cmd.Process.Pid {
		t.Errorf("output %v", v)
	}

	// The server restarts on the same address and forgets the session: the
	// backend opens a new one.
	cmd.Process.Kill()
	cmd.Wait()
	cmd2, _ := httpServer(t, addr)
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := callMCP(t, m, `{"msg":"again"}`)
		if err == nil {
			if int(v["pid"].(float64)) != cmd2.Process.Pid {
				t.Fatalf("answered by %v, want %d", v["pid"], cmd2.Process.Pid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new session: %v", err)
		}
	}
}

func TestMCPBoundsTimeAndOutput(t *testing.T) {
	m, _ := stdioMCP(t, "big")
	m.MaxOutput = 1000
	_, err := m.Call(t.Context(), Invocation{Input: []byte(`{}`)})
	var f *Failure
	if !errors.As(err, &f) || !strings.HasPrefix(f.Reason, "output exceeds limit") {
		t.Errorf("big: %v", err)
	}

	// The session is opened by a quick call first, with time to spare on a
	// loaded machine: the short timeout below is for the hanging call only.
	m, pidfile := stdioMCP(t, "echo")
	if _, err := callMCP(t, m, `{"msg":"open"}`); err != nil {
		t.Fatal(err)
	}
	pid := ReadPID(t, pidfile, 0)
	m.Tool = "hang"
	m.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err = m.Call(t.Context(), Invocation{Input: []byte(`{}`)})
	if !errors.As(err, &f) || !strings.HasPrefix(f.Reason, "timed out after") || time.Since(start) > 5*time.Second {
		t.Fatalf("hang: %v after %v", err, time.Since(start))
	}
	// The session survives a timed-out call: the same server answers the next.
	m.Tool = "echo"
	m.Timeout = 10 * time.Second
	v, err := callMCP(t, m, `{"msg":"still here"}`)
	if err != nil || int(v["pid"].(float64)) != pid {
		t.Fatalf("after a timeout: %v %v (server %d)", v, err, pid)
	}
}
