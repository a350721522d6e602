package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/localapi"
)

// createGroup creates the group on each of members through its local API.
func createGroup(t *testing.T, name, mode string, members ...*Member) {
	t.Helper()
	var names []string
	for _, m := range members {
		names = append(names, m.Name)
	}
	for _, m := range members {
		if err := m.Client().GroupCreate(context.Background(), localapi.GroupCreateRequest{Name: name, Mode: mode, Members: names}); err != nil {
			t.Fatalf("%s: group create %s: %v", m.Name, name, err)
		}
	}
}

// commit retries f while the group has no quorum yet (a fresh group elects
// its leader or forms its first view), up to a deadline.
func commit(t *testing.T, f func(ctx context.Context) (localapi.Decision, error)) localapi.Decision {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		d, err := f(ctx)
		cancel()
		if err == nil {
			return d
		}
		if localapi.ExitCode(err) != localapi.ExitUnreachable || time.Now().After(deadline) {
			t.Fatalf("commit: %v (exit %d)", err, localapi.ExitCode(err))
		}
	}
}

func exitOf(err error) int { return localapi.ExitCode(err) }

// The group tests run one at a time, before the package's parallel tests:
// each runs three or four nodes whose engines keep the CPU busy, and under
// -race on a small machine that starves the other tests' handshakes.

func TestGroupsRaftKV(t *testing.T) {
	c := NewCluster(t, 3, Options{Names: []string{"acme", "acme-eu", "acme-us"}})
	a, b, d := c.Members[0], c.Members[1], c.Members[2]
	createGroup(t, "team", "raft", a, b, d)
	ctx := context.Background()

	put := commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return a.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "pr/42/reviewer", Value: "alice"})
	})
	if put.Version != 1 || put.Index == 0 {
		t.Fatalf("put: %+v", put)
	}
	it, err := d.Client().KVGet(ctx, "team", "pr/42/reviewer")
	if err != nil || it.Value != "alice" || it.Version != 1 {
		t.Fatalf("get on another member: %+v %v", it, err)
	}
	one := uint64(1)
	if _, err := b.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "pr/42/reviewer", Value: "bob", IfVersion: &one}); err != nil {
		t.Fatalf("cas at version 1: %v", err)
	}
	_, err = d.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "pr/42/reviewer", Value: "carol", IfVersion: &one})
	if localapi.StageOf(err) != localapi.StageConsensus || exitOf(err) != localapi.ExitError || !strings.Contains(err.Error(), "cas-mismatch") {
		t.Fatalf("stale cas: %v (exit %d)", err, exitOf(err))
	}
	keys, err := b.Client().KVList(ctx, "team", "pr/")
	if err != nil || len(keys) != 1 {
		t.Fatalf("ls: %v %v", keys, err)
	}
	_, err = a.Client().KVPut(ctx, localapi.KVPutRequest{Group: "nope", Key: "k", Value: "v"})
	if exitOf(err) != localapi.ExitUsage {
		t.Fatalf("unknown group: %v", err)
	}

	// A value the sanitizer blocks never leaves the node.
	_, err = a.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "creds", Value: "key=AKIA" + "QWERTYUIOPASDFGH"})
	if localapi.StageOf(err) != localapi.StageSanitize || exitOf(err) != localapi.ExitBlocked {
		t.Fatalf("secret value: %v", err)
	}

	gs, err := a.Client().Groups(ctx)
	if err != nil || len(gs) != 1 || gs[0].Mode != "raft" || gs[0].N != 3 || gs[0].Quorum != 2 || gs[0].F != 0 || len(gs[0].Members) != 3 {
		t.Fatalf("group ls: %+v %v", gs, err)
	}
	Eventually(t, 10*time.Second, func() error {
		gs, err := b.Client().Groups(ctx)
		if err != nil {
			return err
		}
		if gs[0].Leader == "" || !gs[0].Healthy {
			return fmt.Errorf("no healthy leader yet: %+v", gs[0])
		}
		return nil
	})

	// Every member audits every committed decision.
	for _, m := range c.Members {
		Eventually(t, 10*time.Second, func() error {
			n := 0
			for _, e := range m.Audit(t, audit.Filter{Kind: node.KindDecision}) {
				if e.Capability == "group:team" {
					n++
				}
			}
			if n < 3 {
				return fmt.Errorf("%s audited %d decisions, want at least 3", m.Name, n)
			}
			return nil
		})
	}

	// A raft record exports and verifies, and says it has no certificate.
	rec, err := b.Client().DecisionExport(ctx, "team", put.Index)
	if err != nil {
		t.Fatal(err)
	}
	r, err := fsm.ParseRecord(rec)
	if err != nil || fsm.Verify(r) != nil || r.NoCertificate == "" {
		t.Fatalf("raft record: %v / %v", err, fsm.Verify(r))
	}
}

