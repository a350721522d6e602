package raftengine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// The forwarding stream: a follower sends proposals and read-index requests
// to the leader on one connection, frames tagged with an id, and the leader
// answers each when it is done, in any order. Frames are a u32 length then
// the payload; a request payload is kind (u8), id (u64), body; a response
// payload is status (u8), id (u64), body.
const (
	kindPropose byte = 1 // body: the request bytes
	kindRead    byte = 2 // body: empty
	kindRecords byte = 3 // body: from u64, to u64; any member answers from its records (catchup.go)

	statusOK      byte = 0 // propose: index u64, time i64, result JSON; read: index u64
	statusRetry   byte = 1 // not the leader; nothing was appended
	statusUnknown byte = 2 // body: reason; the entry may still commit
	statusRefused byte = 3 // body: reason; nothing was appended
	statusBadSig  byte = 4 // body: reason; the signature did not verify, nothing was appended
	statusGate    byte = 5 // body: stage, 0, reason; the leader's trust or budget gate refused it, nothing was appended

	frameHeader = 1 + 8
	// maxRequestFrame bounds a request payload; maxResponseFrame a response
	// (a result can list many motions closed at once).
	maxRequestFrame  = frameHeader + fsm.MaxRequestSize
	maxResponseFrame = 4 << 20
	// maxInFlight bounds the requests one forwarding connection may have
	// pending at the leader; the leader stops reading beyond it.
	maxInFlight = 1024
	// ioTimeout bounds writing one frame; forwardTimeout bounds how long the
	// leader works on one forwarded request.
	ioTimeout      = 5 * time.Second
	forwardTimeout = 30 * time.Second
)

func writeFrame(w io.Writer, tag byte, id uint64, body []byte) error {
	b := make([]byte, 0, 4+frameHeader+len(body))
	b = binary.BigEndian.AppendUint32(b, uint32(frameHeader+len(body)))
	b = append(b, tag)
	b = binary.BigEndian.AppendUint64(b, id)
	b = append(b, body...)
	_, err := w.Write(b)
	return err
}

func readFrame(r io.Reader, max int) (tag byte, id uint64, body []byte, err error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n < frameHeader || uint64(n) > uint64(max) {
		return 0, 0, nil, fmt.Errorf("raftengine: forward frame of %d bytes, want %d..%d", n, frameHeader, max)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, 0, nil, err
	}
	return p[0], binary.BigEndian.Uint64(p[1:frameHeader]), p[frameHeader:], nil
}

// forwarder is both ends of the forwarding stream.
type forwarder struct {
	e *Engine

	mu     sync.Mutex
	conns  map[identity.PublicKey]*fwdConn
	closed bool
}

func newForwarder(e *Engine) *forwarder {
	return &forwarder{e: e, conns: map[identity.PublicKey]*fwdConn{}}
}

// fwdConn is a follower's connection to one leader.
type fwdConn struct {
	f    *forwarder
	peer identity.PublicKey
	c    net.Conn

	wmu sync.Mutex // orders building and writing requests

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan fwdResp
	dead    error
}

type fwdResp struct {
	status byte
	body   []byte
	err    error
}

func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	conns := f.conns
	f.conns = map[identity.PublicKey]*fwdConn{}
	f.mu.Unlock()
	for _, fc := range conns {
		fc.kill(consensus.ErrClosed)
	}
}

// conn returns the live connection to leader, dialling one if needed.
func (f *forwarder) conn(ctx context.Context, leader identity.PublicKey) (*fwdConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, consensus.ErrClosed
	}
	if fc := f.conns[leader]; fc != nil {
		return fc, nil
	}
	dctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	c, err := f.e.mux.dial(dctx, leader, streamForward)
	if err != nil {
		return nil, err
	}
	fc := &fwdConn{f: f, peer: leader, c: c, pending: map[uint64]chan fwdResp{}}
	f.conns[leader] = fc
	f.e.wg.Add(1)
	go fc.readLoop()
	return fc, nil
}

func (fc *fwdConn) readLoop() {
	defer fc.f.e.wg.Done()
	for {
		status, id, body, err := readFrame(fc.c, maxResponseFrame)
		if err != nil {
			fc.kill(err)
			return
		}
		fc.mu.Lock()
		ch := fc.pending[id]
		delete(fc.pending, id)
		fc.mu.Unlock()
		if ch != nil {
			ch <- fwdResp{status: status, body: body}
		}
	}
}

