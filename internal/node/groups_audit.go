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
//   - The engine hands each applied entry to groupApplied, then calls
//     groupFlush, which returns once those entries are durable in the audit
//     log. Only then does the engine record the entries as delivered (ADR
//     0011), so a crash before that replays them, marked Redelivered, and a
//     crash after it does not.
//   - A group's entries are flushed batch by batch, so in the audit log every
//     entry of a group up to the engine's delivered mark precedes every entry
//     after it. On the first Redelivered entry after a restart, groupApplied
//     reads the audit log back from its head to the group's last entry below
//     it, and skips the redelivered entries found there.

// maxDedupeScan bounds how many audit entries a restart reads back per group
// to find the decisions it audited before the crash. The decisions that can
// be redelivered were flushed after every earlier one, so they sit at the
// log's head, behind at most the entries other groups and calls wrote since.
const maxDedupeScan = 1 << 20

// groupAudit is one group's decisions on their way to the audit log. Only the
// group's apply goroutine adds to pending and waits for it.
type groupAudit struct {
	pending sync.WaitGroup
	mu      sync.Mutex
	err     error // the first append that failed since the last flush
	// audited holds the redelivered-range indexes found in the audit log;
	// nil until the first Redelivered entry.
	audited map[uint64]bool
}

func (ga *groupAudit) done(err error) {
	if err != nil {
		ga.mu.Lock()
		if ga.err == nil {
			ga.err = err
		}
		ga.mu.Unlock()
	}
	ga.pending.Done()
}

// queued is an audit entry waiting for a writer; ga, if set, is told when it
// is durable.
type queued struct {
	e  audit.Entry
	ga *groupAudit
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
			ga.audited = n.auditedDecisions(g.Name, a.Index)
		}
		if ga.audited[a.Index] {
			return
		}
	}
	ga.pending.Add(1)
	if !ng.enqueue(queued{e: decisionEntry(g, a), ga: ga}, true) {
		ga.done(errAuditClosed)
		return
	}
	ng.metrics.decided(g)
}

// groupFlush returns once every decision groupApplied queued for the group is
// in the audit log, or the first error that kept one out.
func (n *Node) groupFlush(name string) error {
	ga := n.groups.audit(name)
	ga.pending.Wait()
	ga.mu.Lock()
	defer ga.mu.Unlock()
	err := ga.err
	ga.err = nil
	return err
}

// auditedDecisions reads the audit log back from its head and returns the
// indexes of the group's decisions at or above from, stopping at the group's
// first decision below from.
func (n *Node) auditedDecisions(group string, from uint64) map[uint64]bool {
	out := map[uint64]bool{}
	ctx := context.Background()
	cp, err := n.audit.Checkpoint(ctx)
	if err != nil {
		n.log.Error("audit: decisions not deduplicated after a restart", "group", group, "err", err)
		return out
	}
	capName := groupCapability(group)
	for i, read := cp.Size, 0; i > 0 && read < maxDedupeScan; read++ {
		i--
		e, err := n.audit.Get(ctx, i)
		if errors.Is(err, audit.ErrNotFound) {
			break // pruned
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
		if json.Unmarshal(e.Report, &rep) != nil {
			continue
		}
		if rep.Index < from {
			return out
		}
		out[rep.Index] = true
	}
	return out
}

// errAuditClosed is the flush's answer for entries the closing node dropped.
var errAuditClosed = errors.New("node: closing; decision not audited (the engine replays it at the next start)")
