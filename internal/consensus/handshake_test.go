package consensus

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// pipeNet connects two members through net.Pipe: a's Dial lands on b's listener.
type pipeNet struct {
	self identity.PublicKey
	far  *pipeNet
	ln   *pipeListener
	mu   sync.Mutex
	who  map[net.Conn]identity.PublicKey
}

func (p *pipeNet) Dial(ctx context.Context, member identity.PublicKey) (net.Conn, error) {
	a, b := net.Pipe()
	p.far.mu.Lock()
	p.far.who[b] = p.self
	p.far.mu.Unlock()
	select {
	case p.far.ln.ch <- b:
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (p *pipeNet) Listener() net.Listener { return p.ln }
func (p *pipeNet) Peer(c net.Conn) (identity.PublicKey, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, ok := p.who[c]
	return k, ok
}

func pipePair(a, b identity.PublicKey) (*pipeNet, *pipeNet) {
	x := &pipeNet{self: a, ln: newPipeListener(), who: map[net.Conn]identity.PublicKey{}}
	y := &pipeNet{self: b, ln: newPipeListener(), who: map[net.Conn]identity.PublicKey{}}
	x.far, y.far = y, x
	return x, y
}

type refusals struct {
	mu  sync.Mutex
	got []error
	ch  chan error // if set, receives each refusal
}

func (r *refusals) note(_ identity.PublicKey, err error) {
	if err != nil {
		r.mu.Lock()
		r.got = append(r.got, err)
		r.mu.Unlock()
		if r.ch != nil {
			r.ch <- err
		}
	}
}

func TestDefinitionExchange(t *testing.T) {
	ka, kb, kc := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	same, _ := fsm.NewGroup("reviews", fsm.ModeBFT, 0, []identity.PublicKey{ka.Public(), kb.Public()})
	other, _ := fsm.NewGroup("reviews", fsm.ModeBFT, 0, []identity.PublicKey{ka.Public(), kb.Public(), kc.Public()})
	later := other
	later.Epoch = 1
	allow := func(identity.PublicKey) error { return nil }
	for _, tc := range []struct {
		name   string
		remote fsm.Group
		ok     bool
	}{
		{"same definition", same, true},
		{"other members at the same epoch", other, false},
		{"another epoch (a member catching up)", later, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pa, pb := pipePair(ka.Public(), kb.Public())
			var ra, rb refusals
			a := newCheckedNetwork(pa, func() fsm.Group { return same }, allow, ra.note, nil)
			b := newCheckedNetwork(pb, func() fsm.Group { return tc.remote }, allow, rb.note, nil)
			defer a.Listener().Close()
			defer b.Listener().Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := b.Listener().Accept()
				if err == nil {
					accepted <- c
				}
			}()
			c, err := a.Dial(context.Background(), kb.Public())
			if tc.ok {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				srv := <-accepted
				go c.Write([]byte("x")) // the engine's bytes follow the exchange untouched
				buf := make([]byte, 1)
				if _, err := io.ReadFull(srv, buf); err != nil || buf[0] != 'x' {
					t.Fatalf("after the exchange: %q %v", buf, err)
				}
				c.Close()
				return
			}
			var de *DefinitionError
			if !errors.As(err, &de) || de.Err.Field != "member" || !strings.Contains(err.Error(), "defines the group differently") {
				t.Fatalf("dial: %v, want a DefinitionError naming the member", err)
			}
			ra.mu.Lock()
			defer ra.mu.Unlock()
			if len(ra.got) == 0 {
				t.Fatal("the refusal was not reported")
			}
		})
	}
}

func TestDefinitionExchangeRefusesGarbageAndAdmission(t *testing.T) {
	ka, kb := testKey(t, 1), testKey(t, 2)
	g, _ := fsm.NewGroup("reviews", fsm.ModeRaft, 0, []identity.PublicKey{ka.Public(), kb.Public()})
	pa, pb := pipePair(ka.Public(), kb.Public())
	rb := refusals{ch: make(chan error, 4)}
	b := newCheckedNetwork(pb, func() fsm.Group { return g }, func(identity.PublicKey) error { return nil }, rb.note, nil)
	defer b.Listener().Close()
	// A raw connection that sends an oversized definition is closed.
	raw, err := pa.Dial(context.Background(), kb.Public())
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, raw)
	raw.Write(append([]byte(helloMagic), 0xff, 0xff, 0xff, 0xff))
	select {
	case err := <-rb.ch:
		if !strings.Contains(err.Error(), "limit") {
			t.Fatalf("refusal: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an oversized definition was not refused")
	}
	raw.Close()

	// A member that admission refuses (trust, budgets) is not dialled.
	denied := errors.New("quarantined")
	a := newCheckedNetwork(pa, func() fsm.Group { return g }, func(identity.PublicKey) error { return denied }, (&refusals{}).note, nil)
	defer a.Listener().Close()
	if _, err := a.Dial(context.Background(), kb.Public()); !errors.Is(err, denied) {
		t.Fatalf("dial of a refused member: %v", err)
	}
}