// kill fails every pending request and forgets the connection.
func (fc *fwdConn) kill(err error) {
	fc.mu.Lock()
	if fc.dead == nil {
		fc.dead = err
	}
	pending := fc.pending
	fc.pending = map[uint64]chan fwdResp{}
	fc.mu.Unlock()
	_ = fc.c.Close()
	for _, ch := range pending {
		ch <- fwdResp{err: fmt.Errorf("forward to %s: connection lost: %w", fc.peer.Short(), err)}
	}
	fc.f.mu.Lock()
	if fc.f.conns[fc.peer] == fc {
		delete(fc.f.conns, fc.peer)
	}
	fc.f.mu.Unlock()
}

// call sends one request and waits for its answer. sent reports whether the
// request may have reached the leader.
func (f *forwarder) call(ctx context.Context, leader identity.PublicKey, kind byte, build func() ([]byte, error)) (resp fwdResp, body []byte, sent bool, err error) {
	fc, err := f.conn(ctx, leader)
	if err != nil {
		return fwdResp{}, nil, false, err
	}
	ch := make(chan fwdResp, 1)
	fc.wmu.Lock()
	body, err = build()
	if err != nil {
		fc.wmu.Unlock()
		return fwdResp{}, nil, false, err
	}
	fc.mu.Lock()
	if fc.dead != nil {
		fc.mu.Unlock()
		fc.wmu.Unlock()
		return fwdResp{}, nil, false, fc.dead
	}
	fc.next++
	id := fc.next
	fc.pending[id] = ch
	fc.mu.Unlock()
	_ = fc.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	err = writeFrame(fc.c, kind, id, body)
	fc.wmu.Unlock()
	if err != nil {
		fc.kill(err)
	}
	select {
	case r := <-ch:
		return r, body, true, r.err
	case <-ctx.Done():
		fc.mu.Lock()
		delete(fc.pending, id)
		fc.mu.Unlock()
		return fwdResp{}, body, true, ctx.Err()
	case <-f.e.done:
		return fwdResp{}, body, true, consensus.ErrClosed
	}
}

// propose forwards a proposal to leader and waits until the entry is applied
// here. retry reports that nothing was appended and another attempt is safe.
func (f *forwarder) propose(ctx context.Context, leader identity.PublicKey, build func() ([]byte, error)) (a consensus.Applied, retry bool, err error) {
	var buildErr error
	check := func() ([]byte, error) {
		req, err := build()
		if err == nil && len(req) > fsm.MaxRequestSize {
			err = fmt.Errorf("request of %d bytes, limit %d", len(req), fsm.MaxRequestSize)
		}
		buildErr = err
		return req, err
	}
	r, req, sent, err := f.call(ctx, leader, kindPropose, check)
	switch {
	case buildErr != nil:
		return a, false, fmt.Errorf("raftengine: propose: %w", buildErr)
	case err != nil && !sent:
		return a, true, err // no connection to the leader: it may be gone
	case errors.Is(err, consensus.ErrClosed):
		return a, false, fmt.Errorf("raftengine: propose: %w (%w)", consensus.ErrClosed, errUnknown)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return a, false, fmt.Errorf("raftengine: propose: %w (%w)", err, errUnknown)
	case err != nil:
		return a, false, fmt.Errorf("raftengine: propose: %w: %w (%w)", consensus.ErrNoQuorum, err, errUnknown)
	}
	switch r.status {
	case statusOK:
	case statusRetry:
		return a, true, nil
	case statusRefused:
		return a, false, fmt.Errorf("raftengine: propose: leader refused: %s", r.body)
	case statusBadSig:
		return a, false, f.e.badSignature(string(r.body))
	case statusGate:
		return a, false, gateRefusal(leader, r.body)
	default:
		return a, false, fmt.Errorf("raftengine: propose: %w: leader %s: %s (%w)", consensus.ErrNoQuorum, leader.Short(), r.body, errUnknown)
	}
	if len(r.body) < 16 {
		return a, false, fmt.Errorf("raftengine: propose: %w: short answer from the leader (%w)", consensus.ErrNoQuorum, errUnknown)
	}
	a.Index = binary.BigEndian.Uint64(r.body)
	a.Entry = fsm.Entry{Time: int64(binary.BigEndian.Uint64(r.body[8:])), Request: req, LeaderVerified: true}
	if err := json.Unmarshal(r.body[16:], &a.Result); err != nil {
		return consensus.Applied{}, false, fmt.Errorf("raftengine: propose: %w: bad result from the leader: %w (%w)", consensus.ErrNoQuorum, err, errUnknown)
	}
	if err := f.e.waitApplied(ctx, a.Index); err != nil {
		// Committed, so not "no effect": the caller must not take a closed
		// engine or a deadline here for a request that was never made.
		return consensus.Applied{}, false, fmt.Errorf("raftengine: propose: committed at index %d, not yet applied here: %w (%w)", a.Index, err, errUnknown)
	}
	return a, false, nil
}

