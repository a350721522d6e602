package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/transport"
)

// Admission and revocation by the governing group (membership.governor,
// docs/admission.md, docs/adr/0017-governing-group.md).
//
// A member of the group opens a governing motion (Govern). When it passes,
// each member sees it in its own state machine (governorApplied) and builds a
// *decided* statement: the decision records of the motion's opening and of
// the entry that passed it, which for BFT carry the quorum certificates. The
// statement is applied here and pushed to every member of the peer book on
// ProtoDecided, and on from there, like the other statements; nodes outside
// the group check the proof against the definition they trust.

// ProtoDecided carries decided statements between members (members only).
const ProtoDecided = "treaty-decided/1"

// Bounds of the governor.
const (
	decidedLineMax = membership.MaxDecidedText + 2
	// recordWait bounds how long a member waits for a passed motion and its
	// decision records (a BFT certificate needs a quorum's attestations).
	recordWait = time.Minute
	// governWaitPoll is how often Govern with Wait looks at its motion.
	governWaitPoll = 100 * time.Millisecond
	// DefaultGovernDeadline is a governing motion's deadline unless given.
	DefaultGovernDeadline = 24 * time.Hour
)

// governor is the node's side of the governing group.
type governor struct {
	mu    sync.Mutex
	ctx   context.Context // the node's run context, set by startGovernor
	store decidedStore    // decided statements kept and announced (governor_pull.go)
}

// governAddr is the address of a key this node proposed to admit: the group
// decides on the key, the opener vouches for where it listens. It is kept in
// the ledger until the motion passes or its deadline, so an opener that
// restarts meanwhile still spreads the admission.
type governAddr struct {
	Addr  string    `json:"addr"`
	Until time.Time `json:"until"`
}

// setGovernAddr records addr for motion (and forgets expired ones).
func (a *admission) setGovernAddr(motion, addr string, until, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ledger.GovernAddrs == nil {
		a.ledger.GovernAddrs = map[string]governAddr{}
	}
	for k, h := range a.ledger.GovernAddrs {
		if now.After(h.Until) {
			delete(a.ledger.GovernAddrs, k)
		}
	}
	a.ledger.GovernAddrs[motion] = governAddr{Addr: addr, Until: until}
	return a.saveLocked()
}

// takeGovernAddr returns and forgets the address recorded for motion.
func (a *admission) takeGovernAddr(motion string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.ledger.GovernAddrs[motion]
	if !ok {
		return ""
	}
	delete(a.ledger.GovernAddrs, motion)
	_ = a.saveLocked() // a stale entry expires with its motion's deadline
	return h.Addr
}

// startGovernor serves ProtoDecided; Start calls it before the port opens.
func (n *Node) startGovernor(ctx context.Context) {
	n.gov.mu.Lock()
	n.gov.ctx = ctx
	n.gov.mu.Unlock()
	if err := n.loadDecided(); err != nil {
		n.log.Error("decided statements not loaded: this node announces none until it applies new ones", "err", err)
	}
	l := n.tr.Listener(ProtoDecided)
	context.AfterFunc(ctx, func() { l.Close() })
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.serveAdmission(ctx, l, n.serveDecided)
	}()
}

// governorName is the governing group's name ("" when none is configured).
func (n *Node) governorName() string {
	if g := n.state.Load().cfg.Membership.Governor; g != nil {
		return g.Group
	}
	return ""
}

// governs reports whether g is a definition this node trusts as the
// governing group's: the one membership.governor gives, the one declared
// under groups:, or the one this node runs (its current epoch).
func (n *Node) governs(g fsm.Group) bool {
	return g.Name == n.governorName() && slices.Contains(n.trustedGovernors(), g.ID())
}

