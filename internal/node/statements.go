package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/trust"
)

// serveStatement takes one statement from a member, answers "ok" once it is
// persisted (before its effects: a rotation or revocation of the sender's own
// key closes this very connection) or "error: REASON", and then pushes a new,
// valid statement on to the others.
func (n *Node) serveStatement(ctx context.Context, c net.Conn) {
	from, _ := transport.PeerFromConn(c)
	br := bufio.NewReader(c)
	line, err := readLineFrom(br, stmtLineMax)
	if err != nil {
		n.statementRefused(ctx, from, err)
		_, _ = c.Write([]byte("error: " + err.Error() + "\n"))
		return
	}
	n.answerPush(ctx, c, br, from, string(line), ProtoStatement, n.applyStatement)
}

// answerPush finishes a pushed statement's exchange on proto: it reads the
// line of peers already covered, applies text, answers "ok" (ack, once it is
// persisted) or "error: REASON", and spreads a fresh statement on to the
// peers not yet covered.
func (n *Node) answerPush(ctx context.Context, c net.Conn, br *bufio.Reader, from identity.PublicKey, text, proto string,
	apply func(ctx context.Context, text string, from identity.PublicKey, ack func()) (bool, error)) {
	coveredLine, err := readLineFrom(br, coveredLineMax)
	if err != nil {
		n.statementRefused(ctx, from, err)
		_, _ = c.Write([]byte("error: " + err.Error() + "\n"))
		return
	}
	covered := parseCovered(string(coveredLine))
	covered[from] = struct{}{}
	var once sync.Once
	ack := func() { once.Do(func() { _, _ = c.Write([]byte("ok\n")) }) }
	fresh, err := apply(ctx, text, from, ack)
	if err != nil {
		once.Do(func() { _, _ = c.Write([]byte("error: " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n")) })
		return
	}
	ack()
	c.Close()
	if fresh {
		n.spreadOn(ctx, proto, text, covered)
	}
}

// applyStatement verifies and applies one statement that from relayed (zero:
// the local operator). It reports whether the statement was new here; a
// statement that fails to verify counts as evidence against from. ack (or
// nil) is called once the statement is persisted, before its effects.
func (n *Node) applyStatement(ctx context.Context, text string, from identity.PublicKey, ack func()) (fresh bool, err error) {
	if ack == nil {
		ack = func() {}
	}
	st, err := membership.ParseAdmission(text)
	if err != nil {
		n.statementRefused(ctx, from, err)
		return false, err
	}
	if n.adm.markSeen(st.Text) {
		ack()
		return false, nil
	}
	switch st.Kind {
	case membership.KindAdmit:
		err = n.applyAdmit(ctx, *st.Admit, from)
	case membership.KindRotate:
		err = n.applyRotation(ctx, *st.Rotation, st.Text, from, ack)
	case membership.KindRevoke:
		err = n.applyRevocation(ctx, *st.Revocation, st.Text, from, ack)
	}
	if errors.Is(err, errStale) || errors.Is(err, errHeld) || errors.Is(err, errHeldRotation) {
		ack() // valid, but not applied nor passed on
		return false, nil
	}
	if err != nil {
		n.adm.forget(st.Text) // not applied: a later copy may try again
		return false, err
	}
	return true, nil
}

// introductionMaxAge bounds how old (or how far ahead of this node's clock)
// an introduction may be when applied: a member could otherwise replay an old
// introduction to bring back a key an operator removed with `peer rm`.
const introductionMaxAge = time.Hour

// errStale marks a valid statement too old to apply.
var errStale = errors.New("statement too old to apply")

// statementRefused audits a statement that did not verify and, when a member
// relayed it, counts it against that member's trust.
func (n *Node) statementRefused(ctx context.Context, from identity.PublicKey, err error) {
	if from.IsZero() {
		return // the local operator: the error is the answer
	}
	// A member can send these at will: aggregated per member (refusals.go).
	if n.refusalAdmitted(refusalKey{source: from.String(), kind: KindStmtRefused, direction: "in", stage: string(refusal.StageWire)}, "statement") {
		n.log.Warn("statement refused", "from", from, "err", err)
		e := audit.Entry{Kind: KindStmtRefused, Peer: from.String(), Direction: "in", Outcome: "refused", Stage: string(refusal.StageWire)}
		e.Report, _ = json.Marshal(map[string]string{"reason": err.Error()})
		if _, aerr := n.audit.Append(context.WithoutCancel(ctx), e); aerr != nil {
			n.log.Error("audit append of a refused statement failed", "err", aerr)
		}
	}
	kind := trust.KindMalformed
	if errors.Is(err, membership.ErrBadSignature) {
		kind = trust.KindBadSignature
	}
	if _, terr := n.trust.Observe(from.String(), trust.Evidence{Kind: kind, Detail: "relayed a membership statement that does not verify", At: n.now()}); terr != nil {
		n.log.Error("trust evidence not recorded", "err", terr)
	}
}

// forget drops text from the seen set.
func (a *admission) forget(text string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.seen, sha256Sum(text))
}

// applyAdmit adds an introduced key to the peer book, if a member this node
// knows introduced it. The newcomer gets no grants: default deny stays.
func (n *Node) applyAdmit(ctx context.Context, a membership.Admit, from identity.PublicKey) error {
	if a.Member == n.self || a.Inviter == n.self {
		return nil
	}
	if age := n.now().Sub(a.Issued); age > introductionMaxAge || age < -time.Minute {
		n.log.Info("introduction outside its time window ignored", "peer", a.Member, "issued", a.Issued)
		return errStale
	}
	if why := n.adm.refusedWhy(a.Inviter); why != "" {
		return fmt.Errorf("introduction by %s, which is %s", a.Inviter.Short(), why)
	}
	if why := n.adm.refusedWhy(a.Member); why != "" {
		n.promoteHeld(ctx, a.Member) // revocations.go: it turned up
		n.log.Info("introduction of a refused key ignored", "peer", a.Member, "why", why)
		return nil
	}
	if _, ok := n.state.Load().peers[a.Inviter]; !ok {
		// Not ours to judge: pass it on, members who know the inviter apply it.
		n.log.Debug("introduction by an unknown member; passed on only", "inviter", a.Inviter, "member", a.Member)
		return nil
	}
	if _, ok := n.state.Load().peers[a.Member]; ok {
		return nil
	}
	name, err := home.LearnPeer(n.home, a.Name, a.Addr, a.Member, config.SourceGossip)
	if err != nil {
		return err
	}
	if err := n.reload(); err != nil {
		return err
	}
	n.auditAdmission(ctx, KindMemberAdmit, a.Member, "in", map[string]any{
		"name": name, "addr": a.Addr, "source": config.SourceGossip, "inviter": a.Inviter.String(), "relayed_by": from.String()})
	n.log.Info("member learned", "peer", a.Member, "name", name, "inviter", a.Inviter.Short())
	n.promoteHeld(ctx, a.Member) // a held rotation from it now moves its entry
	return nil
}

// recordLocked adds text to list unless it is there, and reports whether it added.
func recordLocked(list *[]string, text string) bool {
	for _, s := range *list {
		if s == text {
			return false
		}
	}
	*list = append(*list, text)
	return true
}

// dropRefused removes every refused key from the peer book and closes its
// connections (the reload closes them too; this does not wait for it).
func (n *Node) dropRefused(ctx context.Context) error {
	var err error
	removed := false
	for k := range n.state.Load().peers {
		if n.adm.refusedWhy(k) == "revoked" {
			n.tr.Disconnect(k)
			if rerr := home.RemovePeer(n.home, k.String()); rerr != nil {
				err = errors.Join(err, rerr)
			}
			removed = true
		}
	}
	if removed {
		err = errors.Join(err, n.reload())
	}
	return err
}

// Bounds of a push's covered list (see spread).
const (
	coveredMax     = 1024
	coveredLineMax = coveredMax * 64
)

// parseCovered reads a push's second line: the did:keys, comma-separated,
// that the statement is already on its way to. Entries that do not parse are
// skipped; at most coveredMax are read.
func parseCovered(line string) map[identity.PublicKey]struct{} {
	out := map[identity.PublicKey]struct{}{}
	for i, s := range strings.Split(line, ",") {
		if i >= coveredMax {
			break
		}
		if k, err := identity.ParseDID(strings.TrimSpace(s)); err == nil {
			out[k] = struct{}{}
		}
	}
	return out
}

// spread pushes text to every member of the book that is not in covered,
// pushParallel at a time, and reports how many acknowledged it. Each push
// carries the covered list grown by this node and its targets, so a member
// passes a statement on only to members no one on its way has addressed: in a
// full mesh the originator's push is the only one; in a sparser federation the
// statement still reaches everyone connected to it through peer books. A
// member that is down when its push comes misses the statement; gossip's
// state exchange brings it later (membership.enabled), or publish it again.
func (n *Node) spread(ctx context.Context, text string, covered map[identity.PublicKey]struct{}) int {
	return n.spreadOn(ctx, ProtoStatement, text, covered)
}

// spreadOn is spread on the push protocol proto (ProtoStatement, or
// ProtoDecided for a governing group's decisions, governor.go).
func (n *Node) spreadOn(ctx context.Context, proto, text string, covered map[identity.PublicKey]struct{}) int {
	var targets []identity.PublicKey
	addrs := map[identity.PublicKey]string{}
	for k, p := range n.state.Load().peers {
		if _, done := covered[k]; done || k == n.self || n.adm.refusedWhy(k) != "" {
			continue
		}
		targets = append(targets, k)
		addrs[k] = p.Addr
	}
	var list []string
	if len(covered)+len(targets) < coveredMax {
		list = append(list, n.self.String())
		for k := range covered {
			list = append(list, k.String())
		}
		for _, k := range targets {
			list = append(list, k.String())
		}
	} // else: too many to list; the receivers pass it on to all they know
	coveredText := strings.Join(list, ",")
	var acked atomic.Int32
	sem := make(chan struct{}, pushParallel)
	var wg sync.WaitGroup
	for _, k := range targets {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := n.pushRetrying(ctx, proto, k, addrs[k], text, coveredText); err != nil {
				n.log.Warn("statement not pushed", "peer", k.Short(), "err", err)
				return
			}
			acked.Add(1)
		})
	}
	wg.Wait()
	return int(acked.Load())
}

// pushAttempts and pushBackoff: a push that fails is tried again, since the
// members that listed this one as covered will not push to it themselves.
const (
	pushAttempts = 3
	pushBackoff  = 200 * time.Millisecond
)

// pushRetrying is push, tried pushAttempts times with a growing pause.
func (n *Node) pushRetrying(ctx context.Context, proto string, k identity.PublicKey, addr, text, covered string) error {
	var err error
	for i := range pushAttempts {
		if i > 0 {
			t := time.NewTimer(pushBackoff * time.Duration(i))
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(err, ctx.Err())
			case <-t.C:
			}
		}
		if err = n.push(ctx, proto, k, addr, text, covered); err == nil {
			return nil
		}
	}
	return err
}

