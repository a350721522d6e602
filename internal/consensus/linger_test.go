package consensus

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// A removed member is refused in both directions, unless the engine lets it
// linger: then until the time it named (and no longer), so that a removed
// BFT member that lagged can fetch the decision that removed it.
func TestLingerLetsARemovedMemberThroughUntilItsTime(t *testing.T) {
	ka, kb, kc := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	before, _ := fsm.NewGroup("reviews", fsm.ModeBFT, 0, []identity.PublicKey{ka.Public(), kb.Public(), kc.Public()})
	after, _ := fsm.NewGroup("reviews", fsm.ModeBFT, 1, []identity.PublicKey{ka.Public(), kc.Public()})
	allow := func(identity.PublicKey) error { return nil }
	pa, pb := pipePair(ka.Public(), kb.Public())
	ra := refusals{ch: make(chan error, 16)}
	a := newCheckedNetwork(pa, func() fsm.Group { return after }, allow, ra.note, nil)
	b := newCheckedNetwork(pb, func() fsm.Group { return before }, allow, (&refusals{}).note, nil)
	defer a.Listener().Close()
	defer b.Listener().Close()
	accept := func(n *checkedNetwork) <-chan net.Conn {
		ch := make(chan net.Conn, 1)
		go func() {
			if c, err := n.Listener().Accept(); err == nil {
				ch <- c
			}
		}()
		return ch
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := a.Dial(ctx, kb.Public()); !errors.Is(err, ErrNotMember) {
		t.Fatalf("dial of a removed member: %v, want ErrNotMember", err)
	}
	// b, which has not applied its removal, dials a: refused after the exchange.
	if c, err := b.Dial(ctx, ka.Public()); err == nil {
		c.Close()
	}
	select {
	case err := <-ra.ch:
		if !errors.Is(err, ErrNotMember) {
			t.Fatalf("refusal: %v, want ErrNotMember", err)
		}
	case <-ctx.Done():
		t.Fatal("a removed member's connection was not refused")
	}

	a.Linger(kb.Public(), time.Now().Add(time.Hour))
	got := accept(b)
	c, err := a.Dial(ctx, kb.Public())
	if err != nil {
		t.Fatalf("dial of a lingering removed member: %v", err)
	}
	c.Close()
	select {
	case c := <-got:
		c.Close()
	case <-ctx.Done():
		t.Fatal("the lingering member did not accept")
	}
	got = accept(a)
	if c, err = b.Dial(ctx, ka.Public()); err != nil {
		t.Fatalf("dial from a lingering removed member: %v", err)
	}
	c.Close()
	select {
	case c := <-got:
		c.Close()
	case <-ctx.Done():
		t.Fatal("a lingering removed member's connection was not accepted")
	}

	a.Linger(kb.Public(), time.Now().Add(-time.Second)) // its time is over
	if _, err := a.Dial(ctx, kb.Public()); !errors.Is(err, ErrNotMember) {
		t.Fatalf("dial of a removed member after its time: %v, want ErrNotMember", err)
	}
}
