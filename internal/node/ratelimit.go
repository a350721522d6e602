package node

import (
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// Each admitted peer has an allowance of refused requests: a token bucket of
// refusalBurst tokens, refilled at refusalRefill per second. Every refusal at
// the wire, budget or policy stage spends one; a peer whose bucket is empty is
// refused at the budget stage before its body is read or its signature
// checked. A peer that keeps sending what will be refused (unsigned,
// malformed, over budget, not granted) thus gets at most refusalRefill such
// requests per second past the cheap checks (each token may be shared by the
// requests it has in flight at that instant), and its valid calls wait with
// them; other peers are not affected.
const (
	refusalBurst  = 100
	refusalRefill = 1.0 // tokens per second
	// refusalBudgetPeers bounds the buckets held; beyond it, full buckets
	// (which hold no state worth keeping) are dropped, then all.
	refusalBudgetPeers = 4096
)

// errTooManyRefused is the refusal of a peer whose allowance is spent. Its
// reason is fixed, so it aggregates under one key (refusals.go).
var errTooManyRefused = refusal.New(refusal.StageBudget, "too many refused requests; %g allowed per second", refusalRefill)

// refusalBudget holds each peer's allowance of refused requests. It reads no
// clock.
type refusalBudget struct {
	mu    sync.Mutex
	burst float64
	rate  float64 // tokens per second
	max   int     // buckets held
	peers map[identity.PublicKey]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRefusalBudget(burst int, rate float64, maxPeers int) *refusalBudget {
	return &refusalBudget{burst: float64(burst), rate: rate, max: maxPeers, peers: map[identity.PublicKey]*bucket{}}
}

// refill brings b up to now; b.mu must be held.
func (r *refusalBudget) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(r.burst, b.tokens+d.Seconds()*r.rate)
		b.at = now
	}
}

// allow reports whether peer has at least one refusal left at now. It spends
// nothing.
func (r *refusalBudget) allow(peer identity.PublicKey, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.peers[peer]
	if b == nil {
		return true
	}
	r.refill(b, now)
	return b.tokens >= 1
}

// spend takes one token from peer's allowance (not below zero).
func (r *refusalBudget) spend(peer identity.PublicKey, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.peers[peer]
	if b == nil {
		if len(r.peers) >= r.max {
			r.prune(now)
		}
		b = &bucket{tokens: r.burst, at: now}
		r.peers[peer] = b
	}
	r.refill(b, now)
	b.tokens = max(0, b.tokens-1)
}

// prune drops full buckets, and every bucket if none is full; r.mu must be held.
func (r *refusalBudget) prune(now time.Time) {
	for k, b := range r.peers {
		if r.refill(b, now); b.tokens >= r.burst {
			delete(r.peers, k)
		}
	}
	if len(r.peers) >= r.max {
		clear(r.peers)
	}
}

// spendsRefusal reports whether a refusal at stage spends the peer's
// allowance: those it caused by what it sent. (A quarantined peer is refused
// before any work already.)
func spendsRefusal(stage refusal.Stage, err error) bool {
	switch stage {
	case refusal.StageWire, refusal.StagePolicy:
		return true
	case refusal.StageBudget:
		return err != errTooManyRefused
	}
	return false
}

// move hands from's allowance to to, for a key rotation: what the old key
// spent stays spent. Onto a key with an allowance of its own, the emptier of
// the two stays, so rotating onto a key never refills it either.
func (r *refusalBudget) move(from, to identity.PublicKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.peers[from]
	if b == nil {
		return
	}
	delete(r.peers, from)
	if have := r.peers[to]; have != nil {
		at := have.at
		if b.at.After(at) {
			at = b.at
		}
		r.refill(b, at)
		r.refill(have, at)
		if have.tokens <= b.tokens {
			return
		}
	}
	r.peers[to] = b
}
