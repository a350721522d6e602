package main

import (
	"context"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// stdioDrainLimit bounds how long treaty mcp keeps answering once its stdin
// has ended: long enough for a call in flight (a peer's call_timeout is 30 s
// by default), never forever.
const stdioDrainLimit = 60 * time.Second

// drainingTransport is the stdio transport whose end of input waits for the
// answers to the requests already read. The SDK closes the session as soon as
// a read fails, so a client that writes its requests and closes stdin (a
// script, a CI step) would lose the answers still being computed.
type drainingTransport struct{ mcp.Transport }

func (t drainingTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &drainingConn{Connection: c, idle: make(chan struct{}, 1)}, nil
}

type drainingConn struct {
	mcp.Connection
	mu      sync.Mutex
	pending int           // requests read and not yet answered
	idle    chan struct{} // signalled when pending drops to 0
}

func (c *drainingConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := c.Connection.Read(ctx)
	if err != nil {
		c.drain(ctx)
		return nil, err
	}
	if r, ok := msg.(*jsonrpc.Request); ok && r.IsCall() {
		c.mu.Lock()
		c.pending++
		c.mu.Unlock()
	}
	return msg, nil
}

func (c *drainingConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	err := c.Connection.Write(ctx, msg)
	if _, ok := msg.(*jsonrpc.Response); ok {
		c.mu.Lock()
		if c.pending > 0 {
			if c.pending--; c.pending == 0 {
				select {
				case c.idle <- struct{}{}:
				default:
				}
			}
		}
		c.mu.Unlock()
	}
	return err
}

// drain waits until every request read has been answered, ctx ends or
// stdioDrainLimit passes.
func (c *drainingConn) drain(ctx context.Context) {
	t := time.NewTimer(stdioDrainLimit)
	defer t.Stop()
	for {
		c.mu.Lock()
		n := c.pending
		c.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-c.idle:
		case <-ctx.Done():
			return
		case <-t.C:
			return
		}
	}
}