// A peer of the node that is not a member of the group learns nothing of the
// group from its connection: not its members, not its epoch. It is told only
// that this member does not list it, and the connection is closed.
func TestDefinitionExchangeTellsOutsidersNothing(t *testing.T) {
	ka, kb, kc := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	g, _ := fsm.NewGroup("reviews", fsm.ModeBFT, 0, []identity.PublicKey{ka.Public(), kb.Public()})
	pc, pb := pipePair(kc.Public(), kb.Public())
	rb := refusals{ch: make(chan error, 4)}
	b := newCheckedNetwork(pb, func() fsm.Group { return g }, func(identity.PublicKey) error { return nil }, rb.note, nil)
	defer b.Listener().Close()

	// The outsider claims a definition that lists it, as a prober would.
	claimed, _ := fsm.NewGroup("reviews", fsm.ModeBFT, 0, []identity.PublicKey{ka.Public(), kb.Public(), kc.Public()})
	raw, err := pc.Dial(context.Background(), kb.Public())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	canon := claimed.Canonical()
	go raw.Write(append(append([]byte(helloMagic), byte(len(canon)>>24), byte(len(canon)>>16), byte(len(canon)>>8), byte(len(canon))), canon...))
	got, _ := io.ReadAll(raw)
	for _, m := range g.Members {
		if strings.Contains(string(got), string(m.Bytes())) {
			t.Fatalf("an outsider read member %s of the group's definition", m.Short())
		}
	}
	if _, err := readHello(strings.NewReader(string(got))); err == nil || !strings.Contains(err.Error(), "does not list this node") {
		t.Fatalf("outsider's answer: %v, want a refusal saying it is not listed", err)
	}
	select {
	case err := <-rb.ch:
		if !errors.Is(err, ErrNotMember) {
			t.Fatalf("refusal: %v, want ErrNotMember", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the outsider's connection was not reported")
	}
}

// "no quorum" names why a member refused this node, never an outsider's
// probe: any peer of the node may open the group's protocol, and its refusal
// says nothing about the quorum.
func TestNoQuorumExplainsWithMembersOnly(t *testing.T) {
	ka, kb, kc := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	g, _ := fsm.NewGroup("reviews", fsm.ModeBFT, 0, []identity.PublicKey{ka.Public(), kb.Public()})
	gr := &group{refused: map[identity.PublicKey]string{
		kc.Public(): "consensus: connection from outsider: " + ErrNotMember.Error(),
		kb.Public(): "member b defines the group differently",
	}}
	gr.cur.Store(&g)
	err := gr.explain(ErrNoQuorum)
	if !errors.Is(err, ErrNoQuorum) || !strings.Contains(err.Error(), "defines the group differently") {
		t.Fatalf("explained as %v", err)
	}
	delete(gr.refused, kb.Public())
	if err := gr.explain(ErrNoQuorum); err.Error() != ErrNoQuorum.Error() {
		t.Fatalf("with only an outsider refused: %v", err)
	}
}

// A member whose definition lists the far end, which does not list it back,
// learns that much from the refusal (group ls shows it), nothing more.
func TestDefinitionExchangeNotListedIsNamed(t *testing.T) {
	ka, kb, kc := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	mine, _ := fsm.NewGroup("board", fsm.ModeRaft, 0, []identity.PublicKey{ka.Public(), kb.Public()})
	theirs, _ := fsm.NewGroup("board", fsm.ModeRaft, 0, []identity.PublicKey{kb.Public(), kc.Public()})
	pa, pb := pipePair(ka.Public(), kb.Public())
	allow := func(identity.PublicKey) error { return nil }
	var ra refusals
	a := newCheckedNetwork(pa, func() fsm.Group { return mine }, allow, ra.note, nil)
	b := newCheckedNetwork(pb, func() fsm.Group { return theirs }, allow, (&refusals{}).note, nil)
	defer a.Listener().Close()
	defer b.Listener().Close()
	_, err := a.Dial(context.Background(), kb.Public())
	if err == nil || !strings.Contains(err.Error(), "defines the group differently") || !strings.Contains(err.Error(), "does not list this node") {
		t.Fatalf("dial: %v", err)
	}
	if strings.Contains(err.Error(), kc.Public().Short()) {
		t.Fatalf("the refusal names a member of the other definition: %v", err)
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if len(ra.got) != 1 {
		t.Fatalf("refusals reported: %v", ra.got)
	}
}
