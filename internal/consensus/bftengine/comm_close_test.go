package bftengine

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/identity"
)

// stallNet is a Network whose Dial completes only when released (whatever
// its context says: the dial finished just as close began) and whose
// listener accepts nothing. The far ends of dialled connections stay open,
// as a running member keeps its side.
type stallNet struct {
	dialed, release chan struct{}
	mu              sync.Mutex
	far             []net.Conn
	ln              *idleListener
}

func (n *stallNet) Dial(context.Context, identity.PublicKey) (net.Conn, error) {
	select {
	case n.dialed <- struct{}{}:
	default:
	}
	<-n.release
	a, b := net.Pipe()
	n.mu.Lock()
	n.far = append(n.far, b)
	n.mu.Unlock()
	return a, nil
}

func (n *stallNet) Listener() net.Listener                   { return n.ln }
func (n *stallNet) Peer(net.Conn) (identity.PublicKey, bool) { return identity.PublicKey{}, false }

func (n *stallNet) closeFar() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.far {
		_ = c.Close()
	}
}

type idleListener struct {
	once sync.Once
	done chan struct{}
}

func (l *idleListener) Accept() (net.Conn, error) { <-l.done; return nil, net.ErrClosed }
func (l *idleListener) Close() error              { l.once.Do(func() { close(l.done) }); return nil }
func (l *idleListener) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// closeIsWaiting reports whether a goroutine is in comm.close's wait for
// its loops.
func closeIsWaiting() bool {
	buf := make([]byte, 1<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if i := strings.Index(g, "sync.(*WaitGroup).Wait"); i >= 0 && strings.Contains(g[i:], "bftengine.(*comm).close") {
			return true
		}
	}
	return false
}

// A dial that completes once close has dropped the connections it found
// (the engine was closed while it was still connecting, as a short test or
// a quick restart does) must not leave a reader on a connection nobody
// closes: close waited for it until the other member closed its side
// (TestProposeByANonMember hung so in a looped run).
func TestCloseWhileADialCompletes(t *testing.T) {
	n := &stallNet{dialed: make(chan struct{}, 1), release: make(chan struct{}), ln: &idleListener{done: make(chan struct{})}}
	t.Cleanup(n.closeFar)
	e := &Engine{cfg: consensus.EngineConfig{Net: n}, log: slog.New(slog.DiscardHandler), opts: testOptions()}
	ks, group := sortedKeys(t, 4)
	c := newComm(e)
	e.comm = c
	c.setRoster(genesisRoster(group(0, ks...)), 1, 0) // ID 1 dials the others
	c.start()
	select {
	case <-n.dialed:
	case <-time.After(5 * time.Second):
		t.Fatal("no dial")
	}
	closed := make(chan struct{})
	go func() {
		c.close()
		close(closed)
	}()
	waitFor(t, 5*time.Second, "close to wait for its loops", closeIsWaiting)
	close(n.release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close waits for a reader of a connection set after it began")
	}
}

// slowCloseConn is a connection whose Close blocks until release is closed,
// as a TLS connection's does while its close_notify alert waits for room in
// a full send buffer (up to 5 s, to a peer that stopped reading).
type slowCloseConn struct {
	net.Conn
	closing chan struct{}
	release chan struct{}
}

func (c *slowCloseConn) Close() error {
	select {
	case c.closing <- struct{}{}:
	default:
	}
	<-c.release
	return c.Conn.Close()
}

// A member that reconnects replaces its old connection; closing the old one
// can take seconds, and must not hold the comm's lock meanwhile: every send
// to every member looks its link up under that lock, so a leader would go
// silent for that long (its heartbeats are due every 300 ms).
func TestReplacingAConnectionDoesNotBlockSends(t *testing.T) {
	n := &stallNet{release: make(chan struct{}), ln: &idleListener{done: make(chan struct{})}}
	e := &Engine{cfg: consensus.EngineConfig{Net: n}, log: slog.New(slog.DiscardHandler), opts: testOptions()}
	ks, group := sortedKeys(t, 4)
	c := newComm(e)
	e.comm = c
	c.setRoster(genesisRoster(group(0, ks...)), 4, 0) // ID 4 dials none
	l := c.link(1)
	oldNear, oldFar := net.Pipe()
	newNear, newFar := net.Pipe()
	old := &slowCloseConn{Conn: oldNear, closing: make(chan struct{}, 1), release: make(chan struct{})}
	released := false
	release := func() {
		if !released {
			released = true
			close(old.release)
		}
	}
	t.Cleanup(func() {
		release()
		_ = oldFar.Close()
		_ = newFar.Close()
		c.close()
	})
	c.attach(l, old)
	go c.attach(l, newNear)
	select {
	case <-old.closing:
	case <-time.After(5 * time.Second):
		t.Fatal("the old connection was not closed")
	}
	looked := make(chan struct{})
	go func() {
		c.link(2)
		close(looked)
	}()
	select {
	case <-looked:
	case <-time.After(2 * time.Second):
		release()
		t.Fatal("a link lookup waited for the replaced connection's Close")
	}
	release()
	waitFor(t, 5*time.Second, "the new connection to be current", func() bool {
		conn, _ := l.current()
		return conn == newNear
	})
}

// A membership change that removes a member closes its connection, which
// can take seconds; the sends to the members that stay must not wait for it.
func TestRemovingAMemberDoesNotBlockSends(t *testing.T) {
	n := &stallNet{release: make(chan struct{}), ln: &idleListener{done: make(chan struct{})}}
	e := &Engine{cfg: consensus.EngineConfig{Net: n}, log: slog.New(slog.DiscardHandler), opts: testOptions()}
	ks, group := sortedKeys(t, 4)
	c := newComm(e)
	e.comm = c
	r0 := genesisRoster(group(0, ks...))
	c.setRoster(r0, 4, 0) // ID 4 dials none
	near, far := net.Pipe()
	conn := &slowCloseConn{Conn: near, closing: make(chan struct{}, 1), release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(conn.release) }) }
	t.Cleanup(func() {
		release()
		_ = far.Close()
		c.close()
	})
	c.attach(c.link(1), conn)
	go c.setRoster(r0.then(group(1, ks[1:]...), 2), 4, 0) // ID 1 leaves, no grace
	select {
	case <-conn.closing:
	case <-time.After(5 * time.Second):
		t.Fatal("the removed member's connection was not closed")
	}
	looked := make(chan *link)
	go func() { looked <- c.link(2) }()
	select {
	case l := <-looked:
		if l == nil {
			t.Fatal("member 2 lost its link")
		}
	case <-time.After(2 * time.Second):
		release()
		t.Fatal("a link lookup waited for the removed member's connection to close")
	}
	release()
	waitFor(t, 5*time.Second, "member 1's link to be gone", func() bool { return c.link(1) == nil })
}
