package bftengine

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/treaty-dev/treaty/internal/refusal"
)

// The leader's gate (EngineConfig.AdmitRequest) on requests other members
// forward to it, and the proposer's side of its refusals.
//
// Only the leader of the current view charges a forwarded request: SmartBFT
// drops one that reaches any other member. An admission is held, once per
// distinct request, until the request is decided, this member stops leading,
// or admitHold passes (the pool may have dropped it: full, timed out); so
// a request that never decides does not hold a member's budget for ever.
// A member's own requests never cross the wire to itself and are not
// charged.

// Bounds of the gate's bookkeeping.
const (
	maxAdmitted  = 8 * maxBatchCount // admissions held; SmartBFT's pool holds no more requests
	decidedKept  = 8192              // hashes of recently decided items; the set is cleared when full
	maxRefReason = 512               // a refusal's reason, on the wire and shown to the proposer
)

// gate is the leader's bookkeeping of admitted requests.
type gate struct {
	mu      sync.Mutex
	held    map[[32]byte]admission
	decided map[[32]byte]bool // a late copy of a decided request is neither charged nor refused
}

type admission struct {
	release func()
	leader  uint64 // this member's ID as the leader that admitted it
	at      time.Time
}

// admitHold is how long an admission may wait for its decision: followers
// complain about a request not ordered within RequestComplainTimeout, so one
// held twice as long is in a pool that dropped it or a view being replaced.
func (e *Engine) admitHold() time.Duration { return 2 * e.opts.config.RequestComplainTimeout }

// admitForwarded gates item, which member l forwarded to this member, and
// reports whether to hand it to SmartBFT. A refused item gets a refusal frame
// back to l.
func (e *Engine) admitForwarded(l *link, item []byte) bool {
	if e.cfg.AdmitRequest == nil {
		return true
	}
	self := e.self.Load()
	if self == 0 || e.leaderID() != self {
		return true // SmartBFT drops it; nothing to charge
	}
	if e.checkItem(item) != nil {
		return true // SmartBFT refuses it unordered; nothing to charge
	}
	k := sha256.Sum256(item)
	now := time.Now()
	e.gate.mu.Lock()
	e.sweepLocked(self, now)
	_, held := e.gate.held[k]
	full := len(e.gate.held) >= maxAdmitted
	e.gate.mu.Unlock()
	switch {
	case held || e.isDecided(k):
		return true // charged once; a resend or a late copy costs nothing more
	case full:
		e.refuse(l, k, refusal.New(refusal.StageBudget, "the leader holds %d requests awaiting order, retry later", maxAdmitted))
		return false
	}
	rel, err := e.cfg.AdmitRequest(l.key, len(item))
	if err != nil {
		e.refuse(l, k, err)
		return false
	}
	if rel == nil {
		rel = func() {}
	}
	e.gate.mu.Lock()
	if _, dup := e.gate.held[k]; dup {
		e.gate.mu.Unlock()
		rel() // a copy admitted meanwhile holds the charge
		return true
	}
	e.gate.held[k] = admission{release: rel, leader: self, at: now}
	e.gate.mu.Unlock()
	return true
}

// sweepLocked releases admissions this member no longer orders as leader or
// that waited past admitHold; e.gate.mu is held.
func (e *Engine) sweepLocked(leader uint64, now time.Time) {
	hold := e.admitHold()
	for k, a := range e.gate.held {
		if a.leader != leader || now.Sub(a.at) > hold {
			a.release()
			delete(e.gate.held, k)
		}
	}
}

func (e *Engine) isDecided(k [32]byte) bool {
	e.gate.mu.Lock()
	defer e.gate.mu.Unlock()
	return e.gate.decided[k]
}

