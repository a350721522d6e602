package node

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// Every committed decision is audited exactly once per (group, index) on
// each member, across crashes and power loss:
//
//   - The engine hands each applied batch to groupApplied, then calls
//     groupFlush, which returns the audit log's size at that moment and a
//     wait for the batch's entries to be durable. The engine stores its
//     delivered mark, with that position, only once the wait returns (ADR
//     0011), so a crash before then replays the batch, marked Redelivered.
//   - Every entry delivered after the mark was appended at or after the
//     stored position (later batches are handed over after the position
//     was taken). On the first Redelivered entry after a restart,
//     groupApplied reads the audit log from that position to its head and
//     skips the redelivered entries it finds there.

// maxDedupeScan bounds how many audit entries a restart reads per group to
// find the decisions it audited before the crash: those appended since the
// engine's last stored position, normally a few batches.
const maxDedupeScan = 1 << 20

// groupAudit is one group's decisions on their way to the audit log. Only the
// group's apply goroutine (or its catch-up while apply waits) uses it.
type groupAudit struct {
	cur *auditBatch // the batch being handed over; nil until its first entry
	// audited holds the redelivered-range indexes found in the audit log;
	// nil until the first Redelivered entry.
	audited map[uint64]bool
}

// auditBatch is the entries of one flush; done by the audit writers.
type auditBatch struct {
	pending sync.WaitGroup
	mu      sync.Mutex
	err     error // the first append that failed
}

func (b *auditBatch) done(err error) {
	if err != nil {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	b.pending.Done()
}

func (b *auditBatch) wait() error {
	b.pending.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// queued is an audit entry waiting for a writer; b, if set, is told when it
// is durable.
type queued struct {
	e audit.Entry
	b *auditBatch
}

func (ng *nodeGroups) audit(name string) *groupAudit {
	ng.mu.Lock()
	defer ng.mu.Unlock()
	ga := ng.byGroup[name]
	if ga == nil {
		ga = &groupAudit{}
		ng.byGroup[name] = ga
	}
	return ga
}

// groupApplied queues the decision entry of an applied entry (a bare tick
// decides nothing), unless it is a redelivered entry the log already holds.
func (n *Node) groupApplied(g fsm.Group, a consensus.Applied) {
	ng := n.groups
	if len(a.Entry.Request) == 0 && len(a.Result.Closed) == 0 {
		return
	}
	ga := ng.audit(g.Name)
	if a.Redelivered {
		if ga.audited == nil {
			ga.audited = n.auditedDecisions(g.Name, a.Since, a.Index)
		}
		if ga.audited[a.Index] {
			return
		}
	}
	if ga.cur == nil {
		ga.cur = &auditBatch{}
	}
	b := ga.cur
	b.pending.Add(1)
	if !ng.enqueue(queued{e: decisionEntry(g, a), b: b}, true) {
		b.done(errAuditClosed)
		return
	}
	ng.metrics.decided(g)
}

// groupFlush closes the group's current batch: it returns the audit log's
// size now (every decision queued later lands at or after it) and a wait for
// the batch's entries to be durable.
func (n *Node) groupFlush(name string) (uint64, func() error) {
	ga := n.groups.audit(name)
	b := ga.cur
	ga.cur = nil
	var pos uint64
	if cp, err := n.audit.Checkpoint(context.Background()); err == nil {
		pos = cp.Size
	}
	if b == nil {
		return pos, nil
	}
	return pos, b.wait
}

// auditedDecisions reads the audit log from position since to its head and
// returns the indexes of the group's decisions at or above from.
func (n *Node) auditedDecisions(group string, since, from uint64) map[uint64]bool {
	out := map[uint64]bool{}
	ctx := context.Background()
	cp, err := n.audit.Checkpoint(ctx)
	if err != nil {
		n.log.Error("audit: decisions not deduplicated after a restart", "group", group, "err", err)
		return out
	}
	if cp.Size > since && cp.Size-since > maxDedupeScan {
		n.log.Warn("audit: deduplicating redelivered decisions over the newest entries only", "group", group, "from", since, "entries", cp.Size-since)
		since = cp.Size - maxDedupeScan
	}
	capName := groupCapability(group)
	for i := since; i < cp.Size; i++ {
		e, err := n.audit.Get(ctx, i)
		if errors.Is(err, audit.ErrNotFound) {
			continue // pruned
		}
		if err != nil {
			n.log.Error("audit: decisions not deduplicated after a restart", "group", group, "err", err)
			break
		}
		if e.Kind != KindDecision || e.Capability != capName {
			continue
		}
		var rep struct {
			Index uint64 `json:"index"`
		}
		if json.Unmarshal(e.Report, &rep) == nil && rep.Index >= from {
			out[rep.Index] = true
		}
	}
	return out
}

// errAuditClosed is the flush's answer for entries the closing node dropped.
var errAuditClosed = errors.New("node: closing; decision not audited (the engine replays it at the next start)")
