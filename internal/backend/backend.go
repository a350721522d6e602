// Package backend runs a capability for a peer: an exec'd command (once per
// call, or as long-lived workers), a local HTTP endpoint, one tool of a local
// MCP server, one skill of a local A2A agent, or a Go function.
//
// Every backend is bounded in time and output. A failure reaches the peer as a
// short reason (Failure.Reason) and never as the backend's raw stderr or body,
// which may hold local secrets; the detail stays in Failure.Err for local logs.
package backend

import (
	"context"
	"errors"
	"fmt"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/jsonsyntax"
)

// DefaultMaxOutput bounds what a backend may return when no limit is set.
const DefaultMaxOutput = 1 << 20

// Invocation is one run of a capability on behalf of a peer.
type Invocation struct {
	Peer       identity.PublicKey
	Capability string
	Input      []byte // JSON, already verified, authorized and screened
	// CallToken names this call to the node's local API, so that an onward call
	// the backend makes is delegated (carries the signed chain). Exec backends
	// get it as TREATY_CALL, http backends as the Treaty-Call header.
	CallToken string
	// Home is the node's home, given to exec backends as TREATY_HOME so that
	// `treaty call` inside them reaches the same node.
	Home string
}

// Backend answers one call with one JSON value.
type Backend interface {
	Call(ctx context.Context, inv Invocation) ([]byte, error)
}

// Streamer answers one call with a sequence of JSON values. emit must not be
// called after Stream returns; an emit error means the caller went away and the
// streamer should stop.
type Streamer interface {
	Stream(ctx context.Context, inv Invocation, emit func([]byte) error) error
}

// Failure is a backend error. Reason is safe to send to the peer.
type Failure struct {
	Reason string
	Err    error
}

func (f *Failure) Error() string {
	if f.Err != nil {
		return "backend: " + f.Reason + ": " + f.Err.Error()
	}
	return "backend: " + f.Reason
}

func (f *Failure) Unwrap() error { return f.Err }

func fail(reason string, err error) *Failure { return &Failure{Reason: reason, Err: err} }

// Func adapts a Go function to Backend; the embedding API uses it.
type Func func(ctx context.Context, inv Invocation) ([]byte, error)

func (f Func) Call(ctx context.Context, inv Invocation) ([]byte, error) {
	out, err := f(ctx, inv)
	if err != nil {
		var fl *Failure
		if errors.As(err, &fl) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fail("timed out or cancelled", err)
		}
		return nil, fail("handler failed", err)
	}
	if !jsonsyntax.Valid(out) {
		return nil, fail("handler returned invalid JSON", nil)
	}
	return out, nil
}

// StreamFunc adapts a Go function to Streamer.
type StreamFunc func(ctx context.Context, inv Invocation, emit func([]byte) error) error

func (f StreamFunc) Stream(ctx context.Context, inv Invocation, emit func([]byte) error) error {
	err := f(ctx, inv, func(b []byte) error {
		if !jsonsyntax.Valid(b) {
			return fail("handler emitted invalid JSON", nil)
		}
		return emit(b)
	})
	if err != nil {
		var fl *Failure
		if errors.As(err, &fl) {
			return err
		}
		return fail("handler failed", err)
	}
	return nil
}

// limitedBuffer keeps at most max bytes and remembers that it overflowed.
type limitedBuffer struct {
	b        []byte
	max      int
	overflow bool
	full     func() // if set, called once when it overflows
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - len(l.b); room < len(p) {
		l.b = append(l.b, p[:max(room, 0)]...)
		if !l.overflow && l.full != nil {
			l.full()
		}
		l.overflow = true
		return len(p), nil
	}
	l.b = append(l.b, p...)
	return len(p), nil
}

var errOverflow = errors.New("output exceeds limit")

func outputTooLarge(max int) *Failure {
	return fail(fmt.Sprintf("output exceeds limit max_output_bytes=%d", max), errOverflow)
}
