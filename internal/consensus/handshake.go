package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// helloMagic opens the definition exchange on every group connection.
const helloMagic = "treaty/consensus/hello/v1\x00"

// maxHello bounds the definition a peer may send: the canonical encoding of
// a group of fsm.MaxMembers members with the longest name and a nonce.
const maxHello = 64 + fsm.MaxNameLen + 32*fsm.MaxMembers

// helloTimeout bounds the exchange, so a silent peer cannot hold a
// connection slot.
const helloTimeout = 5 * time.Second

// DefinitionError is the refusal of a connection whose far end defines the
// group differently at the same epoch: the operators created it with other
// members. Members at different epochs are let through (one of them lags
// behind a membership change and catches up from the others).
type DefinitionError struct {
	Member identity.PublicKey
	Err    *fsm.MismatchError
}

func (e *DefinitionError) Error() string {
	return fmt.Sprintf("member %s defines the group differently: %v", e.Member.Short(), e.Err)
}

func (e *DefinitionError) Unwrap() error { return e.Err }

// checkedNetwork is a Network whose connections, in both directions, first
// exchange the group's current definition and are closed when the far end's
// differs, and whose members pass admit (trust, budgets) first. Engines see
// only connections that passed.
type checkedNetwork struct {
	inner   Network
	current func() fsm.Group
	member  func(identity.PublicKey) bool
	admit   func(identity.PublicKey) error
	refused func(identity.PublicKey, error) // a refused exchange, for status and logs
	meters  *meters
	ln      *checkedListener

	lingerMu sync.Mutex
	linger   map[identity.PublicKey]time.Time // removed members let through until then (Linger)
}

// newCheckedNetwork wraps inner. refused is called with the member and the
// reason of every refused connection, and with a nil error when a member's
// connection passes, so the caller can log changes only.
//
// inner may deliver connections from keys that are not members (any peer of
// the node): they get an empty definition, never this member's, so that an
// operator whose definition lists this node but not the other way round
// learns why without learning the group's members, and are closed.
func newCheckedNetwork(inner Network, current func() fsm.Group, admit func(identity.PublicKey) error, refused func(identity.PublicKey, error), meters *meters) *checkedNetwork {
	n := &checkedNetwork{inner: inner, current: current, admit: admit, refused: refused, meters: meters}
	n.member = func(k identity.PublicKey) bool { return n.current().IsMember(k) || n.lingering(k) }
	n.ln = &checkedListener{n: n, inner: inner.Listener(), ch: make(chan net.Conn), done: make(chan struct{})}
	go n.ln.loop()
	return n
}

// Linger lets member, just removed from the group, connect in either
// direction until until: the BFT engine serves a removed member that lagged
// the decisions up to the one that removed it, read-only, for a bounded
// time (bftengine, ADR 0012). A later call for the same member replaces
// its time; expired entries are dropped.
func (n *checkedNetwork) Linger(member identity.PublicKey, until time.Time) {
	n.lingerMu.Lock()
	defer n.lingerMu.Unlock()
	now := time.Now()
	for k, t := range n.linger {
		if !now.Before(t) {
			delete(n.linger, k)
		}
	}
	if n.linger == nil {
		n.linger = map[identity.PublicKey]time.Time{}
	}
	n.linger[member] = until
}

func (n *checkedNetwork) lingering(k identity.PublicKey) bool {
	n.lingerMu.Lock()
	defer n.lingerMu.Unlock()
	t, ok := n.linger[k]
	return ok && time.Now().Before(t)
}

// Dial implements Network.
func (n *checkedNetwork) Dial(ctx context.Context, member identity.PublicKey) (net.Conn, error) {
	if !n.member(member) {
		return nil, fmt.Errorf("consensus: dial %s: %w", member.Short(), ErrNotMember)
	}
	if err := n.admit(member); err != nil {
		n.refused(member, err)
		return nil, err
	}
	c, err := n.inner.Dial(ctx, member)
	if err != nil {
		return nil, err
	}
	if err := n.exchange(c, member); err != nil {
		c.Close()
		return nil, err
	}
	return n.meter(c, member), nil
}

func (n *checkedNetwork) meter(c net.Conn, k identity.PublicKey) net.Conn {
	if n.meters == nil {
		return c
	}
	return n.meters.wrap(c, k)
}

// Listener implements Network.
func (n *checkedNetwork) Listener() net.Listener { return n.ln }

