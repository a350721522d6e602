package node

import (
	"context"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
)

// Gossip may move one peer's address addrMoveBurst times at once (a node
// restarted a few times in a row comes back on new ports), then once per
// addrMoveWindow. A member signs a new record whenever it likes, and each
// move rewrites treaty.yaml, reloads and is audited; past the burst only the
// latest address is kept, and it is applied when the next move is allowed.
const (
	addrMoveWindow = time.Minute
	addrMoveBurst  = 3
)

// addrMoves paces the address moves gossip asks for, per key of the peer
// book, with a token bucket. Pending moves are applied by the watch loop's
// tick, so they cost no goroutine; state is kept only for keys in the peer
// book, and dropped once the bucket is full again with nothing pending.
type addrMoves struct {
	mu sync.Mutex
	by map[identity.PublicKey]*addrMove
}

type addrMove struct {
	credit time.Duration // a move costs addrMoveWindow; at most addrMoveBurst of them
	at     time.Time     // when credit was computed
	to     string        // the latest address not yet applied; "" when none
	held   int           // records received and not applied since the last move
}

// fullCredit is a full bucket: addrMoveBurst moves.
const fullCredit = addrMoveBurst * addrMoveWindow

// refill adds the credit earned since e.at (time itself: exact, no drift).
func (e *addrMove) refill(now time.Time) {
	if el := now.Sub(e.at); el > 0 {
		e.credit = min(fullCredit, e.credit+el)
	}
	e.at = now
}

// dueMove is a move to apply.
type dueMove struct {
	key  identity.PublicKey
	to   string
	held int
}

// offer reports whether a record naming addr for key (whose address in force
// is cur) is applied now, and how many records since the last move it ends
// holding; otherwise it is kept as the pending move, replacing any earlier
// one.
func (a *addrMoves) offer(key identity.PublicKey, addr, cur string, now time.Time) (apply bool, held int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.by[key]
	if addr == cur { // the latest record names the address in force: nothing to move
		if e != nil {
			e.to = ""
			e.held++
		}
		return false, 0
	}
	if e == nil {
		if a.by == nil {
			a.by = map[identity.PublicKey]*addrMove{}
		}
		e = &addrMove{credit: fullCredit, at: now}
		a.by[key] = e
	}
	e.refill(now)
	if e.credit >= addrMoveWindow {
		e.credit -= addrMoveWindow
		held = e.held
		e.to, e.held = "", 0
		return true, held
	}
	e.to = addr
	e.held++
	return false, 0
}

// due takes the pending moves that are allowed now, and forgets keys with
// nothing pending whose bucket is full again.
func (a *addrMoves) due(now time.Time) []dueMove {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []dueMove
	for k, e := range a.by {
		e.refill(now)
		switch {
		case e.to == "" && e.credit >= fullCredit:
			delete(a.by, k)
		case e.to != "" && e.credit >= addrMoveWindow:
			e.credit -= addrMoveWindow
			out = append(out, dueMove{key: k, to: e.to, held: e.held})
			e.to, e.held = "", 0
		}
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
// is how many records arrived and were not applied since the move before;
// the audit entry says so, one entry per move.
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
