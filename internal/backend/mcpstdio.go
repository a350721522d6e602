package backend

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/treaty-dev/treaty/internal/mcpbridge/mcpframe"
)

// mcpMessageLimit bounds one message of a stdio MCP server, as an HTTP
// server's answer body is bounded: a result of maxOutput bytes may come both
// as structuredContent and as text, plus the envelope.
func mcpMessageLimit(maxOutput int) int { return 2*maxOutput + 1<<20 }

func messageTooLarge(limit int, err error) *Failure {
	return fail(fmt.Sprintf("mcp server message exceeds limit max_message_bytes=%d", limit), err)
}

// stdioServer is a started MCP server process seen as the reader and writer
// of mcp.IOTransport (mcp.CommandTransport cannot bound a message below
// 16 MiB). Closing the writer ends the process as CommandTransport does:
// stdin closed, then after grace SIGTERM, then SIGKILL to its process group
// (the server is started as a group leader).
type stdioServer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	grace time.Duration
	once  sync.Once
	err   error
}

// startStdio starts cmd and returns the transport over its stdin and
// stdout, with stdout bounded at limit bytes a message (over set past it).
func startStdio(cmd *exec.Cmd, limit int, over *atomic.Bool) (mcp.Transport, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	const grace = time.Second
	if cmd.WaitDelay == 0 {
		// A descendant that left the group can hold stderr open for ever:
		// once the server exits, Wait closes the pipes after this long.
		cmd.WaitDelay = grace
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &stdioServer{cmd: cmd, stdin: stdin, grace: grace}
	// The SDK's own bound stays as a backstop, above ours: it also counts
	// what its decoder read ahead of a message.
	return &mcp.IOTransport{
		Reader:        io.NopCloser(&mcpframe.Reader{R: stdout, Max: limit, Over: over}),
		Writer:        w,
		MaxLineLength: 2*limit + 64<<10,
	}, nil
}

func (s *stdioServer) Write(p []byte) (int, error) { return s.stdin.Write(p) }

// Close closes stdin and waits for the process, signalling it if it lingers.
func (s *stdioServer) Close() error {
	s.once.Do(func() {
		s.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		wait := func() bool {
			t := time.NewTimer(s.grace)
			defer t.Stop()
			select {
			case s.err = <-done:
				return true
			case <-t.C:
				return false
			}
		}
		if wait() {
			return
		}
		s.cmd.Process.Signal(syscall.SIGTERM)
		if wait() {
			return
		}
		// The whole group: a launcher's child holding stderr would keep
		// Wait from returning.
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		if !wait() {
			s.err = errors.New("mcp server did not exit after SIGKILL")
		}
	})
	return s.err
}