// Peer implements Network.
func (n *checkedNetwork) Peer(c net.Conn) (identity.PublicKey, bool) { return n.inner.Peer(unwrap(c)) }

// exchange writes this member's definition, reads the far end's and compares
// them. The write runs beside the read, so the two ends never wait on each
// other whatever the buffering.
func (n *checkedNetwork) exchange(c net.Conn, member identity.PublicKey) error {
	c.SetDeadline(time.Now().Add(helloTimeout))
	defer c.SetDeadline(time.Time{})
	local := n.current()
	canon := local.Canonical()
	msg := make([]byte, 0, len(helloMagic)+4+len(canon))
	msg = append(msg, helloMagic...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(canon)))
	msg = append(msg, canon...)
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		wrote <- err
	}()
	remote, err := readHello(c)
	if werr := <-wrote; err == nil && werr != nil {
		err = werr
	}
	switch {
	case errors.Is(err, errNotListed):
		err = fmt.Errorf("consensus: member %s defines the group differently: %w", member.Short(), err)
	case err != nil:
		err = fmt.Errorf("consensus: definition exchange with %s: %w", member.Short(), err)
	}
	if err != nil {
		n.refused(member, err)
		return err
	}
	if remote.Epoch != local.Epoch {
		return nil
	}
	var mm *fsm.MismatchError
	if errors.As(fsm.Compare(local, remote), &mm) {
		err := &DefinitionError{Member: member, Err: mm}
		n.refused(member, err)
		return err
	}
	n.refused(member, nil)
	return nil
}

// refuseOutsider answers a peer that is not a member with an empty
// definition and closes the connection: any peer of the node may open the
// group's protocol, and the group's definition (who is in it, its epoch) is
// the members' business only. The peer learns that this member does not list
// it, which is what its operator needs to know.
func (n *checkedNetwork) refuseOutsider(c net.Conn, k identity.PublicKey) {
	c.SetDeadline(time.Now().Add(helloTimeout))
	c.Write(binary.BigEndian.AppendUint32([]byte(helloMagic), 0))
	c.Close()
	n.refused(k, fmt.Errorf("consensus: connection from %s: %w", k.Short(), ErrNotMember))
}

// errNotListed is what a member that does not list this node answers.
var errNotListed = errors.New("its definition of the group does not list this node")

func readHello(r io.Reader) (fsm.Group, error) {
	head := make([]byte, len(helloMagic)+4)
	if _, err := io.ReadFull(r, head); err != nil {
		return fsm.Group{}, err
	}
	if string(head[:len(helloMagic)]) != helloMagic {
		return fsm.Group{}, errors.New("not a group definition (bad magic)")
	}
	size := binary.BigEndian.Uint32(head[len(helloMagic):])
	if size == 0 {
		return fsm.Group{}, errNotListed
	}
	if size > maxHello {
		return fsm.Group{}, fmt.Errorf("definition of %d bytes, limit %d", size, maxHello)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return fsm.Group{}, err
	}
	return fsm.ParseGroup(b)
}

// checkedListener runs the exchange of each accepted connection on its own
// goroutine (bounded by the transport's per-peer connection limit and by
// helloTimeout), so a slow peer never delays another's connection.
type checkedListener struct {
	n     *checkedNetwork
	inner net.Listener
	ch    chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error // set before done closes
}

func (l *checkedListener) loop() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			l.once.Do(func() { l.err = err; close(l.done) })
			return
		}
		go l.check(c)
	}
}

func (l *checkedListener) check(c net.Conn) {
	k, _ := l.n.inner.Peer(c)
	if err := l.n.admit(k); err != nil {
		l.n.refused(k, err)
		c.Close()
		return
	}
	if !l.n.member(k) {
		l.n.refuseOutsider(c, k)
		return
	}
	if err := l.n.exchange(c, k); err != nil {
		c.Close() // exchange reported it
		return
	}
	if !l.n.member(k) {
		l.n.refused(k, fmt.Errorf("consensus: connection from %s: %w", k.Short(), ErrNotMember))
		c.Close()
		return
	}
	select {
	case l.ch <- l.n.meter(c, k):
	case <-l.done:
		c.Close()
	}
}

func (l *checkedListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

func (l *checkedListener) Close() error {
	err := l.inner.Close()
	l.once.Do(func() { close(l.done) })
	return err
}

func (l *checkedListener) Addr() net.Addr { return l.inner.Addr() }