// push sends one statement and its covered list to one member and waits for
// its answer.
func (n *Node) push(ctx context.Context, proto string, k identity.PublicKey, addr, text, covered string) error {
	ctx, cancel := context.WithTimeout(ctx, admissionIO)
	defer cancel()
	c, err := n.dialPeer(ctx, k, addr, proto) // relay.go: peers with via too
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(admissionIO))
	if _, err := c.Write([]byte(text + "\n" + covered + "\n")); err != nil {
		return err
	}
	line, err := readLine(c, 1024)
	if err != nil {
		return err
	}
	if s := string(line); s != "ok" {
		return errors.New(s)
	}
	return nil
}

// Publish applies a statement here and pushes it to every member; it reports
// how many acknowledged it. The push starts as soon as the statement is
// persisted here, alongside its local effects. Any member may publish a
// revocation or a rotation it was handed (a prepared revocation, say): the
// statement carries its own signatures. Publishing a statement again pushes
// it again (to members that were down the first time).
func (n *Node) Publish(ctx context.Context, text string) (int, error) {
	st, err := membership.ParseAdmission(text)
	if err != nil {
		return 0, refusal.Wrap(refusal.StageUsage, err)
	}
	var (
		once  sync.Once
		done  = make(chan int, 1)
		start = func() { go func() { done <- n.spread(ctx, st.Text, nil) }() }
	)
	if _, err := n.applyStatement(ctx, st.Text, identity.PublicKey{}, func() { once.Do(start) }); err != nil {
		once.Do(func() { done <- 0 })
		<-done
		return 0, err
	}
	once.Do(start)
	acked := <-done
	n.publishGossip(ctx, st.Text)
	return acked, nil
}

