package node

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/trust"
)

// KindGossipEvidence is the audit kind of a record or statement that gossip
// dropped, with the member that relayed it.
const KindGossipEvidence = audit.KindGossipEvidence

// registerGossip offers the gossip protocol from the first handshake on, when
// membership.enabled; Start calls it before the transport listens.
func (n *Node) registerGossip() {
	if n.state.Load().cfg.Membership.Enabled {
		n.tr.Listener(membership.Proto)
	}
}

// startGossip runs memberlist over the started transport, seeded with the
// peer book. Learned records move the addresses of keys already in the book;
// they never add a key (admission stays explicit).
func (n *Node) startGossip(ctx context.Context) error {
	cfg := n.state.Load().cfg
	if !cfg.Membership.Enabled {
		return nil
	}
	var seeds []membership.Seed
	for k, p := range n.state.Load().peers {
		seeds = append(seeds, membership.Seed{Key: k, Addr: p.Addr})
	}
	nick := cfg.Name
	if len(nick) > membership.MaxNicknameBytes {
		nick = nick[:membership.MaxNicknameBytes]
	}
	kinds := membership.AdmissionKinds(func(st membership.AdmissionStatement) {
		// Off gossip's receive goroutine: applying edits files. The
		// envelope's signer answers for it (revocations.go).
		n.goTracked(func() { n.applyStatement(ctx, st.Text, st.Publisher, nil) })
	})
	// Announcements of decided statements (governor_pull.go).
	maps.Copy(kinds, membership.DecidedKinds(func(from identity.PublicKey, a membership.DecidedAnnouncement) {
		n.goTracked(func() { n.decidedAnnounced(ctx, from, a) })
	}))
	mc := membership.Config{
		Self:      n.key,
		Transport: n.tr,
		Record: membership.Fields{Nickname: nick, Org: cfg.Membership.Org, Addrs: []string{n.tr.Addr().String()},
			Relays: n.relayKeys(n.state.Load())},
		Seeds:      seeds,
		Kinds:      kinds,
		Announce:   n.decidedAnnouncements,
		OnChange:   func(m membership.Member) { n.gossipChanged(ctx, m) },
		OnEvidence: func(e membership.Evidence) { n.gossipEvidence(ctx, e) },
		Log:        n.log.With("part", "gossip"),
		Now:        n.now,
	}
	g, err := membership.New(ctx, mc)
	if err != nil {
		return fmt.Errorf("node: membership.enabled: %w", err)
	}
	n.adm.gossip.Store(g)
	left := make(chan struct{})
	n.adm.left = left
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(left)
		<-ctx.Done()
		_ = g.Leave(time.Second)
		_ = g.Close()
	}()
	return nil
}

// goTracked runs f on a goroutine that Close waits for, unless the node is
// closing.
func (n *Node) goTracked(f func()) bool {
	n.adm.mu.Lock()
	defer n.adm.mu.Unlock()
	if n.adm.closing {
		return false
	}
	n.adm.wg.Add(1)
	go func() {
		defer n.adm.wg.Done()
		f()
	}()
	return true
}

// publishGossip hands a statement to gossip too, when it runs.
func (n *Node) publishGossip(ctx context.Context, text string) {
	g := n.adm.gossip.Load()
	if g == nil {
		return
	}
	st, err := membership.ParseAdmission(text)
	if err != nil {
		return
	}
	env, err := membership.AdmissionEnvelope(n.key, st)
	if err == nil {
		err = g.Publish(ctx, env)
	}
	if err != nil {
		n.log.Warn("statement not gossiped", "kind", st.Kind, "err", err)
	}
}

// gossipChanged follows a member's new record: a key in the peer book whose
// signed record names a new first address gets it, so callers reconnect
// there without an edit. Moves are paced per key (addrmoves.go): a member
// publishing records that flip between addresses moves its entry
// addrMoveBurst times, then once per addrMoveWindow.
func (n *Node) gossipChanged(ctx context.Context, m membership.Member) {
	if m.Self || len(m.Record.Addrs) == 0 || n.adm.refusedWhy(m.Record.Key) != "" {
		return
	}
	p, ok := n.state.Load().peers[m.Record.Key]
	if !ok {
		n.moves.forget(m.Record.Key)
		return
	}
	addr := m.Record.Addrs[0]
	if apply, held := n.moves.offer(m.Record.Key, addr, p.Addr, n.now()); apply {
		n.movePeer(ctx, m.Record.Key, addr, held)
	}
}

// gossipEvidence counts a dropped record or statement against the member
// that relayed it, and audits it.
func (n *Node) gossipEvidence(ctx context.Context, e membership.Evidence) {
	n.adm.counts.evidenced(e.Reason)
	kind := trust.KindMalformed
	switch e.Reason {
	case membership.ReasonBadSignature, membership.ReasonWrongKey:
		kind = trust.KindBadSignature
	case membership.ReasonReplayed:
		kind = trust.KindReplay
	}
	if !e.Relayer.IsZero() {
		if _, err := n.trust.Observe(e.Relayer.String(), trust.Evidence{Kind: kind, Detail: "gossip: " + e.Reason.String(), At: n.now()}); err != nil {
			n.log.Error("trust evidence not recorded", "err", err)
		}
	}
	// A member can send bad gossip at will: aggregated per relayer like
	// every other refusal it causes (refusals.go).
	k := refusalKey{source: overflowSource, kind: KindGossipEvidence, direction: "in", stage: string(refusal.StageWire)}
	if !e.Relayer.IsZero() {
		k.source = e.Relayer.String()
	}
	if !n.refusalAdmitted(k, e.Reason.String()) {
		return
	}
	entry := audit.Entry{Kind: KindGossipEvidence, Direction: "in", Outcome: "refused", Stage: string(refusal.StageWire)}
	if !e.Relayer.IsZero() {
		entry.Peer = e.Relayer.String()
	}
	report := map[string]string{"reason": e.Reason.String()}
	if !e.Subject.IsZero() {
		report["subject"] = e.Subject.String()
	}
	entry.Report, _ = json.Marshal(report)
	n.goTracked(func() {
		if _, err := n.audit.Append(context.WithoutCancel(ctx), entry); err != nil {
			n.log.Error("audit append of gossip evidence failed", "err", err)
		}
	})
}

// GossipMembers is what gossip knows (nil when membership.enabled is off),
// each with Via set to the relay this node would dial it through (its peer
// book via, or a relay its record names), if any.
func (n *Node) GossipMembers() []membership.Member {
	g := n.adm.gossip.Load()
	if g == nil {
		return nil
	}
	ms := g.Members()
	for i := range ms {
		if ms[i].Self {
			continue
		}
		if r, err := n.route(context.Background(), ms[i].Record.Key); err == nil {
			ms[i].Via = r.Relay
		}
	}
	return ms
}
