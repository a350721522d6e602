package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/policy"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/trust"
	"github.com/treaty-dev/treaty/internal/wire"
)

// observe records evidence about peer. A failure to persist is logged, not
// returned: trust is advisory and must not fail the call it describes.
func (n *Node) observe(peer identity.PublicKey, kind trust.Kind, detail string) {
	change, err := n.trust.Observe(peer.String(), trust.Evidence{Kind: kind, Detail: detail, At: n.now()})
	if err != nil {
		n.log.Warn("trust: record evidence", "event", "trust.record_failed", "peer", peer, "kind", kind, "err", err)
		return
	}
	if change.Changed() {
		n.log.Info("trust level changed", "event", "trust.level", "peer", peer, "from", change.From, "to", change.To, "cause", kind)
	}
}

// wireEvidence maps an inbound wire refusal to trust evidence, if it says
// something about the peer: a forgery or a replay, or an unsigned or
// malformed request on a connection it authenticated. A clock skew, a full
// replay window and a delegation chain that is too deep or loops (the
// peer's callers decide those) say nothing.
func wireEvidence(err error) (trust.Kind, bool) {
	r, ok := wire.ReasonOf(err)
	if !ok {
		return "", false
	}
	switch r {
	case wire.ReasonBadSignature, wire.ReasonKeyMismatch:
		return trust.KindBadSignature, true
	case wire.ReasonReplayed:
		return trust.KindReplay, true
	case wire.ReasonMalformed, wire.ReasonMissingComponent, wire.ReasonBadAudience, wire.ReasonTTLTooLong,
		wire.ReasonDigestMismatch, wire.ReasonChainMalformed, wire.ReasonChainBroken:
		return trust.KindMalformed, true
	}
	return "", false
}

// inboundGates runs the trust and budget gates for an inbound call and returns
// the policy context for authorization and the budget ticket to release.
func (n *Node) inboundGates(peer identity.PublicKey, capName string, reqBytes int) (policy.Context, budget.Ticket, *refusal.Error) {
	defer n.timeStage(stageGates)()
	now := n.now()
	st := n.trust.Standing(peer.String(), now)
	if st.Quarantined {
		return policy.Context{}, budget.Ticket{}, refusal.New(refusal.StageTrust, "quarantined")
	}
	ticket, err := n.budget.Acquire(peer.String(), capName, budget.In, int64(reqBytes), now)
	if err != nil {
		n.observe(peer, trust.KindBudget, capName)
		return policy.Context{}, budget.Ticket{}, budgetRefusal(err)
	}
	return policy.Context{Trust: st.Score, Level: st.Level.String()}, ticket, nil
}

// budgetRefusal names the budget, the limit and when it resets, in a form that
// is safe to send to the peer.
func budgetRefusal(err error) *refusal.Error {
	var e *budget.Exceeded
	if errors.As(err, &e) {
		return &refusal.Error{Stage: refusal.StageBudget, Err: err,
			Reason: fmt.Sprintf("%s limit %s exceeded; resets in %v", e.Budget, e.Limit, e.ResetIn.Round(time.Millisecond))}
	}
	return refusal.Wrap(refusal.StageBudget, err)
}

// outboundGates checks the breaker and the outbound budget toward p. The
// returned finish must be called exactly once with the call's outcome.
func (n *Node) outboundGates(p Peer, capName string, reqBytes int) (finish func(err error, replyBytes int), _ error) {
	defer n.timeStage(stageGates)()
	now := n.now()
	br, err := n.budget.Breaker(p.ID.String()).Allow(now)
	if err != nil {
		return nil, budgetRefusal(err)
	}
	ticket, err := n.budget.Acquire(p.ID.String(), capName, budget.Out, int64(reqBytes), now)
	if err != nil {
		br.Release() // the peer did nothing: hand back the probe
		return nil, budgetRefusal(err)
	}
	return func(err error, replyBytes int) {
		now := n.now()
		ticket.Release(0, int64(replyBytes), now)
		reached, healthy, kind := calleeOutcome(err)
		if !reached {
			br.Release() // the peer took no part: its breaker learns nothing
			return
		}
		br.Record(healthy, now)
		if kind != "" {
			n.observe(p.ID, kind, capName)
		}
	}, nil
}

// errCallerGaveUp marks an outbound call that the local caller cancelled.
var errCallerGaveUp = errors.New("caller gave up")

// calleeOutcome judges a finished outbound call: whether the peer took part at
// all (a call refused locally or given up by the caller says nothing about it),
// whether it was healthy (for its breaker) and what it says about the peer (for
// its trust).
func calleeOutcome(err error) (reached, healthy bool, kind trust.Kind) {
	if err == nil {
		return true, true, trust.KindSuccess
	}
	if errors.Is(err, errCallerGaveUp) {
		return false, false, ""
	}
	var r *refusal.Error
	if !errors.As(err, &r) {
		return true, false, trust.KindFailure
	}
	switch {
	case r.Remote && r.Stage == refusal.StageBackend:
		return true, false, trust.KindFailure
	case r.Remote:
		return true, true, "" // the peer answered and refused by its own rules
	case r.Stage == refusal.StageTransport && transport.NotAdmitted(r.Err):
		return false, false, "" // up, and does not admit our key (yet): not its health
	case r.Stage == refusal.StageTransport:
		return true, false, trust.KindTimeout
	case r.Stage == refusal.StageWire: // the peer's answer failed our checks
		if k, ok := wireEvidence(r.Err); ok && k == trust.KindBadSignature {
			return true, false, k
		}
		return true, false, trust.KindFailure
	case r.Stage == refusal.StageScreen:
		return true, true, "" // screenInbound has recorded the verdict
	}
	return false, false, "" // refused here before anything reached the peer
}

// TrustOverride is an operator's change to one peer's trust (trust.Override;
// SetTrust fills in Peer).
type TrustOverride = trust.Override

// SetTrust applies an operator override to peer (nickname or did:key): the
// same checks and order of steps as for a stopped node (trust.Override.Apply).
func (n *Node) SetTrust(peerRef string, o TrustOverride) error {
	p, err := n.Resolve(peerRef)
	if err != nil {
		return err
	}
	o.Peer = p.ID.String()
	if err := o.Validate(); err != nil {
		return refusal.Wrap(refusal.StageUsage, err)
	}
	return o.Apply(n.trust, n.now())
}

// TrustSnapshot returns peer's trust as the node sees it now.
func (n *Node) TrustSnapshot(peer identity.PublicKey) trust.Snapshot {
	return n.trust.Get(peer.String(), n.now())
}