// governorDefined reports whether this node has a definition of its
// governing group to judge decisions by: given in membership.governor,
// declared under groups:, or run here. Without one, a decision it cannot
// check is refused but not held against the member that relayed it.
func (n *Node) governorDefined() bool {
	st := n.state.Load()
	gov := st.cfg.Membership.Governor
	if gov == nil {
		return false
	}
	if len(gov.Members) > 0 {
		return true
	}
	for _, d := range st.cfg.Groups {
		if d.Name == gov.Group {
			return true
		}
	}
	_, ok := n.governingGroup()
	return ok
}

// governingGroup is the governing group as this node runs it (its current
// epoch); ok is false when this node is not one of its members.
func (n *Node) governingGroup() (fsm.Group, bool) {
	name := n.governorName()
	if name == "" || n.groups == nil {
		return fsm.Group{}, false
	}
	for _, in := range n.groups.m.Groups() {
		if in.Name == name && in.Error == "" && in.Status.Group.IsMember(n.self) {
			return in.Status.Group, true
		}
	}
	return fsm.Group{}, false
}

// governorApplied sees every entry this member applies (OnApply, on the
// engine's apply goroutine: it must not block) and hands each governing
// motion the entry passed to a goroutine.
func (n *Node) governorApplied(g fsm.Group, a consensus.Applied) {
	if len(a.Result.Closed) == 0 || g.Name != n.governorName() {
		return
	}
	n.gov.mu.Lock()
	ctx := n.gov.ctx
	n.gov.mu.Unlock()
	if ctx == nil {
		return // replay before Start: decisions applied before were spread then
	}
	for _, c := range a.Result.Closed {
		if c.Outcome != fsm.OutcomePassed || !(strings.HasPrefix(c.Motion, membership.ActionAdmit+"-") || strings.HasPrefix(c.Motion, membership.ActionRevoke+"-")) {
			continue
		}
		n.goTracked(func() { n.governorPassed(ctx, g, c.Motion, a.Index) })
	}
}

// governorPassed builds the decided statement of a passed governing motion
// and applies and spreads it. g is the group before the passing entry. A
// revocation takes effect here first: this member's own state machine is
// proof enough for itself, and the records take a moment to collect.
func (n *Node) governorPassed(ctx context.Context, g fsm.Group, motion string, passed uint64) {
	group := g.Name
	mo, err := n.motionWithin(ctx, group, motion)
	if err != nil || mo.Outcome != fsm.OutcomePassed || mo.Decided != passed {
		n.log.Warn("governing motion not found as passed", "group", group, "motion", motion, "index", passed, "err", err)
		return
	}
	act, gov, err := membership.ParseGroupAction(mo.Text)
	if !gov || err != nil {
		return // an ordinary motion with a governing-looking name
	}
	var addr string
	if act.Kind == membership.ActionAdmit {
		addr = n.adm.takeGovernAddr(motion)
	}
	if act.Kind == membership.ActionAdmit && addr == "" {
		return // the member that opened it vouches for the address and spreads it
	}
	if act.Kind == membership.ActionRevoke {
		if n.adm.refusedWhy(act.Key) == "revoked" {
			// Another member's statement came first, and spread from there.
			n.log.Info("governing revocation already in effect here; not wrapped again", "group", group, "motion", motion, "peer", act.Key)
			return
		}
		if int(mo.Quorum) < g.Quorum() {
			n.log.Warn("governing motion passed with less than the group's quorum: not applied", "group", group, "motion", motion, "quorum", mo.Quorum)
			return
		}
		d := membership.Decided{Action: act, Group: g, Motion: motion, Opened: mo.ID, Passed: passed}
		if err := n.applyGroupRevocation(ctx, d, identity.PublicKey{}, false, func() {}); err != nil {
			n.log.Error("group revocation not applied", "group", group, "motion", motion, "err", err)
		}
		n.adm.markSeen(decidedSeenKey(g, passed))
	}
	open, err := n.recordWithin(ctx, group, mo.ID)
	if err != nil {
		n.log.Error("governing motion passed, but its opening has no record to prove it", "group", group, "motion", motion, "err", err)
		return
	}
	closed, err := n.recordWithin(ctx, group, passed)
	if err != nil {
		n.log.Error("governing motion passed, but the passing entry has no record to prove it", "group", group, "motion", motion, "err", err)
		return
	}
	text, _, err := membership.SignDecided(n.key, open, closed, addr)
	if err != nil {
		n.log.Error("governing decision does not make a valid statement", "group", group, "motion", motion, "err", err)
		return
	}
	if _, err := n.publishDecided(ctx, text); err != nil {
		n.log.Error("governing decision not applied", "group", group, "motion", motion, "err", err)
	}
}

