package node

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/trust"
)

// Revocations of keys this node knows (itself, its peer book, its ledger) are
// written to the ledger and take full effect; those of keys it does not know
// are held (membership.Held), since any member can mint them at will
// (docs/adr/0021-revocations-of-unknown-keys.md). A held revocation still
// refuses its key, is not passed on, is audited per relayer in aggregate,
// and is kept in the ledger's held_revoked across restarts; once its key
// turns up (an introduction, a join, a group admission, a rotation) it is
// applied like any other.

// errHeld marks a valid revocation that was held, not applied nor passed on.
var errHeld = errors.New("revocation of a key this node does not know: held, not applied")

// errHeldOverRate refuses a revocation of an unknown key from a relayer whose
// allowance is spent. Its text is fixed, so it aggregates under one reason.
var errHeldOverRate = refusal.New(refusal.StageBudget, "too many revocations of keys this node does not know")

// Reasons of the aggregated statement.refused entries held revocations cause.
const (
	reasonHeld         = "revocation_of_unknown_key_held"
	reasonHeldOverRate = "revocation_of_unknown_key_over_rate"
)

// knownKey reports whether k is a key this node knows: itself, one of its
// peer book, or one its ledger already refuses (revoked, superseded).
func (n *Node) knownKey(k identity.PublicKey) bool {
	if k == n.self {
		return true
	}
	if _, ok := n.state.Load().peers[k]; ok {
		return true
	}
	return n.adm.ledgerWhy(k) != ""
}

// applyRevocation applies a revocation relayed by from (zero: the local
// operator, who is always believed): a known key's is persisted, refuses the
// key (and every key it rotated to) at the handshake, closes its connections
// and drops it from the peer book; an unknown key's, from a member, is held.
func (n *Node) applyRevocation(ctx context.Context, r membership.Revocation, text string, from identity.PublicKey, ack func()) error {
	if n.adm.heldRot != nil && n.adm.heldRot.Names(r.Key) {
		n.promoteHeld(ctx, r.Key) // rotations.go: a held rotation from the key puts it in the ledger
	}
	if !from.IsZero() && !n.knownKey(r.Key) {
		return n.holdRevocation(ctx, r, text, from)
	}
	return n.persistRevocation(ctx, r, text, from, ack)
}

// persistRevocation writes a revocation to the ledger (before ack is called)
// and applies it.
func (n *Node) persistRevocation(ctx context.Context, r membership.Revocation, text string, from identity.PublicKey, ack func()) error {
	a := &n.adm
	a.mu.Lock()
	var err error
	if recordLocked(&a.ledger.Revoked, text) {
		if err = a.saveLocked(); err != nil {
			a.ledger.Revoked = a.ledger.Revoked[:len(a.ledger.Revoked)-1]
		} else {
			a.rebuildLocked(n.now())
		}
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	if a.held != nil {
		a.held.Take(r.Key) // in the ledger now
	}
	ack()
	closed := n.tr.Disconnect(r.Key)
	if r.Key == n.self {
		n.log.Error("this node's own key is revoked: members refuse it; make a new identity and join again")
	}
	report := map[string]any{"issued": r.Issued, "reason": r.Reason, "connections_closed": closed}
	if !from.IsZero() {
		report["relayed_by"] = from.String()
	}
	n.auditAdmission(ctx, KindKeyRevoked, r.Key, "in", report)
	n.adm.counts.revocations.Add(1)
	n.log.Warn("key revoked", "peer", r.Key, "reason", r.Reason, "connections_closed", closed)
	return n.dropRefused(ctx)
}

// holdRevocation holds the revocation of a key this node does not know,
// charged to from's allowance when from is in the peer book (gossip's
// publishers that are not share one), and audits it in aggregate per relayer
// as a statement.refused entry.
func (n *Node) holdRevocation(ctx context.Context, r membership.Revocation, text string, from identity.PublicKey) error {
	relayer := n.accountable(from)
	var err error
	reason := reasonHeld
	switch n.adm.held.Hold(relayer, r, text, n.now()) {
	case membership.HoldAlready:
		return errHeld
	case membership.HoldNew:
		err = errHeld
		n.adm.markHeld() // kept across a restart, saved with others (membership.go)
	case membership.HoldOverRate:
		err, reason = errHeldOverRate, reasonHeldOverRate
		n.overAllowance(relayer, "relayed more revocations of unknown keys than allowed")
	}
	n.heldRefused(ctx, from, relayer, reason, map[string]string{"key": r.Key.String()})
	return err
}

// heldRefused audits a statement held or refused because it names only keys
// this node does not know, aggregated per relayer (zero: the shared
// allowance) as statement.refused; report names the keys, and from, the
// member that relayed it.
func (n *Node) heldRefused(ctx context.Context, from, relayer identity.PublicKey, reason string, report map[string]string) {
	k := refusalKey{source: overflowSource, kind: KindStmtRefused, direction: "in", stage: string(refusal.StagePolicy)}
	if !relayer.IsZero() {
		k.source = relayer.String()
	}
	if !n.refusalAdmitted(k, reason) {
		return
	}
	n.log.Warn("statement about keys this node does not know not applied", "from", from, "reason", reason)
	e := audit.Entry{Kind: KindStmtRefused, Direction: "in", Outcome: "refused", Stage: string(refusal.StagePolicy)}
	if !relayer.IsZero() {
		e.Peer = relayer.String()
	}
	report["reason"] = reason
	report["relayed_by"] = from.String()
	e.Report, _ = json.Marshal(report)
	if _, aerr := n.audit.Append(context.WithoutCancel(ctx), e); aerr != nil {
		n.log.Error("audit append of a held statement failed", "err", aerr)
	}
}

// overAllowance charges relayer (unless zero) budget evidence for relaying
// more statements about unknown keys than its allowance.
func (n *Node) overAllowance(relayer identity.PublicKey, detail string) {
	if relayer.IsZero() {
		return
	}
	if _, err := n.trust.Observe(relayer.String(), trust.Evidence{Kind: trust.KindBudget, Detail: detail, At: n.now()}); err != nil {
		n.log.Error("trust evidence not recorded", "err", err)
	}
}

// accountable returns from when it is in the peer book, else the zero key:
// relayers the node cannot hold to account share one allowance.
func (n *Node) accountable(from identity.PublicKey) identity.PublicKey {
	if _, member := n.state.Load().peers[from]; !member {
		return identity.PublicKey{}
	}
	return from
}

// promoteHeld applies what this node holds about k (a revocation of it, the
// rotations from or to it) for good, now that k has turned up: an
// introduction, a join, a rotation or a revocation names it.
func (n *Node) promoteHeld(ctx context.Context, k identity.PublicKey) {
	n.adm.rotMu.Lock()
	defer n.adm.rotMu.Unlock()
	n.promoteRevocation(ctx, k)
	n.promoteRotationsLocked(ctx, k) // rotations.go
}

// promoteRevocation applies a held revocation of k for good and passes it
// on (members that learn k from elsewhere must refuse it too); it reports
// whether there was one.
func (n *Node) promoteRevocation(ctx context.Context, k identity.PublicKey) bool {
	if n.adm.held == nil {
		return false
	}
	text, relayer, ok := n.adm.held.Take(k)
	if !ok {
		return false
	}
	r, err := membership.ParseRevocation(text)
	if err != nil {
		return false // held only after it verified
	}
	if err := n.persistRevocation(ctx, r, text, relayer, func() {}); err != nil {
		n.log.Error("held revocation not applied", "peer", k, "relayed_by", relayer, "err", err)
		return false
	}
	n.goTracked(func() { n.spread(ctx, text, nil) })
	return true
}