func TestGroupsBFTMotionAndRecord(t *testing.T) {
	c := NewCluster(t, 4, Options{Names: []string{"acme", "globex", "initech", "umbrella"}})
	createGroup(t, "reviews", "bft", c.Members...)
	ctx := context.Background()
	acme := c.Members[0]
	open := commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return acme.Client().MotionOpen(ctx, localapi.MotionOpenRequest{Group: "reviews", Name: "merge-pr-42", Quorum: 3, Deadline: "1h", Text: "merge the reviewed PR 42"})
	})
	if open.Motion != "merge-pr-42" || open.Outcome != "open" {
		t.Fatalf("open: %+v", open)
	}
	var last localapi.Decision
	for _, m := range c.Members[:3] {
		last = commit(t, func(ctx context.Context) (localapi.Decision, error) {
			return m.Client().MotionVote(ctx, "reviews", "merge-pr-42", true)
		})
	}
	if last.Outcome != "passed" || len(last.Closed) != 1 {
		t.Fatalf("third yes: %+v", last)
	}
	mo, err := c.Members[3].Client().MotionShow(ctx, "reviews", "merge-pr-42")
	if err != nil || mo.Outcome != "passed" || len(mo.Yes) != 3 || mo.Quorum != 3 {
		t.Fatalf("show on the fourth member: %+v %v", mo, err)
	}
	_, err = c.Members[3].Client().MotionVote(ctx, "reviews", "merge-pr-42", false)
	if localapi.StageOf(err) != localapi.StageConsensus {
		t.Fatalf("vote on a passed motion: %v", err)
	}
	ms, err := c.Members[1].Client().MotionList(ctx, "reviews")
	if err != nil || len(ms) != 1 {
		t.Fatalf("motion ls: %v %v", ms, err)
	}
	gs, err := acme.Client().Groups(ctx)
	if err != nil || gs[0].Mode != "bft" || gs[0].F != 1 || gs[0].Quorum != 3 {
		t.Fatalf("group ls: %+v %v", gs, err)
	}

	// The record of the deciding vote verifies offline, and fails when any
	// byte of the request changes or a signer is not a member.
	var rec json.RawMessage
	Eventually(t, 15*time.Second, func() error {
		var err error
		rec, err = c.Members[2].Client().DecisionExport(ctx, "reviews", last.Index)
		return err
	})
	r, err := fsm.ParseRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsm.Verify(r); err != nil {
		t.Fatalf("record: %v", err)
	}
	if len(r.Certificate) < 3 || r.Result.Outcome != fsm.OutcomePassed {
		t.Fatalf("record: %d signatures, outcome %q", len(r.Certificate), r.Result.Outcome)
	}
	tampered := r
	tampered.Request = bytes.Clone(r.Request)
	tampered.Request[len(tampered.Request)-70] ^= 1
	if fsm.Verify(tampered) == nil {
		t.Fatal("a changed request byte verifies")
	}
	outsider := r
	outsider.Certificate = append([]fsm.Attestation{}, r.Certificate...)
	stranger, err := identity.FromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	outsider.Certificate[0] = fsm.Attestation{Signer: stranger.Public(), Sig: outsider.Certificate[0].Sig}
	if fsm.Verify(outsider) == nil {
		t.Fatal("a certificate with a non-member signer verifies")
	}
}

