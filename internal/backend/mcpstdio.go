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

// MaxListPage bounds one tools/list answer (a page) of an MCP server, stdio
// or HTTP, where the message bound of a call's answer is lower: a server with
// many tools, or long descriptions and schemas, lists more than a result of
// MaxOutput, and Describe keeps only the configured tool's description and
// schema of it. It is the MCP Go SDK's own bound on a stdio message; the
// node holds a page this large only while Describe reads it, at load.
const MaxListPage = 16 << 20

// listPageLimit bounds a tools/list page: MaxListPage, or a message's bound
// when that is larger.
func listPageLimit(maxOutput int) int { return max(MaxListPage, mcpMessageLimit(maxOutput)) }

func messageTooLarge(limit int, err error) *Failure {
	return fail(fmt.Sprintf("mcp server message exceeds limit max_message_bytes=%d", limit), err)
}

func listPageTooLarge(limit int, err error) *Failure {
	return fail(fmt.Sprintf("mcp server tools/list page exceeds limit max_list_page_bytes=%d", limit), err)
}

// stdioServer is a started MCP server process seen as the reader and writer
// of mcp.IOTransport (mcp.CommandTransport cannot bound a message below
// 16 MiB). Closing the writer ends the process as CommandTransport does:
// stdin closed, then after grace SIGTERM, then SIGKILL to its process group
// (the server is started as a group leader).
type stdioServer struct {
	group *procGroup
	cmd   *exec.Cmd
	stdin io.WriteCloser
	grace time.Duration
	once  sync.Once
	err   error
}

// startStdio starts cmd and returns the transport over its stdin and
// stdout, with stdout bounded at limit bytes a message, listLimit while
// listing is above zero (over set past it).
func startStdio(group *procGroup, limit, listLimit int, listing *atomic.Int32, over *atomic.Bool) (mcp.Transport, error) {
	cmd := group.cmd
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
	w := &stdioServer{group: group, cmd: cmd, stdin: stdin, grace: grace}
	// Which message answers a tools/list cannot be told before it is
	// decoded: while one is in flight every message may be a page long
	// (a call's answer is still held to MaxOutput once decoded).
	maxNow := func() int {
		if listing.Load() > 0 {
			return listLimit
		}
		return limit
	}
	// The SDK's own bound stays as a backstop, above ours: it also counts
	// what its decoder read ahead of a message.
	return &mcp.IOTransport{
		Reader:        io.NopCloser(&mcpframe.Reader{R: stdout, Max: limit, MaxNow: maxNow, Over: over}),
		Writer:        w,
		MaxLineLength: 2*max(limit, listLimit) + 64<<10,
	}, nil
}

func (s *stdioServer) Write(p []byte) (int, error) { return s.stdin.Write(p) }

// Close closes stdin and waits for the process, signalling it if it lingers;
// once it has exited, what is left of its group is killed (procGroup.wait).
func (s *stdioServer) Close() error {
	s.once.Do(func() {
		s.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- s.group.wait() }()
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
		// Wait from returning. The leader may be reaped as the timer
		// fired: procGroup then leaves its id alone.
		s.group.kill()
		if !wait() {
			s.err = errors.New("mcp server did not exit after SIGKILL")
		}
	})
	return s.err
}
