package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/localapi"
)

// spreadBound is the documented bound for a statement (introduction,
// rotation, revocation) to reach every member of a small federation on
// loopback (docs/admission.md).
const spreadBound = 3 * time.Second

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("not within %v: %s", d, what)
		}
		tick := time.NewTimer(5 * time.Millisecond)
		select {
		case <-t.Context().Done():
			tick.Stop()
			t.Fatal(t.Context().Err())
		case <-tick.C:
		}
	}
	return time.Since(start)
}

func knows(m *Member, k identity.PublicKey) (config.Peer, bool) {
	cfg, err := config.Load(m.Home)
	if err != nil {
		return config.Peer{}, false
	}
	return cfg.Peer(k.String())
}

// invite makes a token on m.
func invite(t *testing.T, m *Member, ttl time.Duration, uses int) string {
	t.Helper()
	tok, _, err := m.Node().Invite(t.Context(), ttl, uses, "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestInviteJoinSpreadsToEveryMember(t *testing.T) {
	c := NewCluster(t, 4, Options{Names: []string{"acme", "globex", "initech", "umbrella"}})
	acme := c.Member("acme")
	delta := c.Add(t, "delta", "")
	tok := invite(t, acme, time.Hour, 1)
	res, err := delta.Node().Join(t.Context(), tok, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Inviter != acme.ID || res.Members != 3 {
		t.Fatalf("join result %+v: want acme as inviter and the 3 other members", res)
	}
	took := eventually(t, spreadBound, "every member learns delta", func() bool {
		for _, m := range c.Members[:4] {
			if _, ok := knows(m, delta.ID); !ok {
				return false
			}
		}
		return true
	})
	t.Logf("introduction reached every member in %v", took)
	for _, m := range c.Members[:4] {
		p, _ := knows(m, delta.ID)
		want := config.SourceGossip
		if m == acme {
			want = config.SourceInvite
		}
		if p.Source != want || p.Addr != delta.Addr() || p.Name != "delta" {
			t.Errorf("%s's entry for delta: %+v, want source %s at %s", m.Name, p, want, delta.Addr())
		}
		if _, ok := knows(delta, m.ID); !ok {
			t.Errorf("delta does not know %s", m.Name)
		}
	}
	// Knowing a key grants nothing: default deny stays.
	globex := c.Member("globex")
	globex.Handle(t, "echo", func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	if o := delta.Call(t, "globex", "echo", `{}`); o.Code != 3 {
		t.Fatalf("delta calling an ungranted capability: %v, want exit 3 (denied)", o)
	}
	globex.Grant(t, delta.ID.String(), "echo")
	delta.MustCall(t, "globex", "echo", `{"x":1}`)
}

func TestInviteRefusals(t *testing.T) {
	c := NewCluster(t, 2, Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	joiner := func(name string) *Member { return c.Add(t, name, "") }

	t.Run("used up", func(t *testing.T) {
		tok := invite(t, acme, time.Hour, 1)
		if _, err := joiner("first").Node().Join(t.Context(), tok, ""); err != nil {
			t.Fatal(err)
		}
		_, err := joiner("second").Node().Join(t.Context(), tok, "")
		var je *node.JoinError
		if !errors.As(err, &je) || !errors.Is(err, membership.ErrUsedUp) {
			t.Fatalf("second use of a one-use invite: %v, want a JoinError wrapping ErrUsedUp", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		tok := invite(t, acme, time.Minute, 1)
		c.Clock.Advance(2 * time.Minute)
		_, err := joiner("late").Node().Join(t.Context(), tok, "")
		if !errors.Is(err, membership.ErrExpired) {
			t.Fatalf("expired invite: %v, want ErrExpired", err)
		}
	})
	t.Run("forged, presented straight to the inviter", func(t *testing.T) {
		// The newcomer's node checks a token before it dials; a hostile
		// client does not, so the inviter checks again.
		stranger, tr := strangerTransport(t)
		real := invite(t, acme, time.Hour, 1)
		inv, _ := membership.ParseInvite(real)
		forger, _ := identity.Generate(nil)
		_, other, err := membership.IssueInvite(forger, inv.Addr, c.Clock.Now(), time.Hour, 5, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, token, code string
		}{
			{"signature flipped", real[:len(real)-2] + flipChar(real[len(real)-2]) + real[len(real)-1:], "bad_signature"},
			{"another node's token", other, "not_inviter"},
			{"garbage", "treaty-invite-v1.AAAA", "malformed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				rep := rawJoin(t, tr, acme, node.JoinRequest{Token: tc.token, Name: "mallory", Addr: "127.0.0.1:1"})
				if rep.Code != tc.code {
					t.Fatalf("reply %+v, want code %s", rep, tc.code)
				}
			})
		}
		if _, ok := knows(acme, stranger); ok {
			t.Fatal("a refused join entered the peer book")
		}
		// A stranger's refused joins cost a bounded number of audit rows.
		for range 20 {
			rawJoin(t, tr, acme, node.JoinRequest{Token: "treaty-invite-v1.AAAA", Name: "mallory", Addr: "127.0.0.1:1"})
		}
		if got := len(acme.Audit(t, auditFilter(audit.KindJoinRefused))); got > 2 {
			t.Fatalf("23 refused joins from one source wrote %d audit entries, want at most 2 (aggregated)", got)
		}
		// The real token still works: refusals used none of its uses.
		rep := rawJoin(t, tr, acme, node.JoinRequest{Token: real, Name: "mallory", Addr: "127.0.0.1:1"})
		if rep.Code != "" || rep.Admit == "" {
			t.Fatalf("the real token after refusals: %+v", rep)
		}
	})
	t.Run("over the configured bounds", func(t *testing.T) {
		acme.AppendConfig(t, "membership:\n  max_invite_ttl: 2h\n  max_invite_uses: 2\n")
		if _, _, err := acme.Node().Invite(t.Context(), 3*time.Hour, 1, ""); err == nil {
			t.Fatal("invite longer than membership.max_invite_ttl")
		}
		if _, _, err := acme.Node().Invite(t.Context(), time.Hour, 3, ""); err == nil {
			t.Fatal("invite with more uses than membership.max_invite_uses")
		}
		if _, _, err := acme.Node().Invite(t.Context(), 2*time.Hour, 2, ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stranger reaches only the join protocol", func(t *testing.T) {
		_, tr := strangerTransport(t)
		invite(t, acme, time.Hour, 1)
		// acme has open invites, so the join protocol lets strangers in ...
		if conn, err := tr.Dial(t.Context(), acme.Addr(), acme.ID, node.ProtoJoin); err != nil {
			t.Fatalf("join protocol with an invite open: %v", err)
		} else {
			conn.Close()
		}
		// ... and nothing else does.
		for _, proto := range []string{transport.ProtoFederation, node.ProtoStatement} {
			if _, err := tr.Dial(t.Context(), acme.Addr(), acme.ID, proto); err == nil {
				t.Fatalf("a stranger finished a %s handshake", proto)
			}
		}
		// globex has no invite open: strangers get nothing at all.
		if _, err := tr.Dial(t.Context(), globex.Addr(), globex.ID, node.ProtoJoin); err == nil {
			t.Fatal("join protocol open without an invite")
		}
	})
}

func flipChar(b byte) string {
	if b == 'A' {
		return "B"
	}
	return "A"
}

// strangerTransport is a transport with a key no member knows.
func strangerTransport(t *testing.T) (identity.PublicKey, *transport.Transport) {
	t.Helper()
	k, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.New(transport.Config{Identity: k, Peers: admitAll{}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return k.Public(), tr
}

// rawJoin sends req on the join protocol, as a client that skips its own checks.
func rawJoin(t *testing.T, tr *transport.Transport, to *Member, req node.JoinRequest) node.JoinReply {
	t.Helper()
	conn, err := tr.Dial(t.Context(), to.Addr(), to.ID, node.ProtoJoin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		t.Fatal(err)
	}
	var rep node.JoinReply
	if err := json.NewDecoder(conn).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestRevocationRefusedEverywhere(t *testing.T) {
	c := NewCluster(t, 4, Options{Names: []string{"acme", "globex", "initech", "umbrella"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	// The revocation is prepared in advance, while globex's key is safe.
	key, err := identity.LoadKeyFile(globex.Home + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	_, text, err := membership.SignRevocation(key, c.Clock.Now(), "laptop stolen")
	if err != nil {
		t.Fatal(err)
	}
	// globex holds open connections to everyone.
	for _, m := range c.Members {
		if m != globex {
			m.Handle(t, "ping", func(context.Context, backend.Invocation) ([]byte, error) { return []byte(`{}`), nil })
			m.Grant(t, globex.ID.String(), "ping")
			globex.MustCall(t, m.Name, "ping", "")
		}
	}
	before := globex.Node().Conns()
	if before == 0 {
		t.Fatal("no connections open before the revocation")
	}
	// Published from another member's node, as an operator who found the
	// prepared file would.
	start := time.Now()
	if _, err := acme.Node().Publish(t.Context(), text); err != nil {
		t.Fatal(err)
	}
	eventually(t, spreadBound, "every member drops globex", func() bool {
		for _, m := range c.Members {
			if m == globex {
				continue
			}
			if _, ok := knows(m, globex.ID); ok || m.Node().Admitted(globex.ID) {
				return false
			}
		}
		return true
	})
	t.Logf("revocation refused everywhere after %v", time.Since(start))
	eventually(t, spreadBound, "globex's connections close", func() bool { return globex.Node().Conns() == 0 })
	// A new handshake is refused by every member.
	for _, m := range c.Members {
		if m == globex {
			continue
		}
		if o := globex.Call(t, m.Name, "ping", ""); o.Err == nil {
			t.Fatalf("%s still serves the revoked key", m.Name)
		}
		conn, err := net.Dial("tcp", m.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	// A revoked key cannot come back by an operator's peer add or an invite.
	acme.AddPeerAt(t, "globex2", globex.Addr(), globex.ID.String())
	if acme.Node().Admitted(globex.ID) {
		t.Fatal("peer add re-admitted a revoked key")
	}
	tok := invite(t, acme, time.Hour, 1)
	if _, err := globex.Node().Join(t.Context(), tok, ""); err == nil {
		t.Fatal("a revoked key joined by invite")
	}
	// The revocation survives a restart.
	acme.Stop(t)
	acme.Start(t)
	if acme.Node().Admitted(globex.ID) {
		t.Fatal("revocation lost across a restart")
	}
}

func TestRotationKeepsGrantsTrustAndBudgets(t *testing.T) {
	c := NewCluster(t, 3, Options{Names: []string{"acme", "globex", "initech"}})
	acme, globex, initech := c.Member("acme"), c.Member("globex"), c.Member("initech")
	globex.Handle(t, "echo", func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	globex.Grant(t, acme.ID.String(), "echo")
	// Six calls, with no refill worth counting during the test: five before
	// the rotation and one after; the seventh must be refused, since what the
	// old key spent stays spent.
	globex.AppendConfig(t, "budget:\n  rules:\n    - peer: "+acme.ID.String()+"\n      rate: 0.01\n      burst: 6\n")
	for range 5 {
		acme.MustCall(t, "globex", "echo", `{}`)
	}
	before := globex.Node().TrustSnapshot(acme.ID)
	old := acme.ID

	res, err := acme.Node().Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Old != old || res.Acked != 2 {
		t.Fatalf("rotate: %+v, want both members to acknowledge", res)
	}
	select {
	case <-acme.Node().Restart():
	default:
		t.Fatal("Rotate did not ask for a restart")
	}
	eventually(t, spreadBound, "every member follows the rotation", func() bool {
		for _, m := range []*Member{globex, initech} {
			if _, ok := knows(m, res.New); !ok || m.Node().Admitted(old) {
				return false
			}
		}
		return true
	})
	acme.Stop(t)
	acme.ID = res.New
	acme.Start(t)
	if acme.Node().ID() != res.New {
		t.Fatalf("restarted on %s, want the new key %s", acme.Node().ID().Short(), res.New.Short())
	}
	// Grants carried over: the call works without a new grant.
	acme.MustCall(t, "globex", "echo", `{"after":"rotation"}`)
	after := globex.Node().TrustSnapshot(res.New)
	if after.Score < before.Score || len(after.Recent) < len(before.Recent) {
		t.Fatalf("trust after rotation %+v, before %+v: want it carried over", after, before)
	}
	cfg, err := config.Load(globex.Home)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Budget.Rule(res.New.String(), "", 0); !ok {
		t.Fatalf("budget rule not moved to the new key: %+v", cfg.Budget.Rules)
	}
	// The budget's counters carried over too: a rotation is no way around a limit.
	var le *localapi.Error
	if o := acme.Call(t, "globex", "echo", `{"seventh":1}`); !errors.As(o.Err, &le) || le.Stage != localapi.StageBudget {
		t.Fatalf("seventh call after the rotation: %v; want a refusal at stage budget", o)
	}
	// Both keys in the audit logs: globex's, and the head of acme's new log.
	var seen bool
	for _, e := range globex.Audit(t, auditFilter(node.KindKeyRotated)) {
		if e.Peer == res.New.String() && strings.Contains(string(e.Report), old.String()) {
			seen = true
		}
	}
	if !seen {
		t.Fatal("globex's audit log lacks the rotation with both keys")
	}
	head := acme.Audit(t, auditFilter(node.KindKeyRotated))
	if len(head) == 0 || !strings.Contains(string(head[0].Report), res.New.String()) || head[0].Peer != old.String() {
		t.Fatalf("acme's new audit log does not start with the rotation: %+v", head)
	}
	// The old key is refused by every member.
	for _, m := range []*Member{globex, initech} {
		if m.Node().Admitted(old) {
			t.Fatalf("%s still admits the superseded key", m.Name)
		}
	}
}

func TestRevocationVoidsRotationsOfAStolenKey(t *testing.T) {
	c := NewCluster(t, 3, Options{Names: []string{"acme", "globex", "initech"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	key, err := identity.LoadKeyFile(acme.Home + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	_, revocation, err := membership.SignRevocation(key, c.Clock.Now(), "")
	if err != nil {
		t.Fatal(err)
	}
	// A thief with acme's key rotates it to a key of its own ...
	thief, _ := identity.Generate(nil)
	_, rot, err := membership.SignRotation(key, thief, c.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := globex.Node().Publish(t.Context(), rot); err != nil {
		t.Fatal(err)
	}
	eventually(t, spreadBound, "the rotation applies", func() bool { return globex.Node().Admitted(thief.Public()) })
	// ... and acme's prepared revocation voids both keys.
	if _, err := globex.Node().Publish(t.Context(), revocation); err != nil {
		t.Fatal(err)
	}
	eventually(t, spreadBound, "both keys refused everywhere", func() bool {
		for _, m := range c.Members[1:] {
			if m.Node().Admitted(thief.Public()) || m.Node().Admitted(acme.ID) {
				return false
			}
		}
		return true
	})
}

func auditFilter(kind string) audit.Filter { return audit.Filter{Kind: kind} }

func TestGossipFollowsAddressesAndShowsMembers(t *testing.T) {
	names := []string{"acme", "globex", "initech", "umbrella"}
	cfg := map[string]string{}
	for _, n := range names {
		cfg[n] = "membership:\n  enabled: true\n  org: " + n + " inc\n"
	}
	c := NewCluster(t, 4, Options{Names: names, Config: cfg})
	// The peer books were written after the nodes started: join them now,
	// as a restart would with its seeds. All stop before any starts: a node
	// restarted while the others gossip comes back on a new port, and a
	// peer that learnt the old one keeps it until it has declared that dead
	// and the dead-reclaim time (10s) has passed, unless the leave reached it.
	for _, m := range c.Members {
		m.Stop(t)
	}
	for _, m := range c.Members {
		m.Start(t)
	}
	eventually(t, 10*time.Second, "every node sees every other alive", func() bool {
		for _, m := range c.Members {
			alive := 0
			for _, g := range m.Node().GossipMembers() {
				if !g.Self && g.State.String() == "alive" {
					alive++
				}
			}
			if alive != 3 {
				return false
			}
		}
		return true
	})
	orgs := map[string]bool{}
	for _, g := range c.Member("acme").Node().GossipMembers() {
		orgs[g.Record.Org] = true
	}
	if !orgs["globex inc"] || !orgs["umbrella inc"] {
		t.Fatalf("organisations seen by acme: %v", orgs)
	}
	// globex moves to a new port; nobody edits a peer book.
	globex := c.Member("globex")
	oldAddr := globex.Addr()
	globex.Stop(t)
	if err := globex.start(); err != nil {
		t.Fatal(err)
	}
	newAddr := globex.Addr()
	if newAddr == oldAddr {
		t.Skip("the kernel gave the same port back")
	}
	eventually(t, 10*time.Second, "every member follows globex to its new address", func() bool {
		for _, m := range c.Members {
			if m == globex {
				continue
			}
			if p, ok := knows(m, globex.ID); !ok || p.Addr != newAddr {
				return false
			}
		}
		return true
	})
	globex.Handle(t, "echo", func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	globex.Grant(t, c.Member("acme").ID.String(), "echo")
	c.Member("acme").MustCall(t, "globex", "echo", `{}`)
}

func TestStaleIntroductionNotApplied(t *testing.T) {
	c := NewCluster(t, 2, Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	// acme's key introduces a key that globex's operator removed long ago.
	key, err := identity.LoadKeyFile(acme.Home + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	removed, _ := identity.Generate(nil)
	old := membership.Admit{Inviter: acme.ID, Member: removed.Public(), Name: "gone", Addr: "127.0.0.1:9", Issued: c.Clock.Now().Add(-2 * time.Hour)}
	text, err := old.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Node().Publish(t.Context(), text); err != nil {
		t.Fatal(err)
	}
	fresh := old
	fresh.Issued, fresh.Name = c.Clock.Now(), "fresh"
	k2, _ := identity.Generate(nil)
	fresh.Member = k2.Public()
	text2, err := fresh.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Node().Publish(t.Context(), text2); err != nil {
		t.Fatal(err)
	}
	eventually(t, spreadBound, "the fresh introduction applies", func() bool { _, ok := knows(globex, k2.Public()); return ok })
	if _, ok := knows(globex, removed.Public()); ok {
		t.Fatal("an introduction two hours old was applied")
	}
}

// TestRevocationAt32Members: with 32 members, every member refuses a revoked
// key within the bound, while the publishing node is still pushing.
func TestRevocationAt32Members(t *testing.T) {
	if testing.Short() {
		t.Skip("32 nodes")
	}
	c := NewCluster(t, 32, Options{})
	victim := c.Members[5]
	key, err := identity.LoadKeyFile(victim.Home + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	_, text, err := membership.SignRevocation(key, c.Clock.Now(), "")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Members[0].Node().Publish(t.Context(), text)
		done <- err
	}()
	took := eventually(t, spreadBoundUnderLoad, "all 31 members refuse the key", func() bool {
		for _, m := range c.Members {
			if m != victim && m.Node().Admitted(victim.ID) {
				return false
			}
		}
		return true
	})
	t.Logf("refused by all 31 members after %v", took)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// spreadBoundUnderLoad is what tests with many in-process members allow under
// -race on a shared machine; docs/admission.md gives the bound and figures.
const spreadBoundUnderLoad = 10 * time.Second