func TestGroupsDifferentDefinitionRefused(t *testing.T) {
	c := NewCluster(t, 3, Options{Names: []string{"acme", "globex", "initech"}})
	acme, globex, initech := c.Members[0], c.Members[1], c.Members[2]
	createGroup(t, "board", "raft", acme, globex) // acme's and globex's definition
	// initech's operator lists another member set for the same name.
	if err := initech.Client().GroupCreate(context.Background(), localapi.GroupCreateRequest{Name: "board", Mode: "raft", Members: []string{"initech", "acme"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := initech.Client().KVPut(ctx, localapi.KVPutRequest{Group: "board", Key: "k", Value: "v"})
	if exitOf(err) != localapi.ExitUnreachable {
		t.Fatalf("put in a group nobody agrees with: %v (exit %d)", err, exitOf(err))
	}
	Eventually(t, 15*time.Second, func() error {
		gs, err := initech.Client().Groups(context.Background())
		if err != nil {
			return err
		}
		for _, m := range gs[0].Members {
			if m.Name == "acme" && strings.Contains(m.Refused, "defines the group differently") {
				return nil
			}
		}
		return fmt.Errorf("group ls does not name the refusal: %+v", gs[0].Members)
	})
	// The two members that agree still commit.
	commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return acme.Client().KVPut(ctx, localapi.KVPutRequest{Group: "board", Key: "k", Value: "v"})
	})
	_ = globex
}

// TestGroupsRaftAddMemberByMotion: adding a member is a decision of the
// group; once it passes, the new member's node joins with the group's
// founding definition, catches up and proposes; a removed member cannot.
func TestGroupsRaftAddMemberByMotion(t *testing.T) {
	c := NewCluster(t, 4, Options{Names: []string{"acme", "acme-eu", "acme-us", "acme-ap"}})
	a, b, d, newcomer := c.Members[0], c.Members[1], c.Members[2], c.Members[3]
	createGroup(t, "team", "raft", a, b, d)
	ctx := context.Background()
	commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return a.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "before", Value: "1"})
	})
	add, err := a.Client().GroupMember(ctx, localapi.GroupMemberRequest{Group: "team", Peer: "acme-ap", Text: "the new office"})
	if err != nil || !strings.HasPrefix(add.Motion, "#") {
		t.Fatalf("group add: %+v %v", add, err)
	}
	for _, m := range []*Member{a, b} {
		if _, err := m.Client().MotionVote(ctx, "team", add.Motion, true); err != nil {
			t.Fatalf("%s votes: %v", m.Name, err)
		}
	}
	mo, err := d.Client().MotionShow(ctx, "team", add.Motion)
	if err != nil || mo.Outcome != "passed" || mo.Kind != "add-member" {
		t.Fatalf("membership motion: %+v %v", mo, err)
	}
	// A founding member cannot join.
	err = a.Client().GroupCreate(ctx, localapi.GroupCreateRequest{Name: "team", Mode: "raft", Members: []string{"acme", "acme-eu", "acme-us"}, Join: true})
	if exitOf(err) != localapi.ExitUsage {
		t.Fatalf("a founding member joins: %v", err)
	}
	if err := newcomer.Client().GroupCreate(ctx, localapi.GroupCreateRequest{Name: "team", Mode: "raft", Members: []string{"acme", "acme-eu", "acme-us"}, Join: true}); err != nil {
		t.Fatalf("join: %v", err)
	}
	Eventually(t, 30*time.Second, func() error {
		it, err := newcomer.Client().KVGet(ctx, "team", "before")
		if err != nil {
			return err
		}
		if it.Value != "1" {
			return fmt.Errorf("value %q", it.Value)
		}
		return nil
	})
	put := commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return newcomer.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "after", Value: "2"})
	})
	if it, err := b.Client().KVGet(ctx, "team", "after"); err != nil || it.Value != "2" || it.Index != put.Index {
		t.Fatalf("the newcomer's write on another member: %+v %v", it, err)
	}
	gs, err := newcomer.Client().Groups(ctx)
	if err != nil || gs[0].Epoch != 1 || gs[0].N != 4 || gs[0].Source != "join" {
		t.Fatalf("group ls on the newcomer: %+v %v", gs, err)
	}
}

// TestGroupsDeclaredInConfig: a group added to treaty.yaml, with its
// creation nonce, starts without a restart, and commits; the same name
// created again through the CLI is refused.
func TestGroupsDeclaredInConfig(t *testing.T) {
	c := NewCluster(t, 3, Options{})
	const nonce = "0123456789abcdef0123456789abcdef"
	for _, m := range c.Members {
		m.AppendConfig(t, "groups:\n  - name: ops\n    mode: raft\n    members: [n0, n1, n2]\n    nonce: "+nonce+"\n")
	}
	ctx := context.Background()
	gs, err := c.Members[1].Client().Groups(ctx)
	if err != nil || len(gs) != 1 || gs[0].Name != "ops" || gs[0].Source != "config" || gs[0].N != 3 || gs[0].Nonce != nonce {
		t.Fatalf("group ls: %+v %v", gs, err)
	}
	commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return c.Members[2].Client().KVPut(ctx, localapi.KVPutRequest{Group: "ops", Key: "deploy/lock", Value: "n2"})
	})
	err = c.Members[0].Client().GroupCreate(ctx, localapi.GroupCreateRequest{Name: "ops", Mode: "raft", Members: []string{"n0", "n1"}})
	if exitOf(err) != localapi.ExitUsage || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("create over a declared group: %v", err)
	}
}

