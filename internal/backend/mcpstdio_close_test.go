package backend

import (
	"errors"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestStdioCloseWithAnEscapedStderrHolder: a stdio server that exits when
// its stdin closes, but left a descendant in a session of its own (out of
// reach of the group kill) holding its stderr, is still closed promptly:
// the process is reaped and its pipes closed within the grace, not reported
// as unkillable after three graces with a goroutine and the pipe kept until
// the descendant ends.
func TestStdioCloseWithAnEscapedStderrHolder(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "pid")
	argv := script(t, `setsid sleep 300 & echo $! > `+pidfile+`
cat >/dev/null
`)
	cmd := exec.Command(argv[0])
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = &lockedWriter{w: &limitedBuffer{max: 1 << 10}}
	var over atomic.Bool
	tr, err := startStdio(newProcGroup(cmd, nil), 1<<20, 1<<20, new(atomic.Int32), &over)
	if err != nil {
		t.Fatal(err)
	}
	holder := readPid(t, pidfile)
	t.Cleanup(func() { syscall.Kill(holder, syscall.SIGKILL) })

	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- tr.(*mcp.IOTransport).Writer.Close() }()
	select {
	case err := <-closed:
		if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
			t.Fatalf("close: %v", err)
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Fatalf("close took %v", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("close hangs")
	}
}
