package bftengine

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	protos "github.com/hyperledger-labs/SmartBFT/smartbftprotos"
	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Connection parameters. One connection per member pair: the member with the
// lower ID dials, the other accepts; both send on it.
const (
	outQueue      = 4096 // frames waiting for one member; beyond it new frames are dropped (SmartBFT resends)
	writeTimeout  = 5 * time.Second
	dialTimeout   = 3 * time.Second
	redialMin     = 20 * time.Millisecond
	redialMax     = time.Second
	waitConnLimit = time.Second // a frame waits this long for a connection before it is dropped
)

// link is this member's side of the connection to one other member.
type link struct {
	id     uint64
	key    identity.PublicKey
	dial   bool // this member dials (its ID is lower)
	ctx    context.Context
	cancel context.CancelFunc // the member left the node set

	out  chan []byte
	down chan struct{} // signalled when the connection drops, for the dialer

	mu    sync.Mutex
	conn  net.Conn
	ready chan struct{} // closed while conn is set

	lastContact atomic.Int64 // unix ns of the last frame read

	// removedAt is the decision that removed the member (0: a current
	// member). A removed member's link lingers for removedGrace, serving
	// only reads up to that decision (serveRemoved); expire ends it.
	removedAt atomic.Uint64
	expire    *time.Timer // set under comm.mu when the member is removed

	serveMu    sync.Mutex
	serveSince time.Time
	serveCount int
}

// servedPerSecond bounds the requests this member serves for one other
// member from its store (attestations it signs, decisions it reads); beyond
// it they are ignored until the next second.
const servedPerSecond = 1000

func (l *link) allowServe() bool {
	l.serveMu.Lock()
	defer l.serveMu.Unlock()
	if now := time.Now(); now.Sub(l.serveSince) >= time.Second {
		l.serveSince, l.serveCount = now, 0
	}
	l.serveCount++
	return l.serveCount <= servedPerSecond
}

func (l *link) current() (net.Conn, chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn, l.ready
}

// setConn makes c the connection and returns the one it replaces, for the
// caller to close (a member that reconnects wins over its stale
// connection).
func (l *link) setConn(c net.Conn) (old net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old = l.conn
	l.conn = c
	select {
	case <-l.ready:
	default:
		close(l.ready)
	}
	return old
}

func (l *link) drop(c net.Conn) {
	l.detach(c)
	_ = c.Close()
}

// detach makes the link connectionless if c is its connection, without
// closing c: under comm.mu the caller closes it only after unlocking.
func (l *link) detach(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == c {
		l.conn = nil
		l.ready = make(chan struct{})
		select {
		case l.down <- struct{}{}:
		default:
		}
	}
}

// comm carries frames between this member and the others over the group's
// Network. It implements SmartBFT's Comm. It has one link per other member
// of the current node set (setRoster follows membership changes); a learner
// (selfID 0) has links to the members of the definition it has reached and
// dials none: members dial it once their definition admits it. A member
// removed from the node set keeps its link for removedGrace, read-only
// (serveRemoved), so that one that lagged across its removal can fetch the
// decision that removed it; broadcasts and height counts leave it out.
type comm struct {
	e      *Engine
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.RWMutex
	links   map[uint64]*link
	started bool
}

func newComm(e *Engine) *comm {
	ctx, cancel := context.WithCancel(context.Background())
	return &comm{e: e, links: map[uint64]*link{}, ctx: ctx, cancel: cancel}
}

// setRoster makes the links those of r's members other than self: new
// members get a link, departed ones lose theirs (and its connection). A
// member that leaves the node set while this one stays in it keeps its link
// for grace (none if grace is 0), marked removed at decision r.from-1.
func (c *comm) setRoster(r *roster, self uint64, grace time.Duration) {
	var closing []net.Conn
	c.mu.Lock()
	defer func() {
		c.mu.Unlock()
		closeAll(closing)
	}()
	remove := func(l *link) { closing = append(closing, c.removeLocked(l)...) }
	want := map[uint64]bool{}
	for _, id := range r.nodes {
		if id == self {
			continue
		}
		want[id] = true
		dial := self != 0 && self < id
		if l := c.links[id]; l != nil {
			if l.dial == dial && l.removedAt.Load() == 0 {
				continue
			}
			remove(l)
		}
		ctx, cancel := context.WithCancel(c.ctx)
		l := &link{id: id, key: r.keys[id], dial: dial, ctx: ctx, cancel: cancel, out: make(chan []byte, outQueue),
			down: make(chan struct{}, 1), ready: make(chan struct{})}
		c.links[id] = l
		if c.started && c.ctx.Err() == nil { // not once close began: it waits for the loops
			c.run(l)
		}
	}
	for id, l := range c.links {
		_, back := r.ids[l.key]
		switch {
		case want[id]:
		case l.removedAt.Load() != 0 && back:
			remove(l) // added again under a new ID: one link per key
		case l.removedAt.Load() != 0:
		case self != 0 && grace > 0 && r.from > 1 && !back:
			c.lingerLocked(l, r.from-1, grace)
		default:
			remove(l)
		}
	}
	if self == 0 {
		for _, l := range c.links {
			if l.removedAt.Load() != 0 {
				remove(l) // a removed member serves nobody
			}
		}
	}
}

