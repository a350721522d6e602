// Package mcpframe bounds the messages of MCP's stdio transport
// (newline-delimited JSON-RPC) before the SDK buffers them: the SDK's own
// bound is 16 MiB a message, and what is on the other end of a pipe (a local
// MCP server, an agent) may be broken or hostile.
package mcpframe

import (
	"errors"
	"io"
	"sync/atomic"
)

// ErrTooLarge is what Reader returns once a message passes its bound.
var ErrTooLarge = errors.New("mcp message exceeds limit")

// Reader passes on R's bytes and fails with ErrTooLarge (for good: every later
// Read fails too) once one message passes Max bytes. A message ends when its
// top-level object or array closes: counting lines instead would let a sender
// split one huge message over short lines. Bytes between messages count
// towards the next. Over, when set, is set before the error is returned, so
// a call failing because its session ended can tell why.
type Reader struct {
	R    io.Reader
	Max  int
	Over *atomic.Bool // optional
	// MaxNow, when set, is asked at every Read (once R's bytes are in) and
	// overrides Max: a reader that expects a larger message for a while (a
	// tools/list answer) raises the bound for that while. A message being
	// read when it falls is held to the lower bound.
	MaxNow func() int

	over  bool
	run   int // bytes of the message being read
	depth int
	str   bool // inside a string
	esc   bool // after a backslash inside a string
}

func (b *Reader) Read(p []byte) (int, error) {
	if b.over {
		return 0, ErrTooLarge
	}
	n, err := b.R.Read(p)
	// Asked once R has answered, not before: a Read waits on an idle
	// server, and the bound may be raised during the wait for the very
	// message that ends it.
	limit := b.Max
	if b.MaxNow != nil {
		limit = b.MaxNow()
	}
	for i, c := range p[:n] {
		if b.run >= limit {
			b.over = true
			if b.Over != nil {
				b.Over.Store(true)
			}
			return i, ErrTooLarge
		}
		b.run++
		switch {
		case b.str:
			switch {
			case b.esc:
				b.esc = false
			case c == '\\':
				b.esc = true
			case c == '"':
				b.str = false
			}
		case c == '"':
			b.str = true
		case c == '{' || c == '[':
			b.depth++
		case c == '}' || c == ']':
			b.depth--
			if b.depth <= 0 {
				b.depth, b.run = 0, 0
			}
		}
	}
	return n, err
}
