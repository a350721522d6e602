package node

import (
	"context"
	"encoding/json"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// A member holds its live key, so it can sign rotations of it at will, and
// each one applied rewrites the ledger, moves the member's entry, grants,
// trust and budgets, and is audited. A rotation a member relays of a live
// member key is therefore refused when that key chain rotated here less than
// membership.RotationInterval ago (membership.RotationLimit; ADR 22,
// amendment). The refusal is a budget-stage error to the pusher, counted
// (treaty_membership_rotations_refused_total), and audited and logged in
// aggregate per relayer. The local operator's rotations are not bounded here:
// Rotate checks this node's own.

// reasonRotationTooSoon is the reason of the aggregated statement.refused
// entries refused rotations cause.
const reasonRotationTooSoon = "rotation_of_live_key_too_soon"

// checkRotationRate returns the refusal of r, relayed by from (zero: the
// local operator), when it rotates a member's live key too soon after the
// last rotation of its chain; a.rotMu is held.
func (n *Node) checkRotationRate(ctx context.Context, r membership.Rotation, text string, from identity.PublicKey) error {
	a := &n.adm
	if from.IsZero() || a.rotLimit == nil || r.Old == n.self || !n.live(r.Old) || a.inLedger(text) {
		return nil
	}
	err := a.rotLimit.Check(r, n.now())
	if err == nil {
		return nil
	}
	k := refusalKey{source: from.String(), kind: KindStmtRefused, direction: "in", stage: string(refusal.StageBudget)}
	if n.refusalAdmitted(k, reasonRotationTooSoon) {
		n.log.Warn("rotation refused: its key chain rotated too recently", "from", from, "old", r.Old, "new", r.New, "err", err)
		e := audit.Entry{Kind: KindStmtRefused, Peer: from.String(), Direction: "in", Outcome: "refused", Stage: string(refusal.StageBudget)}
		e.Report, _ = json.Marshal(map[string]string{"reason": reasonRotationTooSoon, "old": r.Old.String(), "new": r.New.String(),
			"relayed_by": from.String()})
		if _, aerr := n.audit.Append(context.WithoutCancel(ctx), e); aerr != nil {
			n.log.Error("audit append of a refused rotation failed", "err", aerr)
		}
	}
	return &refusal.Error{Stage: refusal.StageBudget, Reason: err.Error(), Err: err}
}

// ownRotationMargin is added to the interval for this node's own rotations:
// members time the interval from arrival, and an Issued time is truncated to
// the second.
const ownRotationMargin = 2 * time.Second

// ownRotationRate refuses a rotation of this node's key while members would
// refuse it: less than membership.RotationInterval (plus a margin) after the
// rotation that made the key. Members would answer with errors, and Rotate
// would then refuse with "no member acknowledged"; this says why at once.
func (n *Node) ownRotationRate() error {
	a := &n.adm
	a.mu.Lock()
	var last time.Time
	for _, s := range a.ledger.Rotations {
		if r, err := membership.ParseRotation(s); err == nil && r.New == n.self && r.Issued.After(last) {
			last = r.Issued
		}
	}
	a.mu.Unlock()
	interval := membership.RotationInterval + ownRotationMargin
	if wait := last.Add(interval).Sub(n.now()); !last.IsZero() && wait > 0 {
		err := &membership.RotationRateError{Old: n.self, Wait: wait, Interval: membership.RotationInterval}
		return &refusal.Error{Stage: refusal.StageBudget, Reason: err.Error(), Err: err}
	}
	return nil
}