// MemberState is one key admission knows of, for `treaty members`.
type MemberState struct {
	Name   string
	ID     identity.PublicKey
	Addr   string
	Source string // config.Source*; "" is operator
	Status string // "member", "revoked" or "superseded ..."
}

// Members lists the peer book with each entry's source, and the keys that
// are refused (revoked or superseded by a rotation).
func (n *Node) Members() []MemberState {
	st := n.state.Load()
	var out []MemberState
	for _, p := range n.Peers() {
		src := st.peers[p.ID].Source
		if src == "" {
			src = config.SourceOperator
		}
		status := "member"
		if why := n.adm.refusedWhy(p.ID); why != "" {
			status = why // refused at the handshake already; leaving the book
		}
		out = append(out, MemberState{Name: p.Name, ID: p.ID, Addr: p.Addr, Source: src, Status: status})
	}
	if m := n.adm.refused.Load(); m != nil {
		for k, why := range *m {
			if _, ok := st.peers[k]; !ok {
				out = append(out, MemberState{ID: k, Status: why})
			}
		}
	}
	return out
}

// PeerSource says where the peer book entry of k came from: operator, invite,
// gossip or decision ("" when k is not in the book).
func (n *Node) PeerSource(k identity.PublicKey) string {
	p, ok := n.state.Load().peers[k]
	switch {
	case !ok:
		return ""
	case p.Source == "":
		return config.SourceOperator
	}
	return p.Source
}
