package node

import (
	"context"
	"errors"

	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// Rotations that concern a key this node knows are written to the ledger and
// take effect; those between keys it does not know are held (kept in the
// ledger's held_rotations across restarts; membership.HeldRotations), since
// any member can mint them at will: a rotation signed by two keys it made is
// valid (docs/adr/0022-rotations-of-unknown-keys.md). A held rotation is not passed
// on, is audited per relayer in aggregate, refuses its new key when its old
// key is revoked, and is applied once either key turns up: the rotation
// that makes its old key a member here (a chain delivered out of order), an
// introduction, a join, a group admission or a revocation that names it.

// errHeldRotation marks a valid rotation that was held, not applied nor passed on.
var errHeldRotation = errors.New("rotation between keys this node does not know: held, not applied")

// errHeldRotationOverRate refuses a rotation between unknown keys from a
// relayer whose allowance is spent. Its text is fixed, so it aggregates
// under one reason.
var errHeldRotationOverRate = refusal.New(refusal.StageBudget, "too many rotations between keys this node does not know")

// Reasons of the aggregated statement.refused entries held rotations cause.
const (
	reasonRotationHeld     = "rotation_of_unknown_keys_held"
	reasonRotationOverRate = "rotation_of_unknown_keys_over_rate"
)

// live reports whether k is this node or in its peer book: a key that may
// connect here, whose entry a rotation moves.
func (n *Node) live(k identity.PublicKey) bool {
	if k == n.self {
		return true
	}
	_, ok := n.state.Load().peers[k]
	return ok
}

// rotationNeeded reports whether r changes something for a key this node
// knows: it rotates this node's key or a member's (moving its entry), or it
// hands over to a member's key, either from a revoked key (the member must
// go) or as the one rotation that led to that key (so that a revocation of
// the older key reaches it). Each of these is written at most once per key:
// after it, the old key is no member, and the new key has a rotation to it.
func (n *Node) rotationNeeded(r membership.Rotation) bool {
	switch {
	case r.Old == n.self || r.New == n.self || n.live(r.Old):
		return true
	case n.live(r.New):
		return n.adm.ledgerWhy(r.Old) == "revoked" || !n.adm.hasRotationTo(r.New)
	}
	return false
}

// hasRotationTo reports whether the ledger holds a rotation to k.
func (a *admission) hasRotationTo(k identity.PublicKey) bool {
	m := a.rotatedTo.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[k]
	return ok
}

// inLedger reports whether the ledger holds the rotation text.
func (a *admission) inLedger(text string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.ledger.Rotations {
		if s == text {
			return true
		}
	}
	return false
}

// applyRotation applies a rotation relayed by from (zero: the local operator,
// who is always believed). A held revocation of either key is applied first
// (the key turned up), and then so is the rotation; otherwise a rotation this
// node needs (rotationNeeded), or has already written, is persisted and
// applied, and any other rotation from a member is held.
func (n *Node) applyRotation(ctx context.Context, r membership.Rotation, text string, from identity.PublicKey, ack func()) error {
	a := &n.adm
	a.rotMu.Lock()
	defer a.rotMu.Unlock()
	promoted := n.promoteRevocation(ctx, r.Old)
	promoted = n.promoteRevocation(ctx, r.New) || promoted
	if !from.IsZero() && !promoted && !n.rotationNeeded(r) && !a.inLedger(text) {
		return n.holdRotation(ctx, r, text, from)
	}
	if err := n.checkRotationRate(ctx, r, text, from); err != nil { // rotation_rate.go
		return err
	}
	return n.persistRotation(ctx, r, text, from, ack)
}

// holdRotation holds a rotation between keys this node does not know,
// charged to from's allowance when from is in the peer book (gossip's
// publishers that are not share one), and audits it in aggregate per relayer
// as a statement.refused entry.
func (n *Node) holdRotation(ctx context.Context, r membership.Rotation, text string, from identity.PublicKey) error {
	relayer := n.accountable(from)
	var err error
	reason := reasonRotationHeld
	switch n.adm.heldRot.Hold(relayer, r, text, n.now()) {
	case membership.HoldAlready:
		return errHeldRotation
	case membership.HoldNew:
		err = errHeldRotation
		n.adm.markHeld() // kept across a restart, saved with others (membership.go)
	case membership.HoldOverRate:
		err, reason = errHeldRotationOverRate, reasonRotationOverRate
		n.overAllowance(relayer, "relayed more rotations between unknown keys than allowed")
	}
	n.heldRefused(ctx, from, relayer, reason, map[string]string{"old": r.Old.String(), "new": r.New.String()})
	return err
}

// promoteRotationsLocked applies the held rotations naming k for good, now
// that k has turned up, and passes them on; a.rotMu is held.
func (n *Node) promoteRotationsLocked(ctx context.Context, k identity.PublicKey) {
	if n.adm.heldRot == nil {
		return
	}
	for _, h := range n.adm.heldRot.Take(k) {
		n.promoteRevocation(ctx, h.Rotation.Old)
		n.promoteRevocation(ctx, h.Rotation.New)
		if err := n.persistRotation(ctx, h.Rotation, h.Text, h.Relayer, func() {}); err != nil {
			n.log.Error("held rotation not applied", "old", h.Rotation.Old, "new", h.Rotation.New, "relayed_by", h.Relayer, "err", err)
			continue
		}
		n.goTracked(func() { n.spread(ctx, h.Text, nil) })
	}
}

// persistRotation writes a rotation to the ledger (before ack is called) and
// moves a member's entry, grants, rules, trust and budgets from its old key
// to its new one. The old key is refused from then on. A rotation from a
// revoked key is void, and its new key is refused as well. The held
// rotations naming the new key are applied after it (a chain delivered out
// of order); a.rotMu is held.
func (n *Node) persistRotation(ctx context.Context, r membership.Rotation, text string, from identity.PublicKey, ack func()) error {
	a := &n.adm
	a.mu.Lock()
	added := recordLocked(&a.ledger.Rotations, text)
	var err error
	if added {
		if err = a.saveLocked(); err != nil {
			a.ledger.Rotations = a.ledger.Rotations[:len(a.ledger.Rotations)-1]
		} else {
			a.rebuildLocked(n.now())
			if a.rotLimit != nil {
				a.rotLimit.Applied(r, n.now()) // the chain's next rotation waits (rotation_rate.go)
			}
		}
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	ack()
	err = n.moveRotated(ctx, r, from)
	n.promoteRotationsLocked(ctx, r.New)
	return err
}

// moveRotated carries out a persisted rotation's effects.
func (n *Node) moveRotated(ctx context.Context, r membership.Rotation, from identity.PublicKey) error {
	n.tr.Disconnect(r.Old)
	if why := n.adm.refusedWhy(r.New); why == "revoked" {
		n.tr.Disconnect(r.New)
		n.log.Warn("rotation from a revoked key: both keys refused", "old", r.Old, "new", r.New)
		return n.dropRefused(ctx)
	}
	if r.Old == n.self || r.New == n.self {
		return nil
	}
	found, err := home.ReplaceKey(n.home, r.Old, r.New)
	if err != nil || !found {
		return err
	}
	if err := n.trust.Move(r.Old.String(), r.New.String()); err != nil {
		n.log.Error("trust not moved to the rotated key", "err", err)
	}
	if err := n.reload(); err != nil {
		return err
	}
	// What the old key spent stays spent: rotating a key never resets a
	// budget. After the reload, so that the new key's rules are in force.
	n.budget.Move(r.Old.String(), r.New.String(), n.now())
	n.refusals.budget.move(r.Old, r.New)
	report := map[string]any{"old": r.Old.String(), "new": r.New.String(), "issued": r.Issued}
	if !from.IsZero() {
		report["relayed_by"] = from.String()
	}
	n.auditAdmission(ctx, KindKeyRotated, r.New, "in", report)
	n.adm.counts.rotationsIn.Add(1)
	n.log.Info("peer rotated its key", "old", r.Old, "new", r.New)
	return nil
}

// heldRotationRevoked reports whether a held rotation hands over to k, or
// to a key that hands over to k, from a revoked key: a rotation from a
// revoked key is void and refuses its new key, held or not. The walk visits
// each held rotation at most once.
func (a *admission) heldRotationRevoked(k identity.PublicKey) bool {
	if a.heldRot == nil {
		return false
	}
	olds := a.heldRot.OldKeysTo(k)
	if len(olds) == 0 {
		return false
	}
	seen := map[identity.PublicKey]bool{k: true}
	for len(olds) > 0 {
		o := olds[0]
		olds = olds[1:]
		if seen[o] {
			continue
		}
		seen[o] = true
		if a.ledgerWhy(o) == "revoked" || a.held != nil && a.held.Revoked(o) {
			return true
		}
		olds = append(olds, a.heldRot.OldKeysTo(o)...)
	}
	return false
}
