// Package budget guarantees that no peer spends more of a node's resources than the
// operator allowed: call rate (token bucket with burst), calls in flight, bytes in
// and out per window and backend-reported cost per window, per peer and per
// capability, in each direction; plus a circuit breaker per peer for outbound calls
// and the delegation-depth and loop check for chained calls.
//
// Every check takes `now` from the caller and reads no clock, so tests drive time
// exactly. Limiter is safe for concurrent use; a peer's counters are its own, so one
// peer exhausting its budget never slows another. A refusal is an *Exceeded that
// names the budget, the limit and when it resets.
//
// Limits: windows for bytes and cost are fixed (they start at the first use after
// the previous one ended), so up to twice a window's budget can pass around a window
// boundary. Bytes and cost of a reply are charged when the call ends and may
// overshoot; the next calls are then refused until the window resets. There is no
// node-wide limit across all peers.
//
// Call path (internal/node):
//
//	inbound:  t, err := lim.Acquire(caller, cap, budget.In, len(req), now)   // refuse on err
//	          ... serve ...; t.Release(reportedCost, len(reply), time.Now())
//	outbound: pass, err := lim.Breaker(peer).Allow(now); t, err := lim.Acquire(peer, cap, budget.Out, len(req), now)
//	          ... call ...; t.Release(cost, len(reply), end); pass.Record(ok, end) (or pass.Release())
//	chained:  budget.CheckChain(chain, self, cfg.Depth()) before serving
package budget
