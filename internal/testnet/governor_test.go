package testnet

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/localapi"
)

// governedBound is the documented bound from the vote that passes a
// governing motion to every member applying it (docs/admission.md): the
// decision records are collected (a BFT certificate needs a quorum's
// attestations), then the statement is pushed as other statements are. The
// test runs under -race on a shared machine, hence the margin over the
// 3 s a healthy network needs.
const governedBound = 15 * time.Second

// governedCluster is four organisations running the BFT group "board" that
// governs the federation, and two members outside it (delta, edge) that
// check its decisions against the definition in their configuration.
func governedCluster(t *testing.T) (*Cluster, []*Member, []*Member) {
	t.Helper()
	c := NewCluster(t, 6, Options{Names: []string{"acme", "globex", "initech", "umbrella", "delta", "edge"}})
	board, outside := c.Members[:4], c.Members[4:]
	createGroup(t, "board", "bft", board...)
	var ids []string
	for _, m := range board {
		ids = append(ids, m.ID.String())
	}
	for _, m := range board {
		m.AppendConfig(t, "membership:\n  governor:\n    group: board\n")
	}
	for _, m := range outside {
		m.AppendConfig(t, "membership:\n  governor:\n    group: board\n    mode: bft\n    members: ["+strings.Join(ids, ", ")+"]\n")
	}
	return c, board, outside
}

// govern opens a governing motion through m's local API, retrying while the
// fresh group forms its first view.
func govern(t *testing.T, m *Member, req localapi.GovernRequest) localapi.GovernResponse {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		res, err := m.Client().Govern(ctx, req)
		cancel()
		if err == nil {
			return res
		}
		if refusal.ExitCode(err) != refusal.ExitUnreachable || time.Now().After(deadline) {
			t.Fatalf("govern %s: %v (exit %d)", req.Action, err, refusal.ExitCode(err))
		}
	}
}

// vote has each of voters vote yes on motion and returns the last decision.
func vote(t *testing.T, motion string, voters ...*Member) localapi.Decision {
	t.Helper()
	var last localapi.Decision
	for _, m := range voters {
		last = commit(t, func(ctx context.Context) (localapi.Decision, error) {
			return m.Client().MotionVote(ctx, "board", motion, true)
		})
	}
	return last
}