// lingerNetwork is a Network that refuses connections of non-members unless
// told that a removed member may still connect until a time (the group
// manager's checked network).
type lingerNetwork interface {
	Linger(member identity.PublicKey, until time.Time)
}

// lingerLocked keeps the link of a member removed at decision seq, with its
// connection, for grace; then it is removed.
func (c *comm) lingerLocked(l *link, seq uint64, grace time.Duration) {
	if n, ok := c.e.cfg.Net.(lingerNetwork); ok {
		n.Linger(l.key, time.Now().Add(grace))
	}
	l.removedAt.Store(seq)
	l.expire = time.AfterFunc(grace, func() {
		var closing []net.Conn
		c.mu.Lock()
		if c.links[l.id] == l {
			closing = c.removeLocked(l)
		}
		c.mu.Unlock()
		closeAll(closing)
	})
	c.e.log.Info("bftengine: removed member may fetch the decision that removed it", "event", "consensus.bft.linger",
		"peer", l.key.Short(), "id", l.id, "seq", seq, "for", grace)
}

// removeLocked deletes l and ends its loops. It returns l's connection, if
// any, for the caller to close once c.mu is released: a TLS Close can wait
// seconds for room to send its alert, and every send looks its link up
// under c.mu.
func (c *comm) removeLocked(l *link) []net.Conn {
	delete(c.links, l.id)
	if l.expire != nil {
		l.expire.Stop()
	}
	l.cancel()
	conn, _ := l.current()
	if conn == nil {
		return nil
	}
	l.detach(conn)
	return []net.Conn{conn}
}

func closeAll(conns []net.Conn) {
	for _, conn := range conns {
		_ = conn.Close()
	}
}

func (c *comm) run(l *link) {
	c.wg.Add(1)
	go c.writeLoop(l)
	if l.dial {
		c.wg.Add(1)
		go c.dialLoop(l)
	}
}

func (c *comm) link(id uint64) *link {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.links[id]
}

// linkOf is k's link; a current member's before a removed one's (a member
// removed and added again has a new ID, and both links carry its key).
func (c *comm) linkOf(k identity.PublicKey) *link {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var removed *link
	for _, l := range c.links {
		if !l.key.Equal(k) {
			continue
		}
		if l.removedAt.Load() == 0 {
			return l
		}
		removed = l
	}
	return removed
}

// ids are the other members' IDs: the links of removed members are not
// counted.
func (c *comm) ids() []uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]uint64, 0, len(c.links))
	for id, l := range c.links {
		if l.removedAt.Load() == 0 {
			out = append(out, id)
		}
	}
	return out
}

func (c *comm) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started = true
	c.wg.Add(1)
	go c.acceptLoop()
	for _, l := range c.links {
		c.run(l)
	}
}

// stop ends every loop's context; close also waits for them.
func (c *comm) stop() { c.cancel() }

// close stops every goroutine; the Network's listener is closed too, since
// Accept has no other way to return.
func (c *comm) close() {
	c.cancel()
	_ = c.e.cfg.Net.Listener().Close()
	var closing []net.Conn
	c.mu.Lock()
	for _, l := range c.links {
		if l.expire != nil {
			l.expire.Stop()
		}
		if conn, _ := l.current(); conn != nil {
			l.detach(conn)
			closing = append(closing, conn)
		}
	}
	c.mu.Unlock()
	closeAll(closing)
	c.wg.Wait()
}

func (c *comm) acceptLoop() {
	defer c.wg.Done()
	ln := c.e.cfg.Net.Listener()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if c.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			c.e.log.Warn("bftengine: accept", "err", err)
			if !sleepCtx(c.ctx, 50*time.Millisecond) {
				return
			}
			continue
		}
		k, ok := c.e.cfg.Net.Peer(conn)
		var l *link
		if ok {
			l = c.linkOf(k)
		}
		if l == nil || l.ctx.Err() != nil {
			c.e.log.Warn("bftengine: connection from a non-member closed", "event", "consensus.non_member", "peer", k.Short())
			_ = conn.Close()
			continue
		}
		c.attach(l, conn)
	}
}

