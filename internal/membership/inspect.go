package membership

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/treaty-dev/treaty/internal/identity"
)

// memberlist v0.6.0 message types (net.go there) that carry what we check.
// The framing is memberlist's; we only read it, at our end of a TLS
// connection whose peer key the handshake proved, so that a bad record or
// statement is charged to the peer that actually sent it.
const (
	mlSuspect  = 3
	mlAlive    = 4
	mlPushPull = 6
	mlCompound = 7
	mlUser     = 8
	mlCompress = 9
	mlEncrypt  = 10
	mlHasCRC   = 12
	mlHasLabel = 244
)

// mlAliveMsg mirrors memberlist's alive message (msgpack map, field names).
type mlAliveMsg struct {
	Incarnation uint32
	Node        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Vsn         []uint8
}

type mlSuspectMsg struct {
	Incarnation uint32
	Node        string
	From        string
}

type mlPushPullHeader struct {
	Nodes        int
	UserStateLen int
	Join         bool
}

type mlPushNodeState struct {
	Name        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Incarnation uint32
	State       int // memberlist.NodeStateType: 0 alive, 1 suspect, 2 dead, 3 left
	Vsn         []uint8
}

// Limits on what a stream may carry before we stop reading it.
const (
	maxPushNodes     = 4096
	maxPushUserState = 4096 * (2 + MaxStatementBytes)
	maxPushBytes     = maxPushNodes*(MaxRecordBytes+256) + maxPushUserState
	maxCompoundDepth = 2 // memberlist never nests compounds; one level of CRC wrapping on top
)

var errNotOurs = errors.New("membership: packet uses framing treaty gossip never sends")

// inspectPacket checks the records and statements in a packet from peer
// before memberlist sees it. A packet with a bad one is dropped whole (an
// honest member never sends one) and the bad item is reported as Evidence
// against peer. It returns whether memberlist may have the packet.
func (m *Membership) inspectPacket(peer identity.PublicKey, pkt []byte) bool {
	if err := m.inspectMsg(peer, pkt, 0); err != nil {
		var ev *evidenceError
		if errors.As(err, &ev) {
			ev.e.Relayer = peer
			m.evidence(ev.e)
		} else {
			m.log.Debug("membership: packet dropped", "peer", peer.Short(), "err", err)
		}
		return false
	}
	return true
}

// evidenceError carries Evidence out of the inspection.
type evidenceError struct{ e Evidence }

func (e *evidenceError) Error() string { return e.e.Reason.String() + ": " + e.e.Err.Error() }

func chargeable(subject identity.PublicKey, err error) error {
	return &evidenceError{Evidence{Subject: subject, Reason: reasonOf(err), Err: err}}
}

func (m *Membership) inspectMsg(peer identity.PublicKey, b []byte, depth int) error {
	if len(b) == 0 {
		return errors.New("empty message")
	}
	switch b[0] {
	case mlHasCRC:
		if depth > 0 || len(b) < 5 {
			return errNotOurs
		}
		return m.inspectMsg(peer, b[5:], depth+1)
	case mlCompound:
		if depth >= maxCompoundDepth {
			return errNotOurs
		}
		parts, err := splitCompound(b[1:])
		if err != nil {
			return err
		}
		for _, p := range parts {
			if err := m.inspectMsg(peer, p, depth+1); err != nil {
				return err
			}
		}
		return nil
	case mlAlive:
		var a mlAliveMsg
		if err := decodeMsgpack(b[1:], &a); err != nil {
			return fmt.Errorf("alive message: %w", err)
		}
		addr := net.JoinHostPort(net.IP(a.Addr).String(), fmt.Sprint(a.Port))
		r, err := m.checkRecord(a.Node, addr, int64(a.Incarnation), a.Meta)
		if errors.Is(err, errRefused) {
			return nil // NotifyAlive refuses it; the relayer is not to blame
		}
		if err != nil {
			return chargeable(subjectOf(r, a.Node), err)
		}
		m.learn(r, int64(a.Incarnation))
		return nil
	case mlSuspect:
		var s mlSuspectMsg
		if err := decodeMsgpack(b[1:], &s); err != nil {
			return fmt.Errorf("suspect message: %w", err)
		}
		m.suspected(s.Node, s.Incarnation)
		return nil
	case mlUser:
		return m.inspectStatement(b[1:])
	case mlCompress, mlEncrypt, mlHasLabel:
		return errNotOurs
	}
	return nil
}

func subjectOf(r Record, name string) identity.PublicKey {
	if !r.Key.IsZero() {
		return r.Key
	}
	k, _ := identity.ParseDID(name)
	return k
}

// inspectStatement checks a statement's envelope and validator; statements
// already accepted and kinds this node does not know pass unchecked
// (memberlist's delegate drops the latter).
func (m *Membership) inspectStatement(b []byte) error {
	s, err := UnmarshalStatement(b)
	if err != nil {
		return chargeable(identity.PublicKey{}, err)
	}
	kind, ok := m.kinds[s.Kind]
	if !ok {
		return nil
	}
	m.mu.Lock()
	_, seen := m.stmts[sha256.Sum256(b)]
	m.mu.Unlock()
	if seen {
		return nil
	}
	if err := s.Verify(); err != nil {
		return chargeable(s.Signer, err)
	}
	if err := kind.Validate(s); err != nil {
		return &evidenceError{Evidence{Subject: s.Signer, Reason: ReasonRejected,
			Err: fmt.Errorf("%s statement: %w", s.Kind, err)}}
	}
	return nil
}