// TestGovernorBFT: the governing group admits a key by motion and every
// member, inside the group or not, learns it with source decision (and no
// grant); it revokes the key by motion and every member refuses it at the
// handshake; forged decisions are refused and cost the relayer trust.
func TestGovernorBFT(t *testing.T) {
	c, board, outside := governedCluster(t)
	acme, globex, initech := board[0], board[1], board[2]
	delta, edge := outside[0], outside[1]
	everyone := append(append([]*Member{}, board...), outside...)

	// Without a governor configured, governing is a usage error.
	echo := c.Add(t, "echo", "")
	if _, err := echo.Node().Govern(t.Context(), node.GovernRequest{Action: membership.ActionRevoke, Peer: acme.ID.String()}); refusal.ExitCode(err) != refusal.ExitUsage {
		t.Fatalf("govern without a governor: %v", err)
	}
	// A node outside the group cannot open its motions.
	if _, err := delta.Node().Govern(t.Context(), node.GovernRequest{Action: membership.ActionRevoke, Peer: "acme"}); refusal.ExitCode(err) != refusal.ExitDenied {
		t.Fatalf("govern from outside the group: %v", err)
	}

	t.Run("admit", func(t *testing.T) {
		res := govern(t, acme, localapi.GovernRequest{Action: membership.ActionAdmit, Peer: echo.ID.String(), Name: "echo", Addr: echo.Addr()})
		if res.Outcome != "open" || !strings.HasPrefix(res.Motion, "admit-") {
			t.Fatalf("opened: %+v", res)
		}
		for _, m := range everyone {
			if m.Node().Admitted(echo.ID) {
				t.Fatalf("%s admits echo before the motion passed", m.Name)
			}
		}
		if last := vote(t, res.Motion, globex, initech); last.Outcome != "passed" {
			t.Fatalf("after three yes votes: %+v", last)
		}
		start := time.Now()
		eventually(t, governedBound, "every member learns echo with source decision", func() bool {
			for _, m := range everyone {
				if m.Node().PeerSource(echo.ID) != config.SourceDecision || !m.Node().Admitted(echo.ID) {
					return false
				}
			}
			return true
		})
		t.Logf("admission applied everywhere %v after the deciding vote", time.Since(start))
		p, _ := knows(delta, echo.ID)
		if p.Addr != echo.Addr() || p.Name != "echo" {
			t.Fatalf("delta's entry for echo: %+v", p)
		}
		// Knowing a key grants it nothing.
		acme.Handle(t, "ping", func(context.Context, backend.Invocation) ([]byte, error) { return []byte(`{}`), nil })
		echo.AddPeer(t, acme)
		if o := echo.Call(t, "acme", "ping", ""); o.Code != refusal.ExitDenied {
			t.Fatalf("echo calls ping without a grant: %v", o)
		}
	})

	var revokeOpen, revokePass uint64
	t.Run("revoke", func(t *testing.T) {
		if echo.Node().Conns() == 0 {
			t.Fatal("echo holds no connection before the revocation")
		}
		// globex opens the motion and waits for the outcome; the group is
		// formed by now, so one request is enough.
		type answer struct {
			res localapi.GovernResponse
			err error
		}
		waited := make(chan answer, 1)
		go func() {
			res, err := globex.Client().Govern(t.Context(), localapi.GovernRequest{Action: membership.ActionRevoke, Peer: "echo", Wait: true})
			waited <- answer{res, err}
		}()
		var motion localapi.MotionInfo
		Eventually(t, 15*time.Second, func() error {
			ms, err := initech.Client().MotionList(t.Context(), "board")
			if err != nil {
				return err
			}
			for _, m := range ms {
				if strings.HasPrefix(m.Name, "revoke-") && len(m.Yes) == 1 {
					motion = m
					return nil
				}
			}
			return fmt.Errorf("no revocation motion with the opener's vote yet among %d", len(ms))
		})
		if want := membership.GovernorTextPrefix + " revoke " + echo.ID.String(); motion.Text != want || motion.Quorum != 3 || motion.Proposer != globex.ID.String() {
			t.Fatalf("motion %+v", motion)
		}
		select {
		case a := <-waited:
			t.Fatalf("--wait returned before the motion was decided: %+v %v", a.res, a.err)
		default:
		}
		revokeOpen = motion.Opened
		last := vote(t, motion.Name, acme, initech)
		if last.Outcome != "passed" {
			t.Fatalf("after three yes votes: %+v", last)
		}
		revokePass = last.Index
		start := time.Now()
		eventually(t, governedBound, "every member refuses echo", func() bool {
			for _, m := range everyone {
				if m.Node().Admitted(echo.ID) {
					return false
				}
				if _, ok := knows(m, echo.ID); ok {
					return false
				}
			}
			return true
		})
		t.Logf("revocation refused everywhere %v after the deciding vote", time.Since(start))
		if a := <-waited; a.err != nil || a.res.Outcome != "passed" || a.res.Key != echo.ID.String() || a.res.Motion != motion.Name {
			t.Fatalf("waited: %+v %v", a.res, a.err)
		}
		eventually(t, governedBound, "echo's connections close", func() bool { return echo.Node().Conns() == 0 })
		if o := echo.Call(t, "acme", "ping", ""); o.Code != refusal.ExitUnreachable {
			t.Fatalf("a revoked key's call: %v; want exit 4 (handshake refused)", o)
		}
		for _, m := range everyone {
			if st := memberStatus(m, echo.ID); st != "revoked" {
				t.Fatalf("%s shows echo as %q", m.Name, st)
			}
		}
		// It survives a restart, and nothing brings it back.
		delta.Stop(t)
		delta.Start(t)
		if delta.Node().Admitted(echo.ID) {
			t.Fatal("group revocation lost across a restart")
		}
		delta.AddPeerAt(t, "echo2", echo.Addr(), echo.ID.String())
		if delta.Node().Admitted(echo.ID) {
			t.Fatal("peer add re-admitted a key the group revoked")
		}
	})

	t.Run("forged", func(t *testing.T) {
		// Real records of the revocation, to tamper with.
		open := exportRecord(t, acme, revokeOpen)
		passed := exportRecord(t, acme, revokePass)
		edgeKey, err := identity.LoadKeyFile(edge.Home + "/identity.key")
		if err != nil {
			t.Fatal(err)
		}
		badCert := passed
		badCert.Certificate = append([]fsm.Attestation{}, passed.Certificate...)
		badCert.Certificate[0].Sig = append([]byte{}, passed.Certificate[0].Sig...)
		badCert.Certificate[0].Sig[3] ^= 1
		stranger, err := identity.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		strangerCert := passed
		strangerCert.Certificate = append([]fsm.Attestation{}, passed.Certificate...)
		strangerCert.Certificate[0] = fsm.Attestation{Signer: stranger.Public(), Sig: passed.Certificate[0].Sig}
		// A decision that verifies, taken by another group called board:
		// its only member is the stranger, and it revokes initech.
		wrongOpen, wrongPass := oneMemberDecision(t, stranger, membership.GroupAction{Kind: membership.ActionRevoke, Key: initech.ID})

		forgeries := map[string]string{}
		for name, recs := range map[string][2]fsm.Record{
			"bad certificate":            {open, badCert},
			"non-member signer":          {open, strangerCert},
			"wrong group":                {wrongOpen, wrongPass},
			"open record as the passing": {passed, open},
		} {
			text, _, _ := membership.SignDecided(edgeKey, recs[0], recs[1], "")
			if text == "" {
				t.Fatalf("%s: no text", name)
			}
			forgeries[name] = text
		}
		for _, target := range []*Member{delta, globex} {
			before := target.Node().TrustSnapshot(edge.ID)
			for name, text := range forgeries {
				if got := pushDecided(t, edgeKey, target, text); !strings.HasPrefix(got, "error: ") {
					t.Fatalf("%s: %s answered %q", name, target.Name, got)
				}
			}
			after := target.Node().TrustSnapshot(edge.ID)
			if after.Bad <= before.Bad || after.Score >= before.Score {
				t.Fatalf("%s: edge's trust after %d forgeries: %+v, before %+v", target.Name, len(forgeries), after, before)
			}
			if !target.Node().Admitted(initech.ID) {
				t.Fatalf("%s applied the other group's revocation", target.Name)
			}
		}
		// An oversized line is refused before it is parsed, and counted.
		before := delta.Node().TrustSnapshot(edge.ID)
		if got := pushDecided(t, edgeKey, delta, membership.DecidedPrefix+"."+strings.Repeat("A", membership.MaxDecidedText+8)); !strings.HasPrefix(got, "error: ") {
			t.Fatalf("oversized statement: %q", got)
		}
		if after := delta.Node().TrustSnapshot(edge.ID); after.Bad <= before.Bad {
			t.Fatalf("oversized statement not counted: %+v, before %+v", after, before)
		}
		// A key outside the peer book cannot reach the protocol at all.
		_, stranger2 := strangerTransport(t)
		if _, err := stranger2.Dial(t.Context(), delta.Addr(), delta.ID, node.ProtoDecided); err == nil {
			t.Fatal("a stranger reached the decided-statement protocol")
		}
		// The genuine statement, relayed again by edge, is acknowledged.
		genuine, _, err := membership.SignDecided(edgeKey, open, passed, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := pushDecided(t, edgeKey, delta, genuine); got != "ok" {
			t.Fatalf("genuine decision relayed by edge: %q", got)
		}
	})

	t.Run("late", func(t *testing.T) {
		lateAdmission(t, acme, globex, initech, delta, edge, []*Member{acme, globex, initech, board[3], edge})
	})
}

// lateAdmission is a subtest of TestGovernorBFT: a node that was down while
// an admission spread takes it when the opener's statement reaches it later;
// a wrapping without the opener's address neither applies nor blocks it.
func lateAdmission(t *testing.T, acme, globex, initech, delta, edge *Member, others []*Member) {
	newcomer, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	k := newcomer.Public()
	delta.Stop(t)
	res := govern(t, acme, localapi.GovernRequest{Action: membership.ActionAdmit, Peer: k.String(), Name: "foxtrot", Addr: "127.0.0.1:9"})
	last := vote(t, res.Motion, globex, initech)
	eventually(t, governedBound, "the running members learn foxtrot", func() bool {
		for _, m := range others {
			if m.Node().PeerSource(k) != config.SourceDecision {
				return false
			}
		}
		return true
	})
	delta.Start(t)
	if _, ok := knows(delta, k); ok {
		t.Fatal("delta learned foxtrot while it was down")
	}
	open, passed := exportRecord(t, acme, res.Index), exportRecord(t, acme, last.Index)
	edgeKey, err := identity.LoadKeyFile(edge.Home + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	noAddr, _, err := membership.SignDecided(edgeKey, open, passed, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := pushDecided(t, edgeKey, delta, noAddr); got != "ok" {
		t.Fatalf("admission without an address: %q", got)
	}
	if _, ok := knows(delta, k); ok {
		t.Fatal("an admission without an address was applied")
	}
	// Only the opener may add the address.
	if _, _, err := membership.SignDecided(edgeKey, open, passed, "127.0.0.1:9"); err == nil {
		t.Fatal("an address from another member than the opener verifies")
	}
	acmeKey, err := identity.LoadKeyFile(acme.Home + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	withAddr, _, err := membership.SignDecided(acmeKey, open, passed, "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	if got := pushDecided(t, acmeKey, delta, withAddr); got != "ok" {
		t.Fatalf("the opener's admission: %q", got)
	}
	if p, ok := knows(delta, k); !ok || p.Source != config.SourceDecision || p.Addr != "127.0.0.1:9" || p.Name != "foxtrot" {
		t.Fatalf("delta's entry for foxtrot: %+v %v", p, ok)
	}
}

func memberStatus(m *Member, k identity.PublicKey) string {
	for _, s := range m.Node().Members() {
		if s.ID == k {
			return s.Status
		}
	}
	return ""
}

func exportRecord(t *testing.T, m *Member, index uint64) fsm.Record {
	t.Helper()
	var r fsm.Record
	Eventually(t, 15*time.Second, func() error {
		b, err := m.Client().DecisionExport(t.Context(), "board", index)
		if err != nil {
			return err
		}
		r, err = fsm.ParseRecord(b)
		return err
	})
	return r
}

// oneMemberDecision is a passed governing motion of a BFT group called board
// whose only member is k.
func oneMemberDecision(t *testing.T, k identity.PrivateKey, act membership.GroupAction) (fsm.Record, fsm.Record) {
	t.Helper()
	g, err := fsm.NewGroup("board", fsm.ModeBFT, 0, []identity.PublicKey{k.Public()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := fsm.New(g)
	if err != nil {
		t.Fatal(err)
	}
	name := act.MotionName("x")
	var recs []fsm.Record
	for i, op := range []fsm.Op{fsm.OpenMotion(name, 1, 0, act.MotionText()), fsm.Vote(name, true)} {
		q, err := fsm.SignRequest(k, g.ID(), uint64(i+1), op)
		if err != nil {
			t.Fatal(err)
		}
		e := fsm.Entry{Time: time.Now().UnixNano(), Request: q.Encode()}
		res := m.Apply(uint64(i+1), e)
		recs = append(recs, fsm.NewRecord(g, uint64(i+1), e, res, []fsm.Attestation{fsm.Attest(k, g, uint64(i+1), e, res)}))
	}
	return recs[0], recs[1]
}

// pushDecided sends text to m on the decided-statement protocol with key k
// (a member m knows) and returns m's answer.
func pushDecided(t *testing.T, k identity.PrivateKey, m *Member, text string) string {
	t.Helper()
	tr, err := transport.New(transport.Config{Identity: k, Peers: admitAll{}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	conn, err := tr.Dial(t.Context(), m.Addr(), m.ID, node.ProtoDecided)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\n%s\n", text, k.Public()); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(line, "\n")
}

// TestGovernorRaft: a Raft group inside one organisation governs; its
// records carry no certificate, so a member outside the group accepts a
// decision wrapped by a member of the group (whose word it trusts) and
// refuses the same records wrapped by anyone else.
func TestGovernorRaft(t *testing.T) {
	c := NewCluster(t, 5, Options{Names: []string{"acme", "acme-eu", "acme-us", "globex", "mallory"}})
	board, globex, mallory := c.Members[:3], c.Members[3], c.Members[4]
	createGroup(t, "board", "raft", board...)
	var ids []string
	for _, m := range board {
		ids = append(ids, m.ID.String())
		m.AppendConfig(t, "membership:\n  governor:\n    group: board\n")
	}
	globex.AppendConfig(t, "membership:\n  governor:\n    group: board\n    mode: raft\n    members: ["+strings.Join(ids, ", ")+"]\n")

	res := govern(t, board[0], localapi.GovernRequest{Action: membership.ActionRevoke, Peer: "mallory"})
	last := vote(t, res.Motion, board[1])
	if last.Outcome != "passed" {
		t.Fatalf("after two yes votes of three: %+v", last)
	}
	everyone := []*Member{board[0], board[1], board[2], globex}
	eventually(t, governedBound, "every member refuses mallory", func() bool {
		for _, m := range everyone {
			if m.Node().Admitted(mallory.ID) {
				return false
			}
		}
		return true
	})
	// An admission whose opener restarts before the motion passes: the
	// address it vouches for is in its ledger, and it spreads the admission
	// once it has caught up with the group.
	newcomer, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	adm := govern(t, board[0], localapi.GovernRequest{Action: membership.ActionAdmit, Peer: newcomer.Public().String(), Name: "delta", Addr: "127.0.0.1:9"})
	board[0].Stop(t)
	if last := vote(t, adm.Motion, board[1]); last.Outcome != "passed" {
		t.Fatalf("admission after two yes votes of three: %+v", last)
	}
	board[0].Start(t)
	eventually(t, governedBound, "every member learns the newcomer from the restarted opener", func() bool {
		for _, m := range everyone {
			if m.Node().PeerSource(newcomer.Public()) != config.SourceDecision {
				return false
			}
		}
		return true
	})

	// edge, a member globex knows but outside the group, wraps the same
	// records: refused (a Raft decision is only a group member's word), and
	// counted against edge.
	open, passed := exportRecord(t, board[0], res.Index), exportRecord(t, board[0], last.Index)
	if open.NoCertificate == "" {
		t.Fatal("a raft record claims a certificate")
	}
	edge := c.Add(t, "edge", "")
	c.Federate(t, edge, globex)
	edgeKey, err := identity.LoadKeyFile(edge.Home + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	text, _, err := membership.SignDecided(edgeKey, open, passed, "")
	if err == nil {
		t.Fatal("a raft decision wrapped by a non-member verifies")
	}
	before := globex.Node().TrustSnapshot(edge.ID)
	if got := pushDecided(t, edgeKey, globex, text); !strings.HasPrefix(got, "error: ") {
		t.Fatalf("globex answered %q", got)
	}
	if after := globex.Node().TrustSnapshot(edge.ID); after.Bad <= before.Bad {
		t.Fatalf("edge's trust after a forged raft decision: %+v, before %+v", after, before)
	}
}