// TestGroupsConcurrentProposersOneMember: many requests of one member at
// once all commit, in both modes: none is refused as a replay for being
// overtaken by another of the same member.
func TestGroupsConcurrentProposersOneMember(t *testing.T) {
	c := NewCluster(t, 4, Options{})
	createGroup(t, "r", "raft", c.Members[:3]...)
	createGroup(t, "b", "bft", c.Members...)
	for _, group := range []string{"r", "b"} {
		cl := c.Members[0].Client()
		commit(t, func(ctx context.Context) (localapi.Decision, error) {
			return cl.KVPut(ctx, localapi.KVPutRequest{Group: group, Key: "warm", Value: "up"})
		})
		const n = 24
		errs := make(chan error, n)
		for i := range n {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_, err := cl.KVPut(ctx, localapi.KVPutRequest{Group: group, Key: fmt.Sprintf("k%d", i), Value: "v"})
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("group %s: %v", group, err)
			}
		}
		keys, err := c.Members[1].Client().KVList(context.Background(), group, "k")
		if err != nil || len(keys) != n {
			t.Fatalf("group %s: %d keys, %v", group, len(keys), err)
		}
	}
}

// TestGroupsSurviveRestart: a created group comes back with its node, and a
// member that was down catches up on what the others committed meanwhile.
func TestGroupsSurviveRestart(t *testing.T) {
	c := NewCluster(t, 3, Options{})
	createGroup(t, "team", "raft", c.Members...)
	a, down := c.Members[0], c.Members[2]
	commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return down.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "one", Value: "1"})
	})
	down.Stop(t)
	commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return a.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "two", Value: "2"})
	})
	down.Start(t)
	Eventually(t, 30*time.Second, func() error {
		it, err := down.Client().KVGet(context.Background(), "team", "two")
		if err != nil {
			return err
		}
		if it.Value != "2" {
			return fmt.Errorf("value %q", it.Value)
		}
		return nil
	})
	// Its sequence numbers went on from where they were: its next request
	// is not refused as a replay.
	commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return down.Client().KVPut(ctx, localapi.KVPutRequest{Group: "team", Key: "three", Value: "3"})
	})
}

// TestGroupsBFTRemoveMember: removing a member of a BFT group is a motion of
// the group; once it passes the removed member's requests are refused (exit
// 3) and the others go on committing.
func TestGroupsBFTRemoveMember(t *testing.T) {
	c := NewCluster(t, 4, Options{Names: []string{"acme", "globex", "initech", "umbrella"}})
	createGroup(t, "reviews", "bft", c.Members...)
	acme, gone := c.Members[0], c.Members[3]
	ctx := context.Background()
	rm := commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return acme.Client().GroupMember(ctx, localapi.GroupMemberRequest{Group: "reviews", Peer: "umbrella", Remove: true, Text: "left the consortium"})
	})
	var last localapi.Decision
	for _, m := range c.Members[:3] {
		var err error
		if last, err = m.Client().MotionVote(ctx, "reviews", rm.Motion, true); err != nil {
			t.Fatalf("%s votes: %v", m.Name, err)
		}
	}
	if last.Outcome != "passed" {
		t.Fatalf("removal motion: %+v", last)
	}
	Eventually(t, 10*time.Second, func() error {
		_, err := gone.Client().KVPut(ctx, localapi.KVPutRequest{Group: "reviews", Key: "k", Value: "v"})
		if exitOf(err) != localapi.ExitDenied {
			return fmt.Errorf("removed member proposes: %v (exit %d)", err, exitOf(err))
		}
		return nil
	})
	commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return c.Members[1].Client().KVPut(ctx, localapi.KVPutRequest{Group: "reviews", Key: "k", Value: "v"})
	})
	gs, err := acme.Client().Groups(ctx)
	if err != nil || gs[0].Epoch != 1 || gs[0].N != 3 {
		t.Fatalf("group ls after the removal: %+v %v", gs, err)
	}
}
