package backend

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestMCPStdioDeadServerReaped: a stdio server that dies on its own (killed,
// crashed) between calls is reaped, not left a zombie until the next call
// or Close, and a new one serves the calls after.
func TestMCPStdioDeadServerReaped(t *testing.T) {
	t.Parallel()
	m, pidfile := stdioMCP(t, "echo")
	if _, err := callMCP(t, m, `{"msg":"a"}`); err != nil {
		t.Fatal(err)
	}
	pid := ReadPID(t, pidfile, 0)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		if errors.Is(err, os.ErrNotExist) {
			break // reaped: a zombie keeps its /proc entry
		}
		if time.Now().After(deadline) {
			st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			t.Fatalf("server %d not reaped after it died: %s", pid, st)
		}
		time.Sleep(10 * time.Millisecond) // polling, not synchronisation
	}
	// A call racing the session's end may still fail; a new server answers.
	for {
		v, err := callMCP(t, m, `{"msg":"b"}`)
		if err == nil {
			if v["msg"] != "b" || int(v["pid"].(float64)) == pid {
				t.Fatalf("after the server died: %v", v)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new server after the old one died: %v", err)
		}
	}
}