// attach makes conn l's connection and reads it, unless l was removed or
// close has begun (conn is closed then). Both cancel first and then, under
// c.mu, drop the connection they find: one set after that would be read
// for good (the other member keeps it open) and close would wait on its
// reader forever. A connection it closes is closed after c.mu is released:
// a TLS Close can wait seconds for room to send its alert, and every send
// looks its link up under c.mu.
func (c *comm) attach(l *link, conn net.Conn) {
	c.mu.Lock()
	var stale net.Conn
	if l.ctx.Err() != nil {
		stale = conn
	} else {
		stale = l.setConn(conn)
		c.wg.Add(1)
		go c.readLoop(l, conn)
	}
	c.mu.Unlock()
	if stale != nil {
		_ = stale.Close()
	}
}

func (c *comm) dialLoop(l *link) {
	defer c.wg.Done()
	backoff := redialMin
	for l.ctx.Err() == nil {
		if conn, _ := l.current(); conn != nil {
			select {
			case <-l.down:
				continue
			case <-l.ctx.Done():
				return
			}
		}
		ctx, cancel := context.WithTimeout(l.ctx, dialTimeout)
		conn, err := c.e.cfg.Net.Dial(ctx, l.key)
		cancel()
		if err != nil {
			c.e.log.Debug("bftengine: dial", "peer", l.key.Short(), "err", err)
			if !sleepCtx(l.ctx, backoff) {
				return
			}
			backoff = min(2*backoff, redialMax)
			continue
		}
		backoff = redialMin
		c.attach(l, conn)
	}
}

func (c *comm) readLoop(l *link, conn net.Conn) {
	defer c.wg.Done()
	defer l.drop(conn)
	rd := bufio.NewReaderSize(conn, 64<<10)
	var hdr [4]byte
	for {
		b, err := readFrame(rd, hdr[:])
		if err != nil {
			var fe *FrameError
			if errors.As(err, &fe) {
				c.e.evidence(l.key, "malformed-frame", err.Error())
			}
			return
		}
		l.lastContact.Store(time.Now().UnixNano())
		if h := c.e.opts.observeRecv; h != nil && h(l.id, b) {
			continue
		}
		f, err := decodeFrame(b)
		if err != nil {
			c.e.evidence(l.key, "malformed-frame", err.Error())
			return
		}
		c.e.handleFrame(l, f)
	}
}

func (c *comm) writeLoop(l *link) {
	defer c.wg.Done()
	var (
		bw   *bufio.Writer
		cur  net.Conn
		wait = time.NewTimer(0)
	)
	<-wait.C
	for {
		var b []byte
		select {
		case <-l.ctx.Done():
			return
		case b = <-l.out:
		}
		conn, ready := l.current()
		if conn == nil {
			wait.Reset(waitConnLimit)
			select {
			case <-l.ctx.Done():
				return
			case <-ready:
				wait.Stop()
				conn, _ = l.current()
			case <-wait.C:
			}
			if conn == nil {
				continue // dropped: the member is unreachable
			}
		}
		if conn != cur {
			cur, bw = conn, bufio.NewWriterSize(conn, 64<<10)
		}
		_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := bw.Write(b)
		// Flush once the queue is empty, so a burst goes out in few writes.
		if err == nil && len(l.out) == 0 {
			err = bw.Flush()
		}
		if err != nil {
			l.drop(conn)
			cur = nil
		}
	}
}

// send queues a frame for member id; it never blocks.
func (c *comm) send(id uint64, b []byte) {
	l := c.link(id)
	if l == nil || l.ctx.Err() != nil {
		return
	}
	if h := c.e.opts.tamperSend; h != nil {
		for _, x := range h(id, b) {
			c.enqueue(l, x)
		}
		return
	}
	c.enqueue(l, b)
}

func (c *comm) enqueue(l *link, b []byte) {
	select {
	case l.out <- b:
	default:
		c.e.log.Debug("bftengine: send queue full, frame dropped", "peer", l.key.Short())
	}
}

func (c *comm) broadcast(b []byte) {
	for _, id := range c.ids() {
		c.send(id, b)
	}
}

// SendConsensus implements SmartBFT's Comm.
func (c *comm) SendConsensus(target uint64, m *protos.Message) {
	body, err := proto.Marshal(m)
	if err != nil {
		c.e.log.Error("bftengine: marshal consensus message", "err", err)
		return
	}
	c.send(target, encodeFrame(frame{kind: kindConsensus, body: body}))
}

// SendTransaction implements SmartBFT's Comm: a request forwarded to the leader.
func (c *comm) SendTransaction(target uint64, req []byte) {
	c.send(target, encodeFrame(frame{kind: kindRequest, body: req}))
}

// Nodes implements SmartBFT's Comm.
func (c *comm) Nodes() []uint64 { return append([]uint64{}, c.e.roster().nodes...) }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
