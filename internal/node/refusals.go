package node

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
)

// Refusals that anyone able to reach the port, or any admitted peer, can cause
// at will are aggregated: per key (source, entry kind, direction, stage) the
// first refusal of an interval gets an audit entry and a log line of its own;
// the rest are counted and written as one entry (and one log line) with the
// count, the first and last occurrence and the count per reason, when the
// interval ends. The peer still gets a signed answer to every request.
//
// Bound: each key costs at most 2 entries and 2 log lines in its first
// interval and 1 per interval after that while its refusals go on (a key
// with no refusal for a whole interval is forgotten). An admitted peer has at
// most one key per aggregated stage (internal, wire, trust, budget, policy):
// at most 10 entries a minute, 1 a minute per stage it keeps being refused
// at; a quarantined peer (trust stage only) costs 1 a minute. A stranger's
// source is its IPv4 address or IPv6 /64, with one key (transport stage):
// 2 entries in its first minute, 1 a minute after. At most refusalMaxKeys
// keys are held; refusals of further sources share one catch-all key per
// (entry kind, direction, stage), 7 in all, so the node writes at most
// 2 x (refusalMaxKeys + 7) = 526 aggregated entries a minute whatever the
// number of sources. An aggregated entry is under 1 KiB; an entry of its own
// also holds the signed request, when there is one (within max_header_bytes).
const (
	refusalInterval = time.Minute
	refusalMaxKeys  = 256
	refusalMaxKinds = 16 // reasons counted per key; further ones count as "other"
)

// overflowSource names the catch-all key for sources beyond refusalMaxKeys.
const overflowSource = "*"

type refusalKey struct {
	source    string // a peer's did:key, or a stranger's address prefix
	kind      string // audit entry kind: call.refused, handshake.refused
	direction string
	stage     string
}

type refusalTally struct {
	start       time.Time // the current interval began
	count       int       // refusals counted (not recorded on their own) in it
	first, last time.Time
	reasons     map[string]int
}

// refusalSummary is one aggregated entry: count refusals of key between
// first and last, by reason.
type refusalSummary struct {
	key         refusalKey
	count       int
	first, last time.Time
	reasons     map[string]int
}

// refusalTallies is the aggregation state. It reads no clock.
type refusalTallies struct {
	budget  *refusalBudget // each peer's allowance of refused requests (ratelimit.go)
	flushMu sync.Mutex     // one flush at a time: a flush returns once its entries are written

	mu       sync.Mutex
	interval time.Duration
	maxKeys  int
	tallies  map[refusalKey]*refusalTally
}

func newRefusalTallies(interval time.Duration, maxKeys int) *refusalTallies {
	return &refusalTallies{interval: interval, maxKeys: maxKeys, tallies: map[refusalKey]*refusalTally{},
		budget: newRefusalBudget(refusalBurst, refusalRefill, refusalBudgetPeers)}
}

// admit reports whether a refusal of k for reason at now gets an entry of its
// own; if not, it is counted into k's next summary.
func (r *refusalTallies) admit(k refusalKey, reason string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tallies[k]
	if t == nil && len(r.tallies) >= r.maxKeys {
		k.source = overflowSource
		t = r.tallies[k]
	}
	if t == nil {
		r.tallies[k] = &refusalTally{start: now}
		return true
	}
	if t.count == 0 {
		t.first = now
		t.reasons = map[string]int{}
	}
	t.count++
	t.last = now
	if _, ok := t.reasons[reason]; !ok && len(t.reasons) >= refusalMaxKinds {
		reason = "other"
	}
	t.reasons[reason]++
	return false
}

// due returns the summaries of the intervals that ended by now (of every key
// when all is set, which also forgets every key), and forgets keys that had
// no refusal in a whole interval.
func (r *refusalTallies) due(now time.Time, all bool) []refusalSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []refusalSummary
	for k, t := range r.tallies {
		if !all && now.Sub(t.start) < r.interval {
			continue
		}
		if t.count > 0 {
			out = append(out, refusalSummary{key: k, count: t.count, first: t.first, last: t.last, reasons: t.reasons})
		}
		if all || t.count == 0 {
			delete(r.tallies, k)
			continue
		}
		*t = refusalTally{start: now}
	}
	return out
}

// strangerSource is the aggregation source of an address: an IPv4 address,
// or the /64 of an IPv6 one (one host commonly holds a whole /64).
func strangerSource(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return "addr:" + host
	case ip.To4() != nil:
		return "addr:" + ip.To4().String()
	}
	return "addr:" + ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// refusalAdmitted reports whether a refusal gets an audit entry and a log line
// of its own (see refusalTallies).
func (n *Node) refusalAdmitted(k refusalKey, reason string) bool {
	return n.refusals.admit(k, reason, n.now())
}

// runRefusalFlush writes the summaries of ended intervals, every sixth of an
// interval, until ctx ends; Close writes the rest.
func (n *Node) runRefusalFlush(ctx context.Context) {
	t := time.NewTicker(n.refusals.interval / 6)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.flushRefusals(ctx, false)
		}
	}
}

// flushRefusals audits and logs one entry per summary due.
func (n *Node) flushRefusals(ctx context.Context, all bool) {
	n.refusals.flushMu.Lock()
	defer n.refusals.flushMu.Unlock()
	for _, s := range n.refusals.due(n.now(), all) {
		n.log.Info("refusals aggregated", "event", "refusals.aggregated", "source", s.key.source, "kind", s.key.kind, "stage", s.key.stage,
			"count", s.count, "first", s.first, "last", s.last, "reasons", s.reasons)
		e := audit.Entry{Kind: s.key.kind, Direction: s.key.direction, Outcome: "refused", Stage: s.key.stage}
		if s.key.source != overflowSource && !isStrangerSource(s.key.source) {
			e.Peer = s.key.source
		}
		e.Report, _ = json.Marshal(map[string]any{
			"aggregated": s.count,
			"source":     s.key.source,
			"first":      s.first.UTC().Format(time.RFC3339Nano),
			"last":       s.last.UTC().Format(time.RFC3339Nano),
			"reasons":    s.reasons,
		})
		if _, err := n.audit.Append(context.WithoutCancel(ctx), e); err != nil {
			n.log.Error("audit append of aggregated refusals failed", "event", "audit.append_failed", "err", err, "count", s.count)
		}
	}
}

func isStrangerSource(s string) bool { return len(s) > 5 && s[:5] == "addr:" }