// recordWithin asks the group for the record of index until it has one (a
// BFT certificate is collected from the members after the entry applies).
func (n *Node) recordWithin(ctx context.Context, group string, index uint64) (fsm.Record, error) {
	return retryWithin(ctx, func(ctx context.Context) (fsm.Record, error) { return n.groups.m.Record(ctx, group, index) })
}

// motionWithin reads a motion until the group answers: the read is
// linearizable, so it waits for a quorum (a member that just restarted may
// wait for the group to settle on a view or a leader).
func (n *Node) motionWithin(ctx context.Context, group, motion string) (fsm.Motion, error) {
	return retryWithin(ctx, func(ctx context.Context) (fsm.Motion, error) { return n.groups.m.Motion(ctx, group, motion) })
}

// retryWithin calls f until it succeeds or recordWait passes.
func retryWithin[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, recordWait)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		v, err := f(ctx)
		if err == nil {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

// publishDecided applies a decided statement here and pushes it to every
// member of the book, even when it was applied before (a member's own
// revocation takes effect before its statement exists); it reports how many
// acknowledged it.
func (n *Node) publishDecided(ctx context.Context, text string) (int, error) {
	var (
		once  sync.Once
		done  = make(chan int, 1)
		start = func() { go func() { done <- n.spreadOn(ctx, ProtoDecided, text, nil) }() }
	)
	if _, err := n.applyDecided(ctx, text, identity.PublicKey{}, func() { once.Do(start) }); err != nil {
		once.Do(func() { done <- 0 })
		<-done
		return 0, err
	}
	once.Do(start)
	return <-done, nil
}

// serveDecided takes one decided statement from a member, as serveStatement
// takes the others.
func (n *Node) serveDecided(ctx context.Context, c net.Conn) {
	from, _ := transport.PeerFromConn(c)
	br := bufio.NewReader(c)
	line, err := readLineFrom(br, decidedLineMax)
	if err == nil && strings.HasPrefix(string(line), fetchPrefix) {
		n.serveFetch(c, string(line))
		return
	}
	if err != nil {
		n.statementRefused(ctx, from, err)
		_, _ = c.Write([]byte("error: " + err.Error() + "\n"))
		return
	}
	n.answerPush(ctx, c, br, from, string(line), ProtoDecided, n.applyDecided)
}

// applyDecided verifies a decided statement that from relayed (zero: this
// node) and applies it; a statement that does not prove a decision of the
// governing group is refused and counted against from. It reports whether
// the decision was new here.
func (n *Node) applyDecided(ctx context.Context, text string, from identity.PublicKey, ack func()) (bool, error) {
	return n.applyDecidedFrom(ctx, text, from, nil, ack)
}

// applyDecidedFrom is applyDecided for a statement pushed (want nil) or
// fetched after the announcement want (governor_pull.go), which it must
// match. A statement this node applies, or had applied, is kept and
// announced.
func (n *Node) applyDecidedFrom(ctx context.Context, text string, from identity.PublicKey, want *membership.DecidedAnnouncement, ack func()) (bool, error) {
	d, err := membership.ParseDecided(text)
	if err == nil && !n.governs(d.Group) {
		err = &membership.StatementError{Kind: membership.KindDecided, Err: membership.ErrNotGoverning,
			Reason: fmt.Sprintf("group %s (%s) is not the governing group this node trusts", d.Group.Name, d.Group.ID())}
	}
	if err == nil && want != nil && !want.Matches(d) {
		err = &membership.StatementError{Kind: membership.KindDecided, Err: membership.ErrBadSignature,
			Reason: "the fetched statement is not the decision its announcer announced"}
	}
	if errors.Is(err, membership.ErrNotGoverning) && !n.governorDefined() {
		// Any member can send these: logged a bounded number of times (refusals.go).
		if n.refusalAdmitted(refusalKey{source: from.String(), kind: KindStmtRefused, direction: "in", stage: string(refusal.StageWire)}, "undefined governor") {
			n.log.Warn("group decision refused: this node defines no governing group to check it against (membership.governor)", "group", d.Group.Name, "from", from)
		}
		return false, err
	}
	if err != nil {
		n.statementRefused(ctx, from, err)
		return false, err
	}
	seen := decidedSeenKey(d.Group, d.Passed)
	if n.adm.markSeen(seen) {
		ack()
		n.keepDecided(ctx, d)
		return false, nil
	}
	pulled := want != nil
	switch d.Action.Kind {
	case membership.ActionRevoke:
		err = n.applyGroupRevocation(ctx, d, from, pulled, ack)
	case membership.ActionAdmit:
		err = n.applyGroupAdmission(ctx, d, from, pulled)
	}
	switch {
	case errors.Is(err, errStale):
		ack()
		return false, nil
	case errors.Is(err, errNoAddr):
		// Valid, but only the opener's wrapping says where the key listens:
		// not applied nor passed on, and not remembered, so that one applies.
		ack()
		n.adm.forget(seen)
		return false, nil
	case err != nil:
		n.adm.forget(seen)
		return false, err
	}
	n.keepDecided(ctx, d)
	return true, nil
}

// errNoAddr marks a valid admission that came without the opener's address.
var errNoAddr = errors.New("admission without an address")

// decidedSeenKey identifies a decision among the statements seen: one
// decision comes from several members, each wrapping it under its own key.
func decidedSeenKey(g fsm.Group, passed uint64) string {
	return "decided:" + g.ID().String() + ":" + strconv.FormatUint(passed, 10)
}

// groupRevocation is a key the governing group revoked, as the ledger keeps
// it (the proof was checked when it was applied).
type groupRevocation struct {
	Key    string `json:"key"`
	Group  string `json:"group"`
	Motion string `json:"motion"`
	Index  uint64 `json:"index"`
}

// applyGroupRevocation revokes a key as a self-revocation does: persisted,
// refused at every handshake (with every key it rotated to), connections
// closed, dropped from the book, audited.
// pulled says that this node fetched the statement after an announcement
// (audited as "pulled": true).
func (n *Node) applyGroupRevocation(ctx context.Context, d membership.Decided, from identity.PublicKey, pulled bool, ack func()) error {
	k := d.Action.Key
	a := &n.adm
	a.mu.Lock()
	var err error
	fresh := true
	for _, g := range a.ledger.GroupRevoked {
		if g.Key == k.String() {
			fresh = false
		}
	}
	if fresh {
		a.ledger.GroupRevoked = append(a.ledger.GroupRevoked, groupRevocation{Key: k.String(), Group: d.Group.Name, Motion: d.Motion, Index: d.Passed})
		if err = a.saveLocked(); err != nil {
			a.ledger.GroupRevoked = a.ledger.GroupRevoked[:len(a.ledger.GroupRevoked)-1]
		} else {
			a.rebuildLocked(n.now())
		}
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	ack()
	if !fresh {
		return nil
	}
	closed := n.tr.Disconnect(k)
	if k == n.self {
		n.log.Error("this node's own key is revoked by the governing group: members refuse it")
	}
	rep := map[string]any{"by": "group", "group": d.Group.Name, "group_id": d.Group.ID().String(), "motion": d.Motion,
		"index": d.Passed, "connections_closed": closed}
	if !from.IsZero() {
		rep["relayed_by"] = from.String()
	}
	if pulled {
		rep["pulled"] = true
	}
	n.auditAdmission(ctx, KindKeyRevoked, k, "in", rep)
	n.adm.counts.revocations.Add(1)
	n.log.Warn("key revoked by the governing group", "peer", k, "group", d.Group.Name, "motion", d.Motion, "connections_closed", closed)
	return n.dropRefused(ctx)
}

// applyGroupAdmission adds a key the governing group admitted to the book,
// with source decision and no grants (default deny stays). As with
// introductions, a decision older than introductionMaxAge is not applied: an
// old one cannot bring back a key an operator removed.
func (n *Node) applyGroupAdmission(ctx context.Context, d membership.Decided, from identity.PublicKey, pulled bool) error {
	k := d.Action.Key
	if k == n.self {
		return nil
	}
	if age := n.now().Sub(time.Unix(0, d.Time)); age > introductionMaxAge || age < -time.Minute {
		n.log.Info("group admission outside its time window ignored", "peer", k, "decided", time.Unix(0, d.Time))
		return errStale
	}
	if why := n.adm.refusedWhy(k); why != "" {
		n.promoteHeld(ctx, k) // revocations.go: it turned up
		n.log.Info("group admission of a refused key ignored", "peer", k, "why", why)
		return nil // revocation beats admission; passed on all the same
	}
	if _, ok := n.state.Load().peers[k]; ok {
		return nil
	}
	if d.Addr == "" {
		return errNoAddr
	}
	name, err := home.LearnPeer(n.home, d.Action.Name, d.Addr, k, config.SourceDecision)
	if err != nil {
		return err
	}
	if err := n.reload(); err != nil {
		return err
	}
	rep := map[string]any{"name": name, "addr": d.Addr, "source": config.SourceDecision, "group": d.Group.Name,
		"group_id": d.Group.ID().String(), "motion": d.Motion, "index": d.Passed}
	if !from.IsZero() {
		rep["relayed_by"] = from.String()
	}
	if pulled {
		rep["pulled"] = true
	}
	n.auditAdmission(ctx, KindMemberAdmit, k, "in", rep)
	n.log.Info("member admitted by the governing group", "peer", k, "name", name, "group", d.Group.Name)
	n.promoteHeld(ctx, k) // a held rotation from it now moves its entry
	return nil
}

// GovernRequest asks the governing group to admit or revoke a key.
type GovernRequest struct {
	Action   string        // membership.ActionAdmit or ActionRevoke
	Peer     string        // revoke: a did:key or a nickname; admit: a did:key
	Name     string        // admit: the nickname members give the key
	Addr     string        // admit: where the key listens (host:port)
	Deadline time.Duration // the motion's deadline; 0: DefaultGovernDeadline
	Wait     bool          // return once the motion is decided, not once it is open
}

// GovernResult is the motion Govern opened.
type GovernResult struct {
	Group   string
	Motion  string
	Index   uint64 // the entry that opened it
	Outcome string // open, passed or failed
	Key     identity.PublicKey
}

// Govern opens a governing motion in the governing group, with this
// node's yes vote, and returns once it is open (or, with Wait, decided). The
// other members vote with `treaty motion vote GROUP MOTION yes`. Errors are
// typed: no governing group configured or a bad argument (usage), this node
// not a member (policy), the group's refusals (consensus, transport).
func (n *Node) Govern(ctx context.Context, req GovernRequest) (GovernResult, error) {
	gov := n.state.Load().cfg.Membership.Governor
	if gov == nil {
		return GovernResult{}, refusal.New(refusal.StageUsage, "no governing group: set membership.governor in treaty.yaml to the consensus group that admits and revokes keys")
	}
	act, err := n.governAction(req)
	if err != nil {
		return GovernResult{}, err
	}
	g, ok := n.governingGroup()
	if !ok {
		return GovernResult{}, refusal.New(refusal.StagePolicy, "this node is not a member of the governing group %s: ask one of its members", gov.Group)
	}
	deadline := req.Deadline
	if deadline == 0 {
		deadline = DefaultGovernDeadline
	}
	name := act.MotionName(strconv.FormatInt(n.now().UnixNano(), 36))
	if act.Kind == membership.ActionAdmit {
		now := n.now()
		if err := n.adm.setGovernAddr(name, req.Addr, now.Add(deadline), now); err != nil {
			return GovernResult{}, fmt.Errorf("node: %w", err)
		}
	}
	m := n.groups.m
	opened, err := m.OpenMotion(ctx, gov.Group, name, uint32(g.Quorum()), deadline, act.MotionText())
	if err != nil {
		n.adm.takeGovernAddr(name)
		return GovernResult{}, err
	}
	res := GovernResult{Group: gov.Group, Motion: name, Index: opened.Index, Outcome: string(fsm.OutcomeOpen), Key: act.Key}
	voted, err := m.Vote(ctx, gov.Group, name, true)
	if err != nil {
		return res, err
	}
	res.Outcome = string(voted.Result.Outcome)
	if !req.Wait {
		return res, nil
	}
	t := time.NewTicker(governWaitPoll)
	defer t.Stop()
	for res.Outcome == string(fsm.OutcomeOpen) {
		select {
		case <-ctx.Done():
			return res, refusal.Wrap(refusal.StageTransport, fmt.Errorf("motion %s still open: %w", name, ctx.Err()))
		case <-t.C:
		}
		mo, err := m.Motion(ctx, gov.Group, name)
		if err != nil {
			return res, err
		}
		res.Outcome = string(mo.Outcome)
		if mo.Outcome == fsm.OutcomeFailed {
			return res, refusal.New(refusal.StageConsensus, "motion %s failed: %s", name, mo.Reason)
		}
	}
	return res, nil
}

// governAction resolves a GovernRequest to the action the motion names.
func (n *Node) governAction(req GovernRequest) (membership.GroupAction, error) {
	act := membership.GroupAction{Kind: req.Action}
	switch req.Action {
	case membership.ActionRevoke:
		if k, err := identity.ParseDID(req.Peer); err == nil {
			act.Key = k
		} else {
			p, err := n.Resolve(req.Peer)
			if err != nil {
				return act, refusal.Wrap(refusal.StageUsage, err)
			}
			act.Key = p.ID
		}
		if act.Key == n.self {
			return act, refusal.New(refusal.StageUsage, "%s is this node's own key: revoke it with 'treaty revoke' and no argument", act.Key.Short())
		}
	case membership.ActionAdmit:
		k, err := identity.ParseDID(req.Peer)
		if err != nil {
			return act, refusal.New(refusal.StageUsage, "admit takes the newcomer's peer ID (a did:key): %v", err)
		}
		act.Key, act.Name = k, req.Name
		if err := config.ValidAddr(req.Addr); err != nil {
			return act, refusal.New(refusal.StageUsage, "--addr: %v", err)
		}
		if why := n.adm.refusedWhy(k); why != "" {
			return act, refusal.New(refusal.StageUsage, "key %s is %s; it cannot be admitted again", k.Short(), why)
		}
		if _, ok := n.state.Load().peers[k]; ok || k == n.self {
			return act, refusal.New(refusal.StageUsage, "key %s is already a member", k.Short())
		}
	default:
		return act, refusal.New(refusal.StageUsage, "action %q: want admit or revoke", req.Action)
	}
	if err := act.Check(); err != nil {
		return act, refusal.Wrap(refusal.StageUsage, err)
	}
	return act, nil
}
