package node

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/trust"
)

// groupAdmitRequest gates a proposal another member asks this node to order
// for it (a Raft follower's request forwarded to this leader, a BFT member's
// request sent to this node as the view's leader). It is the
// call path's trust and budget gate applied to group traffic:
//
//   - a quarantined member is refused at stage trust;
//   - a member that spent its allowance of refused requests (ratelimit.go)
//     is refused at stage budget before anything is charged;
//   - every proposal is charged like an inbound call on capability
//     group:NAME: the member's peer-wide budget and the group's rule, if
//     one names it (budget.rules with capability group:NAME, or
//     `treaty limit set PEER --cap group:NAME`). Rate, concurrency (until
//     the proposal is decided) and bytes_in (the request's size) apply;
//     a proposal reports no cost.
//
// An over-budget proposal is what it is for a call: a -1 trust observation
// (not group evidence, it is not proof of misbehaviour), a spent refusal
// token, a counter, and an aggregated group.refused audit entry. The
// proposer gets the refusal with its stage (exit 3).
func (n *Node) groupAdmitRequest(g fsm.Group, member identity.PublicKey, size int) (func(), error) {
	now := n.now()
	capName := groupCapability(g.Name)
	if n.trust.Standing(member.String(), now).Quarantined {
		ref := refusal.New(refusal.StageTrust, "member %s is quarantined", member.Short())
		n.groupGateRefused(g, member, ref, "quarantined")
		return nil, ref
	}
	if !n.refusals.budget.allow(member, now) {
		n.groupGateRefused(g, member, errTooManyRefused, "too_many_refused")
		return nil, errTooManyRefused
	}
	ticket, err := n.budget.Acquire(member.String(), capName, budget.In, int64(size), now)
	if err != nil {
		n.observe(member, trust.KindBudget, capName)
		n.refusals.budget.spend(member, now)
		ref := budgetRefusal(err)
		kind := string(refusal.StageBudget)
		var ex *budget.Exceeded
		if errors.As(err, &ex) {
			kind = ex.Budget
		}
		n.groupGateRefused(g, member, ref, kind)
		return nil, ref
	}
	return func() { ticket.Release(0, 0, n.now()) }, nil
}

// groupGateRefused counts a refused proposal and audits it, aggregated per
// member and stage like the call path's refusals (refusals.go).
func (n *Node) groupGateRefused(g fsm.Group, member identity.PublicKey, ref *refusal.Error, kind string) {
	if n.groups != nil {
		n.groups.metrics.gateRefused(g, ref.Stage)
	}
	key := refusalKey{source: member.String(), kind: KindGroupRefused, direction: "in", stage: string(ref.Stage)}
	if !n.refusalAdmitted(key, kind) {
		return
	}
	n.log.Info("group proposal refused", "event", "group.refused", "group", g.Name, "peer", member, "stage", ref.Stage, "reason", ref.Reason)
	rep, _ := json.Marshal(map[string]any{"group": g.Name, "group_id": g.ID(), "reason": ref.Reason})
	e := audit.Entry{Kind: KindGroupRefused, Peer: member.String(), Direction: "in", Capability: groupCapability(g.Name),
		Outcome: "refused", Stage: string(ref.Stage), Report: rep}
	// Aggregation bounds these to two per member and stage per interval,
	// so waiting for the fsync here does not slow the stream for long.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.audit.Append(ctx, e); err != nil {
		n.log.Error("audit append of a group refusal failed", "err", err)
	}
}
