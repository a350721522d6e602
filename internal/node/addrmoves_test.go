package node

import (
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
)

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openMovesNode opens (without starting) a node whose peer book holds bob at
// 127.0.0.1:7000, on a fake clock.
func openMovesNode(t *testing.T) (*Node, string, identity.PublicKey, *fakeClock) {
	t.Helper()
	dir := t.TempDir() + "/n"
	if _, err := home.Init(dir, "n", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	k, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	bob := k.Public()
	if err := home.AddPeer(dir, "bob", "127.0.0.1:7000", bob.String()); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	n, err := Open(Options{Home: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, dir, bob, clock
}

func record(k identity.PublicKey, seq uint64, addr string) membership.Member {
	return membership.Member{Record: membership.Record{Key: k, Fields: membership.Fields{Addrs: []string{addr}}, Seq: seq}, State: membership.StateAlive}
}

// addressMoves are the audit entries of moves gossip applied, with the count
// of records each folded in.
func addressMoves(t *testing.T, n *Node) (tos []string, held []int) {
	t.Helper()
	for _, e := range AuditEntries(t, n) {
		if e.Kind != KindMemberAdmit {
			continue
		}
		var r struct {
			Change string `json:"change"`
			To     string `json:"to"`
			Held   int    `json:"records_held"`
		}
		_ = json.Unmarshal(e.Report, &r)
		if r.Change == "address" {
			tos = append(tos, r.To)
			held = append(held, r.Held)
		}
	}
	return tos, held
}

func configChanges(t *testing.T, n *Node) int {
	t.Helper()
	c := 0
	for _, e := range AuditEntries(t, n) {
		if e.Kind == audit.KindPolicyChanged {
			c++
		}
	}
	return c
}

// TestGossipAddressFlipsPaced: a member whose records flip between two
// addresses moves its peer book entry addrMoveBurst times, then once per
// window, not once per record; the latest address lands when the next move
// is allowed, with one audit entry that counts the records held. Without the
// pacing each of the 200 records rewrote treaty.yaml, reloaded and was
// audited.
func TestGossipAddressFlipsPaced(t *testing.T) {
	t.Parallel()
	n, _, bob, clock := openMovesNode(t)
	ctx := t.Context()
	before := configChanges(t, n)
	const flips = 200
	for i := range flips {
		addr := "127.0.0.1:7001"
		if i%2 == 1 {
			addr = "127.0.0.1:7002"
		}
		n.gossipChanged(ctx, record(bob, uint64(i+1), addr))
		clock.advance(100 * time.Millisecond)
	}
	n.gossipChanged(ctx, record(bob, flips+1, "127.0.0.1:7003")) // where it finally settles
	if got := n.state.Load().peers[bob].Addr; got != "127.0.0.1:7001" {
		t.Fatalf("address after the flips = %s, want the third move's 127.0.0.1:7001", got)
	}
	if tos, _ := addressMoves(t, n); len(tos) != addrMoveBurst {
		t.Fatalf("%d address moves audited within the first minute, want %d", len(tos), addrMoveBurst)
	}
	if c := configChanges(t, n) - before; c != addrMoveBurst {
		t.Fatalf("%d configuration changes within the first minute, want %d", c, addrMoveBurst)
	}

	// Not yet: a window has not passed since the burst began.
	clock.advance(addrMoveWindow - flips*100*time.Millisecond - time.Millisecond)
	n.applyDueMoves(ctx)
	if got := n.state.Load().peers[bob].Addr; got != "127.0.0.1:7001" {
		t.Fatalf("address moved to %s before the next move was allowed", got)
	}
	clock.advance(time.Millisecond)
	n.applyDueMoves(ctx)
	if got := n.state.Load().peers[bob].Addr; got != "127.0.0.1:7003" {
		t.Fatalf("address once a move was allowed = %s, want the latest record's 127.0.0.1:7003", got)
	}
	if got := readPeerAddr(t, n.home, "bob"); got != "127.0.0.1:7003" {
		t.Fatalf("treaty.yaml has bob at %s, want 127.0.0.1:7003", got)
	}
	tos, held := addressMoves(t, n)
	if len(tos) != addrMoveBurst+1 || tos[addrMoveBurst] != "127.0.0.1:7003" || held[addrMoveBurst] != flips-addrMoveBurst+1 {
		t.Fatalf("audited moves %v holding %v, want a last one to 127.0.0.1:7003 holding %d records", tos, held, flips-addrMoveBurst+1)
	}

	// The next records wait a window each.
	n.gossipChanged(ctx, record(bob, flips+2, "127.0.0.1:7004"))
	if got := n.state.Load().peers[bob].Addr; got != "127.0.0.1:7003" {
		t.Fatalf("a move right after a paced one landed at once: %s", got)
	}
	clock.advance(addrMoveWindow)
	n.applyDueMoves(ctx)
	if got := n.state.Load().peers[bob].Addr; got != "127.0.0.1:7004" {
		t.Fatalf("a held move did not land after a window: %s", got)
	}

	// Once the bucket is full again the state is gone, and a genuine move
	// lands at once.
	clock.advance(addrMoveBurst * addrMoveWindow)
	n.applyDueMoves(ctx)
	if l := movesTracked(n); l != 0 {
		t.Fatalf("%d keys still tracked after quiet minutes", l)
	}
	n.gossipChanged(ctx, record(bob, flips+3, "127.0.0.1:7005"))
	if got := n.state.Load().peers[bob].Addr; got != "127.0.0.1:7005" {
		t.Fatalf("a move after quiet minutes did not land at once: %s", got)
	}
}

// useBurst moves bob addrMoveBurst times, ending at 127.0.0.1:7100.
func useBurst(t *testing.T, n *Node, bob identity.PublicKey) {
	t.Helper()
	for i := range addrMoveBurst {
		n.gossipChanged(t.Context(), record(bob, uint64(i+1), "127.0.0.1:"+strconv.Itoa(7100+addrMoveBurst-1-i)))
	}
	if got := n.state.Load().peers[bob].Addr; got != "127.0.0.1:7100" {
		t.Fatalf("the burst's moves did not land at once: %s", got)
	}
}

// TestGossipAddressFlipBackCancels: when the latest held record names the
// address in force again, nothing is moved when a move is allowed.
func TestGossipAddressFlipBackCancels(t *testing.T) {
	t.Parallel()
	n, _, bob, clock := openMovesNode(t)
	ctx := t.Context()
	useBurst(t, n, bob)
	n.gossipChanged(ctx, record(bob, 10, "127.0.0.1:7200"))
	n.gossipChanged(ctx, record(bob, 11, "127.0.0.1:7100"))
	clock.advance(addrMoveWindow)
	n.applyDueMoves(ctx)
	if tos, _ := addressMoves(t, n); len(tos) != addrMoveBurst {
		t.Fatalf("moves audited %v, want only the burst's %d", tos, addrMoveBurst)
	}
	if got := n.state.Load().peers[bob].Addr; got != "127.0.0.1:7100" {
		t.Fatalf("address = %s, want 127.0.0.1:7100", got)
	}
}

// TestGossipPendingMoveOfRemovedPeer: a move held back for a key the
// operator then removes from the peer book does not put it back.
func TestGossipPendingMoveOfRemovedPeer(t *testing.T) {
	t.Parallel()
	n, dir, bob, clock := openMovesNode(t)
	ctx := t.Context()
	useBurst(t, n, bob)
	n.gossipChanged(ctx, record(bob, 10, "127.0.0.1:7200")) // held
	if err := home.RemovePeer(dir, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	clock.advance(addrMoveWindow)
	n.applyDueMoves(ctx)
	if _, ok := n.state.Load().peers[bob]; ok {
		t.Fatal("a held move put a removed peer back in the book")
	}
	if l := movesTracked(n); l != 0 {
		t.Fatalf("%d keys tracked after the peer left the book", l)
	}
	// Records of keys outside the book leave no state.
	n.gossipChanged(ctx, record(bob, 11, "127.0.0.1:7300"))
	if l := movesTracked(n); l != 0 {
		t.Fatalf("%d keys tracked for a key outside the book", l)
	}
}

func movesTracked(n *Node) int {
	n.moves.mu.Lock()
	defer n.moves.mu.Unlock()
	return len(n.moves.by)
}

func readPeerAddr(t *testing.T, dir, name string) string {
	t.Helper()
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range cfg.Peers {
		if p.Name == name {
			return p.Addr
		}
	}
	return ""
}
