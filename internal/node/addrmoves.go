package node

import (
	"context"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
)

// addrMoveWindow is the least time between two moves of one peer's address
// by gossip. A member signs a new record whenever it likes, and each move
// rewrites treaty.yaml, reloads and is audited; within the window only the
// latest address is kept, and it is applied when the window ends.
const addrMoveWindow = time.Minute

// addrMoves paces the address moves gossip asks for, per key of the peer
// book. Pending moves are applied by the watch loop's tick, so they cost no
// goroutine; state is kept only for keys in the peer book, and dropped once a
// window has passed with nothing pending.
type addrMoves struct {
	mu sync.Mutex
	by map[identity.PublicKey]*addrMove
}

type addrMove struct {
	applied time.Time // when the last move of this key was applied
	to      string    // the latest address not yet applied; "" when none
	held    int       // records received since that move, none applied
}

// dueMove is a pending move whose window has ended.
type dueMove struct {
	key  identity.PublicKey
	to   string
	held int
}

// offer reports whether a record naming addr for key (whose address in force
// is cur) is applied now; otherwise it is kept as the pending move, replacing
// any earlier one.
func (a *addrMoves) offer(key identity.PublicKey, addr, cur string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.by[key]
	if addr == cur { // the latest record names the address in force: nothing to move
		if e != nil {
			e.to = ""
			e.held++
		}
		return false
	}
	if e == nil || now.Sub(e.applied) >= addrMoveWindow {
		if a.by == nil {
			a.by = map[identity.PublicKey]*addrMove{}
		}
		a.by[key] = &addrMove{applied: now}
		return true
	}
	e.to = addr
	e.held++
	return false
}

// due takes the pending moves whose window ended, starting a new window for
// each, and forgets keys with nothing pending whose window ended.
func (a *addrMoves) due(now time.Time) []dueMove {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []dueMove
	for k, e := range a.by {
		if now.Sub(e.applied) < addrMoveWindow {
			continue
		}
		if e.to == "" {
			delete(a.by, k)
			continue
		}
		out = append(out, dueMove{key: k, to: e.to, held: e.held})
		*e = addrMove{applied: now}
	}
	return out
}

// forget drops key's state (it left the peer book).
func (a *addrMoves) forget(key identity.PublicKey) {
	a.mu.Lock()
	delete(a.by, key)
	a.mu.Unlock()
}

// applyDueMoves applies the address moves whose window ended; the watch loop
// calls it on every tick.
func (n *Node) applyDueMoves(ctx context.Context) {
	for _, d := range n.moves.due(n.now()) {
		if n.adm.refusedWhy(d.key) != "" {
			continue
		}
		if _, ok := n.state.Load().peers[d.key]; !ok {
			n.moves.forget(d.key) // removed from the book while pending
			continue
		}
		n.movePeer(ctx, d.key, d.to, d.held)
	}
}

// movePeer writes key's new address into the peer book and applies it. held
// is how many records arrived since the move before (this one's among them),
// none applied; the audit entry says so, one entry per move.
func (n *Node) movePeer(ctx context.Context, key identity.PublicKey, addr string, held int) {
	p, ok := n.state.Load().peers[key]
	if !ok || p.Addr == addr {
		return
	}
	if err := home.SetPeer(n.home, home.PeerChange{Name: p.Name, Addr: addr, ID: p.ID}); err != nil {
		n.log.Warn("peer book not updated from gossip", "peer", key, "err", err)
		return
	}
	if err := n.reload(); err != nil {
		return
	}
	report := map[string]any{"change": "address", "from": p.Addr, "to": addr, "source": "gossip"}
	if held > 0 {
		report["records_held"] = held
	}
	n.auditAdmission(ctx, KindMemberAdmit, key, "in", report)
}
