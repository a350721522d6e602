package backend

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// groupSignals records the signals a procGroup sends and checks, at each
// one sent to a group, that its leader is still this process's child by
// /proc (running, or a zombie not yet reaped): after the reap its id may be
// a stranger's group.
type groupSignals struct {
	mu         sync.Mutex
	groupKills int
	violations []string
}

func (s *groupSignals) signal(pid int, sig syscall.Signal) error {
	if pid < 0 {
		s.mu.Lock()
		s.groupKills++
		if !ourChild(-pid) {
			s.violations = append(s.violations, fmt.Sprintf("signal %v to group %d after its leader was reaped", sig, -pid))
		}
		s.mu.Unlock()
	}
	return syscall.Kill(pid, sig)
}

func (s *groupSignals) check(t *testing.T) int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.violations {
		t.Error(v)
	}
	return s.groupKills
}

// ourChild reports whether pid is a process (a zombie included) whose parent
// is this one.
func ourChild(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:])) // state ppid ...
	return len(f) > 1 && f[1] == strconv.Itoa(os.Getpid())
}

// TestProcGroupSignalledOnlyBeforeReap: a group is killed when its leader
// exits, a child left behind with it, and never signalled once the leader is
// reaped, even when a cancellation races the reap; a kill after it says the
// process is done. Before, a stdio MCP server's group was killed after its
// session's Close had reaped it, and an exec command's cancellation could
// kill its group as Wait reaped it: the id could name a stranger's group by
// then.
func TestProcGroupSignalledOnlyBeforeReap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the check reads /proc; off Linux the group is killed after the reap (procGroup.wait)")
	}
	t.Parallel()
	var sigs groupSignals
	pidfile := filepath.Join(t.TempDir(), "child")
	cmd := exec.Command("/bin/sh", "-c", `sleep 300 & echo $! > `+pidfile+`; exit 0`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := newProcGroup(cmd, sigs.signal)
	if err := g.wait(); err != nil {
		t.Fatal(err)
	}
	if err := g.kill(); !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill after the reap: %v, want os.ErrProcessDone", err)
	}
	child := ReadPID(t, pidfile, 0)
	deadline := time.Now().Add(10 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("the leader's child %d outlived it", child)
		}
		time.Sleep(5 * time.Millisecond) // polling another process's exit
	}
	if n := sigs.check(t); n != 1 {
		t.Fatalf("%d group kills, want 1", n)
	}

	// Kills racing the reap: each reaches the group before it, or none.
	for range 20 {
		cmd := exec.Command("/bin/sh", "-c", "exit 0")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		g := newProcGroup(cmd, sigs.signal)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 10000 && g.kill() == nil; i++ {
				runtime.Gosched()
			}
		}()
		g.wait()
		<-done
	}
	sigs.check(t)
}

// TestMCPGroupSignalledOnlyBeforeReap: a stdio MCP server's group is killed
// when its session ends (closed, or the server killed from outside) only
// while the server is not yet reaped.
func TestMCPGroupSignalledOnlyBeforeReap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the check reads /proc")
	}
	t.Parallel()
	var sigs groupSignals
	m, pidfile := stdioMCP(t, "echo")
	m.signal = sigs.signal
	if _, err := callMCP(t, m, `{"msg":"a"}`); err != nil {
		t.Fatal(err)
	}
	first := ReadPID(t, pidfile, 0)
	syscall.Kill(first, syscall.SIGKILL) // dies on its own, as far as the backend knows
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := callMCP(t, m, `{"msg":"b"}`); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new server after the first was killed")
		}
	}
	m.Close()
	if n := sigs.check(t); n == 0 {
		t.Fatal("no group kill at all")
	}
}
