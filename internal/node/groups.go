package node

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/bftengine"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/consensus/raftengine"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/trust"
)

// GroupsDir holds the consensus groups' state inside a home directory.
const GroupsDir = "groups"

// Audit kinds of consensus groups (defined with the others in package audit).
const (
	KindDecision      = audit.KindDecision
	KindGroupEvidence = audit.KindGroupEvidence
	KindGroupRefused  = audit.KindGroupRefused
)

// auditQueue bounds the decisions waiting for the audit log. Apply blocks
// when it is full rather than drop one: every committed decision is audited.
const auditQueue = 1024

// groupEngines are the consensus engines this build has, by mode. A mode
// without one refuses its groups with a clear error.
func groupEngines() map[fsm.Mode]consensus.NewEngine {
	return map[fsm.Mode]consensus.NewEngine{
		fsm.ModeRaft: func(ctx context.Context, cfg consensus.EngineConfig) (consensus.Engine, error) {
			e, err := raftengine.New(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return e, nil
		},
		fsm.ModeBFT: func(ctx context.Context, cfg consensus.EngineConfig) (consensus.Engine, error) {
			e, err := bftengine.New(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return e, nil
		},
	}
}

// groupCapability names a group in sanitizer rules, budgets and the audit log.
func groupCapability(name string) string { return "group:" + name }

// nodeGroups is the node's side of its consensus groups.
type nodeGroups struct {
	m       *consensus.Manager
	metrics *groupMetrics // groups_metrics.go
	audits  chan queued
	stop    chan struct{} // closed by closeGroups
	done    chan struct{} // closed when the writer has drained the queue
	started atomic.Bool
	once    sync.Once

	mu      sync.Mutex
	byGroup map[string]*groupAudit // groups_audit.go
}

// enqueue hands e to the audit writer; with wait it blocks while the queue is
// full (a decision must not be dropped), otherwise it drops e and says so.
func (ng *nodeGroups) enqueue(e queued, wait bool) bool {
	if wait {
		select {
		case ng.audits <- e:
			return true
		case <-ng.stop:
			return false
		}
	}
	select {
	case ng.audits <- e:
		return true
	default:
		return false
	}
}

// auditWriters append group entries side by side, so that the audit log
// commits them in shared transactions (one fsync per batch, not per
// decision). Entries of one group may land slightly out of index order; each
// names its index.
const auditWriters = 16

// startWriters starts the audit writers (before it returns, so that a
// caller counting goroutines sees them all); each appends queued entries
// until stop, then drains the queue. done closes when all have returned.
func (ng *nodeGroups) startWriters(n *Node) {
	write := func(q queued) {
		_, err := n.audit.Append(context.Background(), q.e)
		if err != nil {
			n.log.Error("audit append of a group entry failed", "err", err, "kind", q.e.Kind, "group", q.e.Capability)
		}
		if q.b != nil {
			q.b.done(err)
		}
	}
	var wg sync.WaitGroup
	for range auditWriters {
		wg.Go(func() {
			for {
				select {
				case e := <-ng.audits:
					write(e)
				case <-ng.stop:
					for {
						select {
						case e := <-ng.audits:
							write(e)
						default:
							return
						}
					}
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(ng.done)
	}()
}

// openGroups prepares the manager; startGroups runs the groups.
func (n *Node) openGroups() error {
	ng := &nodeGroups{audits: make(chan queued, auditQueue), stop: make(chan struct{}), done: make(chan struct{}),
		byGroup: map[string]*groupAudit{}}
	ng.metrics = newGroupMetrics(func() []consensus.Info { return ng.m.Groups() })
	m, err := consensus.NewManager(consensus.ManagerConfig{
		Dir:     filepath.Join(n.home, GroupsDir),
		Self:    n.key,
		Engines: groupEngines(),
		Network: func(g fsm.Group, isMember func(identity.PublicKey) bool) (consensus.Network, error) {
			return consensus.NewTransportNetwork(n.tr, g, n.resolveAddr, isMember, n.log)
		},
		Now:      n.now,
		Log:      n.log,
		Outbound: n.groupOutbound,
		Admit:    n.groupAdmit,
		OnApply: func(g fsm.Group, a consensus.Applied) {
			n.groupApplied(g, a)    // groups_audit.go
			n.governorApplied(g, a) // governor.go: passed governing motions
		},
		FlushApplied: n.groupFlush,
		OnEvidence:   n.groupEvidence,
		AdmitRequest: n.groupAdmitRequest, // groups_budget.go
	})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	ng.m = m
	n.groups = ng
	return nil
}

// startGroups runs the created and declared groups and the audit writer.
func (n *Node) startGroups() {
	n.groups.started.Store(true)
	n.groups.startWriters(n)
	n.groups.m.Start(n.declaredGroups(n.state.Load()))
}

// syncGroups starts groups newly declared in treaty.yaml.
func (n *Node) syncGroups(st *state) {
	if n.groups != nil && n.groups.started.Load() {
		n.groups.m.Sync(n.declaredGroups(st))
	}
}

// closeGroups stops the engines, then drains the audit queue.
func (n *Node) closeGroups() error {
	if n.groups == nil {
		return nil
	}
	var err error
	n.groups.once.Do(func() {
		err = n.groups.m.Close() // no engine applies anything after this
		close(n.groups.stop)
		if n.groups.started.Load() {
			<-n.groups.done
		}
	})
	return err
}

func (n *Node) declaredGroups(st *state) []fsm.Group {
	var out []fsm.Group
	for _, d := range st.cfg.Groups {
		keys, err := st.cfg.GroupMembers(d, n.self)
		if err == nil {
			var g fsm.Group
			if g, err = fsm.NewGroup(d.Name, fsm.Mode(d.Mode), 0, keys); err == nil {
				g.Nonce = config.GroupNonce(d.Nonce)
				out = append(out, g)
				continue
			}
		}
		n.log.Error("config: group not started", "group", d.Name, "err", err)
	}
	return out
}

// Groups returns the node's consensus groups, or an error when the node was
// opened without them.
func (n *Node) Groups() (*consensus.Manager, error) {
	if n.groups == nil {
		return nil, refusal.New(refusal.StageInternal, "this node runs no consensus groups")
	}
	return n.groups.m, nil
}

// GroupDefinition resolves a group definition given on the command line:
// members are did:keys, peer nicknames or this node's name.
func (n *Node) GroupDefinition(name, mode string, members []string) (fsm.Group, error) {
	st := n.state.Load()
	keys := make([]identity.PublicKey, 0, len(members))
	for _, ref := range members {
		ref = strings.TrimSpace(ref)
		if ref == st.cfg.Name || ref == n.self.String() {
			keys = append(keys, n.self)
			continue
		}
		p, err := n.Resolve(ref)
		if err != nil {
			return fsm.Group{}, refusal.Wrap(refusal.StageUsage, err)
		}
		keys = append(keys, p.ID)
	}
	g, err := fsm.NewGroup(name, fsm.Mode(mode), 0, keys)
	if err != nil {
		return fsm.Group{}, refusal.Wrap(refusal.StageUsage, err)
	}
	return g, nil
}

// groupOutbound runs what a proposal carries through the outbound sanitizer
// with each other member's policy. A group replicates values verbatim, so a
// value the sanitizer would block or change for any member is refused
// (stage sanitize) before it is signed: it never leaves the node.
func (n *Node) groupOutbound(ctx context.Context, g fsm.Group, op fsm.Op) error {
	st := n.state.Load()
	fields := []struct {
		name string
		data []byte
	}{{"key", []byte(op.Key)}, {"value", op.Value}, {"text", []byte(op.Text)}, {"motion", []byte(op.Name)}}
	for _, m := range g.Members {
		if m == n.self {
			continue
		}
		pol := st.cfg.SanitizePolicy(m.String(), groupCapability(g.Name))
		for _, f := range fields {
			if len(f.data) == 0 {
				continue
			}
			res, err := n.sanitizer.DryRunContext(ctx, m.String(), pol, f.data)
			if err != nil && !errors.Is(err, sanitize.ErrDeadline) {
				return refusal.Wrap(refusal.StageSanitize, err)
			}
			var why string
			switch {
			case res.Action == sanitize.ActionBlock:
				why = fmt.Sprintf("blocked: the %s for group %s holds %s (policy for %s: block)", f.name, g.Name, categories(res.Findings), m.Short())
			case res.Action != sanitize.ActionPass && res.Action != sanitize.ActionAllow:
				why = fmt.Sprintf("refused: the sanitizer would %s %s in the %s for member %s; group values are replicated verbatim", res.Action, categories(res.Findings), f.name, m.Short())
			}
			if why != "" {
				n.auditGroupRefused(g, m, op, why)
				return refusal.New(refusal.StageSanitize, "%s", why)
			}
		}
	}
	return nil
}

func categories(fs []sanitize.Finding) string {
	seen := map[sanitize.Category]bool{}
	var out []string
	for _, f := range fs {
		if !seen[f.Category] {
			seen[f.Category] = true
			out = append(out, string(f.Category))
		}
	}
	if len(out) == 0 {
		return "content over the scan limit"
	}
	return strings.Join(out, ", ")
}

func (n *Node) auditGroupRefused(g fsm.Group, member identity.PublicKey, op fsm.Op, why string) {
	rep, _ := json.Marshal(map[string]any{"group": g.Name, "group_id": g.ID(), "op": op.Kind.String(), "reason": why})
	e := audit.Entry{Kind: KindGroupRefused, Peer: member.String(), Direction: "out", Capability: groupCapability(g.Name),
		Outcome: "refused", Stage: string(refusal.StageSanitize), Report: rep}
	if _, err := n.audit.Append(context.Background(), e); err != nil {
		n.log.Error("audit append of a group refusal failed", "err", err)
	}
}

// groupAdmit is consulted for every connection to or from a member: a
// quarantined member is refused. (Its traffic is bounded per member by the
// group's network, see consensus.MemberByteRate; each proposal it asks this
// node to order is charged to its budgets by groupAdmitRequest.)
func (n *Node) groupAdmit(g fsm.Group, member identity.PublicKey) error {
	if n.trust.Standing(member.String(), n.now()).Quarantined {
		return refusal.New(refusal.StageTrust, "member %s is quarantined", member.Short())
	}
	return nil
}

// groupEvidence turns misbehaviour an engine detected into trust evidence
// and an audit entry.
func (n *Node) groupEvidence(g fsm.Group, member identity.PublicKey, kind, detail string) {
	tk := trust.Kind(kind)
	switch tk {
	case trust.KindBadSignature, trust.KindReplay, trust.KindMalformed, trust.KindEquivocation, trust.KindBudget:
	default:
		tk = trust.KindMalformed
	}
	n.observe(member, tk, g.Name+": "+detail)
	n.groups.metrics.evidenced(g, tk)
	rep, _ := json.Marshal(map[string]any{"group": g.Name, "group_id": g.ID(), "kind": kind, "detail": detail})
	e := audit.Entry{Kind: KindGroupEvidence, Peer: member.String(), Direction: "in", Capability: groupCapability(g.Name),
		Outcome: "refused", Stage: string(refusal.StageConsensus), Report: rep}
	if !n.groups.enqueue(queued{e: e}, false) {
		n.log.Warn("audit queue full; group evidence only logged", "group", g.Name, "peer", member, "kind", kind, "detail", detail)
	}
}

// decisionEntry is the audit entry of one committed entry: who proposed what
// (the request's digest, never its values) and what the group decided.
func decisionEntry(g fsm.Group, a consensus.Applied) audit.Entry {
	rep := map[string]any{"group": g.Name, "group_id": g.ID(), "epoch": g.Epoch, "index": a.Index, "time": a.Result.Time}
	e := audit.Entry{Kind: KindDecision, Direction: "", Capability: groupCapability(g.Name), Outcome: "ok"}
	if len(a.Entry.Request) > 0 {
		d := sha256.Sum256(a.Entry.Request)
		e.RequestDigest = d[:]
		if q, err := fsm.DecodeRequest(a.Entry.Request); err == nil {
			e.Peer = q.Proposer.String()
			rep["op"], rep["seq"] = q.Op.Kind.String(), q.Seq
			if q.Op.Key != "" {
				rep["key"] = q.Op.Key
			}
			if m := q.Op.Name + q.Op.Motion; m != "" {
				rep["motion"] = m
			}
		}
	} else {
		rep["op"] = "tick"
	}
	if !a.Result.OK() {
		e.Outcome, e.Stage = "refused", string(refusal.StageConsensus)
		rep["code"], rep["reason"] = a.Result.Code, a.Result.Reason
	}
	if a.Result.Version != 0 {
		rep["version"] = a.Result.Version
	}
	if a.Result.Outcome != "" {
		rep["outcome"] = a.Result.Outcome
	}
	if len(a.Result.Closed) > 0 {
		rep["closed"] = a.Result.Closed
	}
	if a.Adopted {
		rep["adopted"] = true // caught up with a snapshot: the result is another member's record
	}
	e.Report, _ = json.Marshal(rep)
	return e
}