// suspected marks name suspect if the message is about its current incarnation.
func (m *Membership) suspected(name string, inc uint32) {
	key, err := identity.ParseDID(name)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.peers[key]
	if p == nil || inc < p.inc || p.state != StateAlive {
		return
	}
	if !p.suspect || inc > p.suspectInc {
		p.suspect, p.suspectInc = true, inc
		m.changedLocked(key)
	}
}

// splitCompound cuts memberlist's compound message (count, uint16 lengths,
// parts); unlike memberlist it refuses a truncated one outright.
func splitCompound(b []byte) ([][]byte, error) {
	if len(b) < 1 {
		return nil, errors.New("compound: no count")
	}
	n := int(b[0])
	b = b[1:]
	if len(b) < 2*n {
		return nil, errors.New("compound: truncated lengths")
	}
	lens := b[:2*n]
	b = b[2*n:]
	parts := make([][]byte, 0, n)
	for i := range n {
		l := int(binary.BigEndian.Uint16(lens[2*i:]))
		if len(b) < l {
			return nil, errors.New("compound: truncated part")
		}
		parts = append(parts, b[:l])
		b = b[l:]
	}
	return parts, nil
}

func decodeMsgpack(b []byte, out any) error {
	var h codec.MsgpackHandle
	return codec.NewDecoder(bytes.NewReader(b), &h).Decode(out)
}

// inspectStream makes reads of a stream with peer check a push-pull state
// (records of live members, statements) before memberlist reads any of it.
func (m *Membership) inspectStream(peer identity.PublicKey, c net.Conn) net.Conn {
	return &inspectedConn{Conn: c, m: m, peer: peer}
}

// inspectedConn reads and checks a whole push-pull message on the first Read,
// then replays the bytes it read. A bad item fails the read, which makes
// memberlist drop the whole exchange.
type inspectedConn struct {
	net.Conn
	m    *Membership
	peer identity.PublicKey

	once   sync.Once
	replay io.Reader
	err    error
}

func (c *inspectedConn) Read(p []byte) (int, error) {
	c.once.Do(c.prefetch)
	if c.err != nil {
		return 0, c.err
	}
	return c.replay.Read(p)
}

func (c *inspectedConn) prefetch() {
	var rec bytes.Buffer
	tee := io.TeeReader(io.LimitReader(c.Conn, maxPushBytes), &rec)
	err := c.m.inspectPushPull(tee)
	c.replay = io.MultiReader(&rec, c.Conn)
	if err == nil {
		return
	}
	var ev *evidenceError
	if errors.As(err, &ev) {
		ev.e.Relayer = c.peer
		c.m.evidence(ev.e)
		c.err = fmt.Errorf("membership: stream from %s refused: %w", c.peer.Short(), err)
		return
	}
	if errors.Is(err, errNotOurs) {
		c.err = err
	}
	// A read error or a message type we do not inspect: let memberlist see
	// what was read and fail (or not) on its own terms.
}

// inspectPushPull reads one stream message from r; only push-pull is checked.
func (m *Membership) inspectPushPull(r io.Reader) error {
	var t [1]byte
	if _, err := io.ReadFull(r, t[:]); err != nil {
		return err
	}
	switch t[0] {
	case mlPushPull:
	case mlCompress, mlEncrypt, mlHasLabel:
		return errNotOurs
	default:
		return nil
	}
	var h codec.MsgpackHandle
	dec := codec.NewDecoder(r, &h)
	var hdr mlPushPullHeader
	if err := dec.Decode(&hdr); err != nil {
		return err
	}
	if hdr.Nodes < 0 || hdr.Nodes > maxPushNodes || hdr.UserStateLen < 0 || hdr.UserStateLen > maxPushUserState {
		return chargeable(identity.PublicKey{}, fmt.Errorf("%w: push-pull of %d nodes and %d bytes of state exceeds %d and %d",
			ErrMalformed, hdr.Nodes, hdr.UserStateLen, maxPushNodes, maxPushUserState))
	}
	for range hdr.Nodes {
		var s mlPushNodeState
		if err := dec.Decode(&s); err != nil {
			return err
		}
		if s.State > 1 {
			continue // dead or left: memberlist will not believe its address or meta
		}
		addr := net.JoinHostPort(net.IP(s.Addr).String(), fmt.Sprint(s.Port))
		rec, err := m.checkRecord(s.Name, addr, int64(s.Incarnation), s.Meta)
		if errors.Is(err, errRefused) {
			continue
		}
		if err != nil {
			return chargeable(subjectOf(rec, s.Name), err)
		}
		m.learn(rec, int64(s.Incarnation))
	}
	user := make([]byte, hdr.UserStateLen)
	if _, err := io.ReadFull(r, user); err != nil {
		return err
	}
	for _, s := range splitStatements(user) {
		if err := m.inspectStatement(s); err != nil {
			return err
		}
	}
	return nil
}
