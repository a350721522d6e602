package consensus

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// hub is a test-only engine for the manager's unit tests: one in-process
// sequencer that orders the proposals of every member and applies each entry
// to every member's machine at once. It has no network and no faults; the
// real engines are tested in their own packages and through the node.
type hub struct {
	mu      sync.Mutex
	log     []fsm.Entry
	members map[identity.PublicKey]*hubEngine
	down    bool // Propose fails with ErrNoQuorum
	now     int64
	// stalled members' proposals reach no sequencer: each reports on
	// stalling and waits for its context, like a request lost with a
	// connection.
	stalled map[identity.PublicKey]chan<- struct{}
	// late members' proposals are applied, but each then waits for its
	// context, like an engine whose wait for its own result loses to the
	// context's cancellation.
	late map[identity.PublicKey]bool
	// held members' OnApply calls wait in their pending list until
	// release: an engine that shows a new definition before it hands the
	// entry that made it to the consumer.
	held map[identity.PublicKey]bool
}

// release hands member k's held entries to its OnApply, in order.
func (h *hub) release(k identity.PublicKey) {
	h.mu.Lock()
	e := h.members[k]
	pending := e.pending
	e.pending = nil
	delete(h.held, k)
	h.mu.Unlock()
	for _, a := range pending {
		e.cfg.OnApply(a)
	}
}

func newHub() *hub { return &hub{members: map[identity.PublicKey]*hubEngine{}} }

func (h *hub) factory() NewEngine {
	return func(_ context.Context, cfg EngineConfig) (Engine, error) {
		m, err := fsm.New(cfg.Group)
		if err != nil {
			return nil, err
		}
		e := &hubEngine{h: h, cfg: cfg, m: m, results: map[uint64]fsm.Result{}, groups: map[uint64]fsm.Group{}}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.members[cfg.Self.Public()] = e
		for i, en := range h.log { // catch up
			e.apply(uint64(i+1), en)
		}
		return e, nil
	}
}

type hubEngine struct {
	h       *hub
	cfg     EngineConfig
	m       *fsm.Machine
	results map[uint64]fsm.Result
	groups  map[uint64]fsm.Group // definition before each index
	closed  bool
	pending []Applied // held from OnApply (hub.held)
}

func (e *hubEngine) apply(i uint64, en fsm.Entry) Applied {
	e.groups[i] = e.m.Group()
	res := e.m.Apply(i, en)
	e.results[i] = res
	a := Applied{Index: i, Entry: en, Result: res}
	switch {
	case e.h.held[e.cfg.Self.Public()]:
		e.pending = append(e.pending, a)
	case e.cfg.OnApply != nil:
		e.cfg.OnApply(a)
	}
	return a
}

func (e *hubEngine) Propose(ctx context.Context, req []byte) (Applied, error) {
	if err := ctx.Err(); err != nil {
		return Applied{}, err
	}
	h := e.h
	h.mu.Lock()
	if stalling, ok := h.stalled[e.cfg.Self.Public()]; ok {
		h.mu.Unlock()
		stalling <- struct{}{}
		<-ctx.Done()
		return Applied{}, fmt.Errorf("%w: %w", ErrNoQuorum, ctx.Err())
	}
	defer h.mu.Unlock()
	if h.down {
		return Applied{}, ErrNoQuorum
	}
	if e.closed {
		return Applied{}, ErrClosed
	}
	if h.late[e.cfg.Self.Public()] {
		e.proposeLocked(req)
		h.mu.Unlock()
		defer h.mu.Lock()
		<-ctx.Done()
		return Applied{}, ctx.Err()
	}
	return e.proposeLocked(req), nil
}

// proposeLocked orders req and applies it on every member; h.mu is held.
func (e *hubEngine) proposeLocked(req []byte) Applied {
	h := e.h
	h.now++
	en := fsm.Entry{Time: e.cfg.Now().UnixNano() + h.now, Request: req}
	h.log = append(h.log, en)
	i := uint64(len(h.log))
	var mine Applied
	for _, m := range h.members {
		if m.closed {
			continue
		}
		a := m.apply(i, en)
		if m == e {
			mine = a
		}
	}
	return mine
}

// lastIndex is the index of the last entry the hub ordered.
func (h *hub) lastIndex() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return uint64(len(h.log))
}

func (e *hubEngine) Read(ctx context.Context, fn func(m *fsm.Machine)) error {
	e.h.mu.Lock()
	defer e.h.mu.Unlock()
	if e.h.down {
		return ErrNoQuorum
	}
	fn(e.m)
	return nil
}

func (e *hubEngine) Record(ctx context.Context, index uint64) (fsm.Record, error) {
	e.h.mu.Lock()
	defer e.h.mu.Unlock()
	res, ok := e.results[index]
	if !ok {
		return fsm.Record{}, ErrNoRecord
	}
	g, en := e.groups[index], e.h.log[index-1]
	var certs []fsm.Attestation
	if g.Mode == fsm.ModeBFT {
		for _, m := range e.h.members {
			if g.IsMember(m.cfg.Self.Public()) {
				certs = append(certs, fsm.Attest(m.cfg.Self, g, index, en, m.results[index]))
			}
		}
	}
	return fsm.NewRecord(g, index, en, res, certs), nil
}

func (e *hubEngine) Status() Status {
	e.h.mu.Lock()
	defer e.h.mu.Unlock()
	return Status{Group: e.m.Group(), LastIndex: e.m.LastIndex(), Healthy: !e.h.down}
}

func (e *hubEngine) Close() error {
	e.h.mu.Lock()
	defer e.h.mu.Unlock()
	e.closed = true
	delete(e.h.members, e.cfg.Self.Public())
	return nil
}

// nopNetwork is a Network with no connections, for engines that need none.
type nopNetwork struct{ ln *pipeListener }

func (nopNetwork) Dial(context.Context, identity.PublicKey) (net.Conn, error) {
	return nil, net.ErrClosed
}
func (n nopNetwork) Listener() net.Listener                 { return n.ln }
func (nopNetwork) Peer(net.Conn) (identity.PublicKey, bool) { return identity.PublicKey{}, false }

func nopNetworks(fsm.Group, func(identity.PublicKey) bool) (Network, error) {
	return nopNetwork{ln: newPipeListener()}, nil
}

// pipeListener is a net.Listener fed by tests.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "pipe"} }

func testKey(t testing.TB, b byte) identity.PrivateKey {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = b
	}
	k, err := identity.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
