package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/trust"
	"github.com/treaty-dev/treaty/localapi"
)

// groupRate is the per-member budget of group "team" in these tests.
var groupRate = budget.Rule{Peer: "*", Capability: "group:team", Dir: budget.In, Limit: budget.Limit{Rate: 1, Burst: 3}}

// groupNodes starts n nodes on loopback, each in the others' peer book, with
// the budget rule groupRate, and creates raft group "team" of all of them.
func groupNodes(t *testing.T, names ...string) []*Node {
	t.Helper()
	return groupNodesOf(t, "raft", names...)
}

// groupNodesOf is groupNodes for a group of mode (raft or bft).
func groupNodesOf(t *testing.T, mode string, names ...string) []*Node {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nodes []*Node
	for _, name := range names {
		dir := t.TempDir()
		if _, err := home.Init(dir, name, "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Budget.Rules = []budget.Rule{groupRate}
		if err := config.Save(dir, cfg); err != nil {
			t.Fatal(err)
		}
		n, err := Open(Options{Home: dir, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); n.Close() })
		nodes = append(nodes, n)
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				if err := home.AddPeer(a.Home(), b.Name(), b.Addr().String(), b.ID().String()); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := a.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		g, err := n.GroupDefinition("team", mode, names)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := n.Groups()
		if err := m.Create(g); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// groupLeader waits until every node names the same leader of "team".
func groupLeader(t *testing.T, nodes []*Node) int {
	t.Helper()
	var at int
	eventually(t, 45*time.Second, "an agreed leader", func() bool {
		var lead identity.PublicKey
		for i, n := range nodes {
			m, _ := n.Groups()
			gs := m.Groups()
			if len(gs) != 1 || gs[0].Status.Leader.IsZero() || (i > 0 && gs[0].Status.Leader != lead) {
				return false
			}
			lead = gs[0].Status.Leader
		}
		for i, n := range nodes {
			if n.ID() == lead {
				at = i
				return true
			}
		}
		return false
	})
	return at
}

func putOn(n *Node, key string) error {
	m, _ := n.Groups()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := m.Put(ctx, "team", key, []byte("v"), nil)
	return err
}

// TestGroupFloodIsBudgeted: three nodes, real TLS, one raft group with a
// budget of 1 proposal/s (burst 3) per member. A follower that floods the
// leader gets budget refusals (stage budget, exit 3) on its own counters;
// the other follower and the leader keep committing; the leader counts the
// refusals, lowers the flooder's trust a little (as for calls) and audits
// them aggregated, with no group evidence.
func TestGroupFloodIsBudgeted(t *testing.T) {
	nodes := groupNodes(t, "acme", "acme-eu", "acme-us")
	l := groupLeader(t, nodes)
	leader, flooder, honest := nodes[l], nodes[(l+1)%3], nodes[(l+2)%3]
	trustBefore := leader.TrustSnapshot(flooder.ID()).Score

	const flood = 30
	var mu sync.Mutex
	var ok, refused int
	var other []error
	var wg sync.WaitGroup
	for i := range flood {
		wg.Go(func() {
			err := putOn(flooder, fmt.Sprintf("flood/%d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case refusal.StageOf(err) == refusal.StageBudget && localapi.ExitCode(err) == localapi.ExitDenied && strings.Contains(err.Error(), "rate limit"):
				refused++
			default:
				other = append(other, err)
			}
		})
	}
	// Meanwhile the honest follower commits within its own budget.
	honestErrs := make(chan error, 3)
	wg.Go(func() {
		for k := range 3 {
			honestErrs <- putOn(honest, fmt.Sprintf("honest/%d", k))
		}
	})
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("flood: %d other outcomes, first: %v", len(other), other[0])
	}
	if ok < 1 || refused < flood/2 {
		t.Fatalf("flood of %d: %d committed, %d refused for budget; want most refused", flood, ok, refused)
	}
	for k := range 3 {
		if err := <-honestErrs; err != nil {
			t.Fatalf("honest member's put %d during the flood: %v", k, err)
		}
	}
	// The checks below need one leader throughout: on a loaded machine an
	// election can move it during the flood, and then the old leader's own
	// proposals are forwarded, and charged, like any member's.
	if now := groupLeader(t, nodes); now != l {
		t.Logf("leadership moved from %s to %s during the flood; the leader-side checks are left out", leader.ID().Short(), nodes[now].ID().Short())
		return
	}
	for k := range 5 { // the leader's own proposals are not forwarded, so not charged
		if err := putOn(leader, fmt.Sprintf("leader/%d", k)); err != nil {
			t.Fatalf("leader's put %d: %v", k, err)
		}
	}

	var cm dto.Metric
	if err := leader.groups.metrics.refused.WithLabelValues("team", "budget").Write(&cm); err != nil {
		t.Fatal(err)
	}
	if got := cm.GetCounter().GetValue(); got < float64(refused) {
		t.Fatalf("leader counted %v budget refusals, the flooder saw %d", got, refused)
	}
	if after := leader.TrustSnapshot(flooder.ID()).Score; after >= trustBefore {
		t.Fatalf("flooder's trust on the leader: %.3f -> %.3f", trustBefore, after)
	}
	if leader.TrustSnapshot(flooder.ID()).Quarantined {
		t.Fatal("an over-budget member was quarantined")
	}
	var audited, evidence int
	for _, e := range AuditEntries(t, leader) {
		switch {
		case e.Kind == KindGroupRefused && e.Peer == flooder.ID().String() && e.Stage == "budget":
			audited++
		case e.Kind == KindGroupEvidence:
			evidence++
		}
	}
	if audited == 0 || audited > 2 || evidence != 0 {
		t.Fatalf("leader audited %d group.refused entries (want 1-2, aggregated) and %d group.evidence (want 0)", audited, evidence)
	}
}

// TestGroupAdmitRequestGates: the gate on one node, without a group running:
// a quarantined member is refused at stage trust, a member over the group's
// budget at stage budget, and members have counters of their own.
func TestGroupAdmitRequestGates(t *testing.T) {
	n, dir, bob, _ := startReloadNode(t)
	if _, err := home.SetLimit(dir, "*", "group:team", budget.In, home.LimitChange{Rate: ptr(1.0), Burst: ptr(2)}); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	g, _ := fsm.NewGroup("team", fsm.ModeRaft, 0, []identity.PublicKey{n.ID(), bob})
	carolKey, _ := identity.FromSeed(make([]byte, 32))
	carol := carolKey.Public()
	var releases []func()
	for range 2 {
		rel, err := n.groupAdmitRequest(g, bob, 100)
		if err != nil {
			t.Fatalf("within the burst: %v", err)
		}
		releases = append(releases, rel)
	}
	_, err := n.groupAdmitRequest(g, bob, 100)
	if refusal.StageOf(err) != refusal.StageBudget || !strings.Contains(err.Error(), "rate limit") {
		t.Fatalf("over the burst: %v", err)
	}
	if _, err := n.groupAdmitRequest(g, carol, 100); err != nil {
		t.Fatalf("another member's first proposal: %v", err)
	}
	for _, rel := range releases {
		rel()
	}
	n.observe(carol, trust.KindBadSignature, "forged")
	_, err = n.groupAdmitRequest(g, carol, 100)
	if refusal.StageOf(err) != refusal.StageTrust || localapi.ExitCode(err) != localapi.ExitDenied {
		t.Fatalf("quarantined member: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