// decided releases the admissions of decided items and remembers them.
func (e *Engine) decidedItems(items [][]byte) {
	if e.cfg.AdmitRequest == nil {
		return
	}
	e.gate.mu.Lock()
	defer e.gate.mu.Unlock()
	for _, it := range items {
		k := sha256.Sum256(it)
		if a, ok := e.gate.held[k]; ok {
			a.release()
			delete(e.gate.held, k)
		}
		if len(e.gate.decided) >= decidedKept {
			clear(e.gate.decided)
		}
		e.gate.decided[k] = true
	}
	if len(e.gate.held) > 0 {
		e.sweepLocked(e.leaderID(), time.Now())
	}
}

// releaseAll drops every admission (the engine is closing).
func (e *Engine) releaseAll() {
	e.gate.mu.Lock()
	defer e.gate.mu.Unlock()
	for k, a := range e.gate.held {
		a.release()
		delete(e.gate.held, k)
	}
}

// refuse tells l that its request k was refused, with the gate's stage
// (budget or trust; anything else is sent as budget).
func (e *Engine) refuse(l *link, k [32]byte, err error) {
	ref := refusalOf{hash: k, stage: refBudget, reason: err.Error()}
	var r *refusal.Error
	if errors.As(err, &r) {
		ref.reason = r.Reason
		if r.Stage == refusal.StageTrust {
			ref.stage = refTrust
		}
	}
	if len(ref.reason) > maxRefReason {
		ref.reason = ref.reason[:maxRefReason]
	}
	e.log.Debug("bftengine: forwarded request refused", "peer", l.key.Short(), "stage", ref.stage.stage(), "reason", ref.reason)
	e.comm.send(l.id, encodeFrame(frame{kind: kindRefusal, ref: ref}))
}

// refStage is a refusal frame's stage byte.
type refStage uint8

const (
	refBudget refStage = 1
	refTrust  refStage = 2
)

func (s refStage) stage() refusal.Stage {
	if s == refTrust {
		return refusal.StageTrust
	}
	return refusal.StageBudget
}

// refusalOf is a refusal frame: the leader's gate refused the request whose
// bytes hash to hash; it was not ordered by that leader.
type refusalOf struct {
	hash   [32]byte
	stage  refStage
	reason string
}

// outbound is a request this member sent to a leader and still waits for:
// who it was sent to (only they may refuse it) and the refusal, if one came.
type outbound struct {
	to      []uint64
	waiters int
	refused chan struct{} // closed when err is set
	err     error
}

// track registers one more waiter for the outbound item k; e.mu is held.
func (e *Engine) trackLocked(k [32]byte) *outbound {
	ob := e.outb[k]
	if ob == nil {
		ob = &outbound{refused: make(chan struct{})}
		e.outb[k] = ob
	}
	ob.waiters++
	return ob
}

// untrackLocked drops a waiter of k; e.mu is held.
func (e *Engine) untrackLocked(k [32]byte) {
	if ob := e.outb[k]; ob != nil {
		if ob.waiters--; ob.waiters <= 0 {
			delete(e.outb, k)
		}
	}
}

// forward sends item to leader l and remembers that l may refuse it.
func (e *Engine) forward(l uint64, k [32]byte, item []byte) {
	e.mu.Lock()
	if ob := e.outb[k]; ob != nil && len(ob.to) < maxSigs {
		if !containsID(ob.to, l) {
			ob.to = append(ob.to, l)
		}
	}
	e.mu.Unlock()
	e.comm.SendTransaction(l, item)
}

func containsID(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// takeRefusal hands a refusal from member l to the waiters of its request,
// if this member sent that request to l; any other refusal is ignored (a
// member cannot fail a request it was never asked to order).
func (e *Engine) takeRefusal(l *link, r refusalOf) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ob := e.outb[r.hash]
	if ob == nil || ob.err != nil || !containsID(ob.to, l.id) {
		return
	}
	ob.err = refusal.Wrap(r.stage.stage(), fmt.Errorf("bftengine: propose: leader %s refused the request at stage %s, it did not order it: %s",
		l.key.Short(), r.stage.stage(), cleanReason(r.reason)))
	close(ob.refused)
}

// cleanReason strips control characters from a peer's reason.
func cleanReason(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, s)
}
