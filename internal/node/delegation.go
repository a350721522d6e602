package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"

	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/wire"
)

// A call made while serving another call carries the chain of peers it came
// through (wire.Chain, signed by each hop). Go handlers get the served request
// in their context; exec and http backends get a token (TREATY_CALL) that a
// local agent passes back through the local API, which the node maps to the
// served request for as long as that call is being served.

type servedKey struct{}

// withServed returns ctx carrying the request being served.
func withServed(ctx context.Context, req wire.Request) context.Context {
	return context.WithValue(ctx, servedKey{}, req)
}

// WithinCall returns ctx for an outbound call made on behalf of the inbound
// call that token names (a backend's TREATY_CALL). An unknown token — the
// served call has ended — yields ctx unchanged, i.e. a direct call.
func (n *Node) WithinCall(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	if v, ok := n.inFlight.Load(token); ok {
		return withServed(ctx, v.(wire.Request))
	}
	return ctx
}

// chainFor returns the delegation chain for an outbound call made with ctx.
func chainFor(ctx context.Context) wire.Chain {
	if req, ok := ctx.Value(servedKey{}).(wire.Request); ok {
		return wire.ChainFrom(req)
	}
	return nil
}

// inFlightCalls maps backend tokens to the requests being served.
type inFlightCalls = sync.Map

// serving registers req under a fresh token until done is called.
func (n *Node) serving(req wire.Request) (token string, done func()) {
	var b [16]byte
	rand.Read(b[:])
	token = hex.EncodeToString(b[:])
	n.inFlight.Store(token, req)
	return token, func() { n.inFlight.Delete(token) }
}

// checkDepth applies the configured delegation limits to a verified request:
// depth at most budget.max_depth, no peer twice on the path, and no peer
// upstream on it that this node quarantined or refuses at the handshake
// (revoked, superseded): a delegate in good standing, perhaps not yet told,
// does not carry such a peer's calls here (one that drops the chain makes
// them as its own, and answers for them with its own trust).
func (n *Node) checkDepth(st *state, req wire.Request) *refusal.Error {
	if len(req.Chain) == 0 {
		return nil
	}
	if err := budget.CheckChain(req.DelegationPath(), n.self.String(), st.cfg.Budget.Depth()); err != nil {
		return budgetRefusal(err)
	}
	now := n.now()
	for _, h := range req.Chain {
		if n.adm.refusedWhy(h.Caller) != "" {
			return refusal.New(refusal.StageTrust, "refused key on the delegation path")
		}
		if n.trust.Standing(h.Caller.String(), now).Quarantined {
			return refusal.New(refusal.StageTrust, "quarantined peer on the delegation path")
		}
	}
	return nil
}