// readIndex asks leader for a read index.
func (f *forwarder) readIndex(ctx context.Context, leader identity.PublicKey) (uint64, bool, error) {
	r, _, sent, err := f.call(ctx, leader, kindRead, func() ([]byte, error) { return nil, nil })
	switch {
	case err != nil && !sent:
		return 0, true, nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, consensus.ErrClosed):
		return 0, false, err
	case err != nil:
		return 0, true, nil // a read has no effect: asking again is safe
	}
	switch r.status {
	case statusOK:
		if len(r.body) != 8 {
			return 0, false, fmt.Errorf("%w: bad read index from the leader", consensus.ErrNoQuorum)
		}
		return binary.BigEndian.Uint64(r.body), false, nil
	case statusRetry, statusUnknown:
		return 0, true, nil
	default:
		return 0, false, fmt.Errorf("%w: leader: %s", consensus.ErrNoQuorum, r.body)
	}
}

// serve is the leader's end of one forwarding connection. Requests are
// enqueued in the order they arrive, so one follower's submissions keep their
// order; their answers go back as each completes.
func (f *forwarder) serve(c net.Conn, peer identity.PublicKey) {
	e := f.e
	var hwg sync.WaitGroup
	defer hwg.Wait()
	defer c.Close()
	var wmu sync.Mutex
	respond := func(id uint64, status byte, body []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = c.SetWriteDeadline(time.Now().Add(ioTimeout))
		if err := writeFrame(c, status, id, body); err != nil {
			_ = c.Close()
		}
	}
	sem := make(chan struct{}, maxInFlight)
	for {
		kind, id, body, err := readFrame(c, maxRequestFrame)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				e.log.Debug("raftengine: forwarding stream ended", "peer", peer.Short(), "err", err)
			}
			return
		}
		select {
		case sem <- struct{}{}:
		case <-e.done:
			return
		}
		hwg.Add(1)
		done := func() { <-sem; hwg.Done() }
		switch kind {
		case kindPropose:
			if len(body) > fsm.MaxRequestSize {
				respond(id, statusRefused, []byte(fmt.Sprintf("request of %d bytes, limit %d", len(body), fsm.MaxRequestSize)))
				done()
				continue
			}
			// The member's trust and budgets first: a flood is refused
			// before it costs a signature check.
			release, gerr := e.admit(peer, len(body))
			if gerr != nil {
				respond(id, statusGate, gateBody(gerr))
				done()
				continue
			}
			// Verified before the lock (frames of one connection are read
			// in order, so its submissions keep their order).
			if why := checkRequest(body); why != "" {
				release()
				respond(id, statusBadSig, []byte(why))
				done()
				continue
			}
			e.submitMu.Lock()
			fut := e.enqueue(body)
			e.submitMu.Unlock()
			go func() {
				defer done()
				defer release()
				ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
				defer cancel()
				a, err := e.await(ctx, fut)
				switch {
				case err == nil:
					res, jerr := json.Marshal(a.Result)
					if jerr != nil {
						respond(id, statusUnknown, []byte(jerr.Error()))
						return
					}
					b := binary.BigEndian.AppendUint64(nil, a.Index)
					b = binary.BigEndian.AppendUint64(b, uint64(a.Entry.Time))
					respond(id, statusOK, append(b, res...))
				case isRetry(err):
					respond(id, statusRetry, nil)
				default:
					respond(id, statusUnknown, []byte(reason(err)))
				}
			}()
		case kindRecords:
			// Served in turn, not side by side: one answer (up to
			// maxRecordsAnswer) in memory per connection at a time.
			ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
			status, out := e.serveRecords(ctx, body)
			cancel()
			respond(id, status, out)
			done()
		case kindRead:
			go func() {
				defer done()
				ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
				defer cancel()
				idx, err := e.barrier(ctx)
				switch {
				case err == nil:
					respond(id, statusOK, binary.BigEndian.AppendUint64(nil, idx))
				case isRetry(err):
					respond(id, statusRetry, nil)
				default:
					respond(id, statusUnknown, []byte(reason(err)))
				}
			}()
		default:
			done()
			e.log.Warn("raftengine: unknown forwarded request; stream closed", "event", "consensus.bad_forward", "peer", peer.Short(), "kind", kind)
			return
		}
	}
}

// reason is the part of a leader-side error worth sending to the follower,
// which wraps it in its own typed error.
func reason(err error) string {
	for _, cause := range []error{raft.ErrLeadershipLost, raft.ErrRaftShutdown, raft.ErrAbortedByRestore,
		context.DeadlineExceeded, consensus.ErrClosed} {
		if errors.Is(err, cause) {
			return cause.Error()
		}
	}
	return err.Error()
}
