package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/localapi"
)

type fixture struct {
	hub  *hub
	keys []identity.PrivateKey
	mgrs []*Manager
	dirs []string
}

func newFixture(t *testing.T, n int, mode fsm.Mode, configure func(*ManagerConfig)) (*fixture, fsm.Group) {
	t.Helper()
	f := &fixture{hub: newHub()}
	var pubs []identity.PublicKey
	for i := range n {
		k := testKey(t, byte(i+1))
		f.keys = append(f.keys, k)
		pubs = append(pubs, k.Public())
	}
	g, err := fsm.NewGroup("reviews", mode, 0, pubs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		dir := t.TempDir()
		f.dirs = append(f.dirs, dir)
		f.mgrs = append(f.mgrs, f.open(t, i, configure))
		if err := f.mgrs[i].Create(g); err != nil {
			t.Fatal(err)
		}
	}
	return f, g
}

func (f *fixture) open(t *testing.T, i int, configure func(*ManagerConfig)) *Manager {
	t.Helper()
	cfg := ManagerConfig{Dir: f.dirs[i], Self: f.keys[i], Network: nopNetworks,
		Engines: map[fsm.Mode]NewEngine{fsm.ModeRaft: f.hub.factory(), fsm.ModeBFT: f.hub.factory()}}
	if configure != nil {
		configure(&cfg)
	}
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestManagerKVAndTypedErrors(t *testing.T) {
	f, _ := newFixture(t, 3, fsm.ModeRaft, nil)
	ctx := context.Background()
	a, err := f.mgrs[0].Put(ctx, "reviews", "pr/42", []byte("alice"), nil)
	if err != nil || a.Result.Version != 1 {
		t.Fatalf("put: %+v, %v", a, err)
	}
	it, ok, err := f.mgrs[2].Get(ctx, "reviews", "pr/42")
	if err != nil || !ok || string(it.Value) != "alice" || it.Version != 1 {
		t.Fatalf("get on another member: %+v %v %v", it, ok, err)
	}
	one := uint64(1)
	if _, err := f.mgrs[1].Put(ctx, "reviews", "pr/42", []byte("bob"), &one); err != nil {
		t.Fatalf("cas at the right version: %v", err)
	}
	_, err = f.mgrs[2].Put(ctx, "reviews", "pr/42", []byte("carol"), &one)
	var rej *RejectedError
	if !errors.Is(err, ErrCASMismatch) || !errors.As(err, &rej) || rej.Version != 2 {
		t.Fatalf("stale cas: %v", err)
	}
	if refusal.StageOf(err) != refusal.StageConsensus || localapi.ExitCode(err) != localapi.ExitError {
		t.Fatalf("cas mismatch: stage %q exit %d", refusal.StageOf(err), localapi.ExitCode(err))
	}

	_, err = f.mgrs[0].Put(ctx, "nope", "k", nil, nil)
	if !errors.Is(err, ErrUnknownGroup) || localapi.ExitCode(err) != localapi.ExitUsage {
		t.Fatalf("unknown group: %v (exit %d)", err, localapi.ExitCode(err))
	}

	f.hub.mu.Lock()
	f.hub.down = true
	f.hub.mu.Unlock()
	_, err = f.mgrs[0].Put(ctx, "reviews", "k", []byte("v"), nil)
	if !errors.Is(err, ErrNoQuorum) || localapi.ExitCode(err) != localapi.ExitUnreachable {
		t.Fatalf("no quorum: %v (exit %d)", err, localapi.ExitCode(err))
	}
	f.hub.mu.Lock()
	f.hub.down = false
	f.hub.mu.Unlock()

	_, err = f.mgrs[0].Put(ctx, "reviews", strings.Repeat("k", fsm.MaxKeyLen+1), nil, nil)
	if localapi.ExitCode(err) != localapi.ExitUsage || !strings.Contains(err.Error(), "key") {
		t.Fatalf("oversized key: %v", err)
	}
	_, err = f.mgrs[0].OpenMotion(ctx, "reviews", "bad name!", 2, 0, "")
	if localapi.ExitCode(err) != localapi.ExitUsage {
		t.Fatalf("bad motion name: %v", err)
	}
	keys, cut, err := f.mgrs[1].List(ctx, "reviews", "pr/", 0)
	if err != nil || len(keys) != 1 || keys[0] != "pr/42" || cut {
		t.Fatalf("list: %v %v %v", keys, cut, err)
	}
	// An answer cut at its limit says so; one that just fits does not.
	for _, k := range []string{"pr/43", "pr/44"} {
		if _, err := f.mgrs[0].Put(ctx, "reviews", k, []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if keys, cut, err := f.mgrs[1].List(ctx, "reviews", "pr/", 2); err != nil || len(keys) != 2 || !cut {
		t.Fatalf("list cut at 2 of 3: %v %v %v", keys, cut, err)
	}
	if keys, cut, err := f.mgrs[1].List(ctx, "reviews", "pr/", 3); err != nil || len(keys) != 3 || cut {
		t.Fatalf("list of 3 at limit 3: %v %v %v", keys, cut, err)
	}
}

func TestManagerTimeoutIsTyped(t *testing.T) {
	f, _ := newFixture(t, 1, fsm.ModeRaft, nil)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := f.mgrs[0].Put(ctx, "reviews", "k", []byte("v"), nil)
	if !errors.Is(err, ErrTimeout) || localapi.ExitCode(err) != localapi.ExitUnreachable {
		t.Fatalf("timeout: %v (exit %d)", err, localapi.ExitCode(err))
	}
}

func TestManagerMotionAndBFTRecord(t *testing.T) {
	f, g := newFixture(t, 4, fsm.ModeBFT, nil)
	ctx := context.Background()
	a, err := f.mgrs[0].OpenMotion(ctx, "reviews", "merge-pr-42", 3, time.Hour, "merge the reviewed PR")
	if err != nil || a.Result.Outcome != fsm.OutcomeOpen {
		t.Fatalf("open: %+v %v", a, err)
	}
	for i := range 3 {
		if a, err = f.mgrs[i].Vote(ctx, "reviews", "merge-pr-42", true); err != nil {
			t.Fatalf("vote %d: %v", i, err)
		}
	}
	if a.Result.Outcome != fsm.OutcomePassed {
		t.Fatalf("after 3 yes of quorum 3: %+v", a.Result)
	}
	_, err = f.mgrs[3].Vote(ctx, "reviews", "merge-pr-42", false)
	if refusal.StageOf(err) != refusal.StageConsensus || !strings.Contains(err.Error(), "motion-closed") {
		t.Fatalf("vote on a passed motion: %v", err)
	}
	mo, err := f.mgrs[3].Motion(ctx, "reviews", "merge-pr-42")
	if err != nil || mo.Outcome != fsm.OutcomePassed || len(mo.Yes) != 3 {
		t.Fatalf("show: %+v %v", mo, err)
	}
	ms, err := f.mgrs[2].Motions(ctx, "reviews")
	if err != nil || len(ms) != 1 {
		t.Fatalf("ls: %v %v", ms, err)
	}

	// A BFT group adds a member by motion, like a Raft group.
	if add, err := f.mgrs[0].ChangeMember(ctx, "reviews", testKey(t, 9).Public(), true, ""); err != nil || add.Result.Outcome != fsm.OutcomeOpen || !strings.HasPrefix(add.Result.Motion, "#") {
		t.Fatalf("add to a bft group: %+v %v", add, err)
	}
	r, err := f.mgrs[1].Record(ctx, "reviews", a.Index)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	parsed, err := fsm.ParseRecord(b)
	if err != nil || fsm.Verify(parsed) != nil || parsed.Group.ID != g.ID() {
		t.Fatalf("record does not verify: %v / %v", err, fsm.Verify(parsed))
	}
	if _, err := f.mgrs[1].Record(ctx, "reviews", 999); localapi.ExitCode(err) != localapi.ExitUsage {
		t.Fatalf("record of an unknown index: %v", err)
	}
}

func TestManagerSequenceSurvivesRestart(t *testing.T) {
	f, _ := newFixture(t, 1, fsm.ModeRaft, nil)
	ctx := context.Background()
	if _, err := f.mgrs[0].Put(ctx, "reviews", "a", []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	f.mgrs[0].Close()
	// The reopened manager must not reuse a spent number: the hub replays
	// its log, so a reused one would be refused as a replay (and retried).
	m := f.open(t, 0, nil)
	m.Start(nil)
	a, err := m.Put(ctx, "reviews", "a", []byte("2"), nil)
	if err != nil || a.Result.Version != 2 {
		t.Fatalf("put after restart: %+v %v", a, err)
	}
	q, err := fsm.DecodeRequest(a.Entry.Request)
	if err != nil || q.Seq <= seqBlock {
		t.Fatalf("seq after restart = %d, want above the first reserved block %d (%v)", q.Seq, seqBlock, err)
	}
}

func TestManagerConcurrentProposersRetryReplays(t *testing.T) {
	f, _ := newFixture(t, 3, fsm.ModeRaft, nil)
	// Sign two requests, then propose the later one first: the earlier one
	// is then refused as a replay by the machine, and the manager must sign
	// it again rather than report a refusal.
	gr, _ := f.mgrs[0].lookup("reviews")
	id := gr.current().ID()
	first, _ := gr.sign(f.keys[0], id, fsm.Put("x", []byte("1")))
	second, _ := gr.sign(f.keys[0], id, fsm.Put("y", []byte("1")))
	if a, _ := gr.eng.Propose(context.Background(), second); !a.Result.OK() {
		t.Fatal(a.Result.Err())
	}
	if a, _ := gr.eng.Propose(context.Background(), first); a.Result.Code != fsm.CodeReplay {
		t.Fatalf("reordered request: %q, want replay (the premise of the retry)", a.Result.Code)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			_, err := f.mgrs[i%3].Put(context.Background(), "reviews", "k", []byte{byte(i)}, nil)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestManagerRefusesChangedDefinition(t *testing.T) {
	f, g := newFixture(t, 3, fsm.ModeRaft, nil)
	f.mgrs[0].Close()
	// The same name with another member list on restart: the engine's state
	// belongs to the first definition, so the group does not start.
	other, _ := fsm.NewGroup(g.Name, g.Mode, 0, append(g.Members[:2:2], testKey(t, 9).Public()))
	if !other.IsMember(f.keys[0].Public()) {
		other, _ = fsm.NewGroup(g.Name, g.Mode, 0, []identity.PublicKey{f.keys[0].Public(), testKey(t, 9).Public()})
	}
	os.Remove(filepath.Join(f.dirs[0], groupsFile))
	m := f.open(t, 0, nil)
	m.Start([]fsm.Group{other})
	infos := m.Groups()
	if len(infos) != 1 || !strings.Contains(infos[0].Error, "created with another definition") {
		t.Fatalf("groups: %+v", infos)
	}
	_, err := m.Put(context.Background(), "reviews", "k", nil, nil)
	if !errors.Is(err, ErrUnknownGroup) || !strings.Contains(err.Error(), "another definition") {
		t.Fatalf("put on a group that did not start: %v", err)
	}
}

func TestManagerCreateValidates(t *testing.T) {
	f, g := newFixture(t, 2, fsm.ModeRaft, nil)
	m := f.mgrs[0]
	if err := m.Create(g); localapi.ExitCode(err) != localapi.ExitUsage {
		t.Fatalf("create twice: %v", err)
	}
	notMe, _ := fsm.NewGroup("other", fsm.ModeRaft, 0, []identity.PublicKey{testKey(t, 7).Public()})
	if err := m.Create(notMe); localapi.ExitCode(err) != localapi.ExitUsage || !strings.Contains(err.Error(), "self included") {
		t.Fatalf("create without self: %v", err)
	}
	noEngine := f.open(t, 1, func(c *ManagerConfig) { c.Dir = t.TempDir(); delete(c.Engines, fsm.ModeBFT) })
	bft, _ := fsm.NewGroup("x", fsm.ModeBFT, 0, []identity.PublicKey{f.keys[1].Public()})
	if err := noEngine.Create(bft); err == nil || !strings.Contains(err.Error(), "no bft engine") {
		t.Fatalf("create without an engine: %v", err)
	}
	// Created groups are persisted and come back on restart.
	m.Close()
	again := f.open(t, 0, nil)
	again.Start(nil)
	if infos := again.Groups(); len(infos) != 1 || infos[0].Source != SourceCLI || infos[0].Error != "" {
		t.Fatalf("after restart: %+v", infos)
	}
}

func TestManagerOutboundCheckRefusesBeforeSigning(t *testing.T) {
	blocked := refusal.New(refusal.StageSanitize, "blocked")
	f, _ := newFixture(t, 1, fsm.ModeRaft, func(c *ManagerConfig) {
		c.Outbound = func(_ context.Context, _ fsm.Group, op fsm.Op) error {
			if strings.Contains(string(op.Value), "AKIA") {
				return blocked
			}
			return nil
		}
	})
	_, err := f.mgrs[0].Put(context.Background(), "reviews", "k", []byte("AKIAIOSFODNN7EXAMPLE"), nil)
	if !errors.Is(err, blocked) {
		t.Fatalf("err = %v", err)
	}
	f.hub.mu.Lock()
	n := len(f.hub.log)
	f.hub.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d entries reached the group", n)
	}
}

func TestManagerMembershipChangeIsAMotion(t *testing.T) {
	var mu sync.Mutex
	var applied []Applied
	f, _ := newFixture(t, 3, fsm.ModeRaft, func(c *ManagerConfig) {
		c.OnApply = func(_ fsm.Group, a Applied) { mu.Lock(); applied = append(applied, a); mu.Unlock() }
	})
	ctx := context.Background()
	gone := f.keys[2].Public()
	a, err := f.mgrs[0].ChangeMember(ctx, "reviews", gone, false, "left the org")
	if err != nil || a.Result.Motion == "" {
		t.Fatalf("remove: %+v %v", a, err)
	}
	if _, err := f.mgrs[1].Vote(ctx, "reviews", a.Result.Motion, true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.mgrs[0].Vote(ctx, "reviews", a.Result.Motion, true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		gr, _ := f.mgrs[0].lookup("reviews")
		if gr.current().Epoch == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the manager did not pick up the new epoch")
		}
		time.Sleep(5 * time.Millisecond) // polling the watcher with a deadline
	}
	_, err = f.mgrs[2].Put(ctx, "reviews", "k", []byte("v"), nil)
	if !errors.Is(err, ErrNotMember) || localapi.ExitCode(err) != localapi.ExitDenied {
		t.Fatalf("removed member proposes: %v (exit %d)", err, localapi.ExitCode(err))
	}
	// The request signed for the old epoch is retried under the new one.
	if _, err := f.mgrs[1].Put(ctx, "reviews", "k", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(applied) == 0 {
		t.Fatal("OnApply saw nothing")
	}
}

// A request of a member that is removed while it waits for its commit is
// refused as not-a-member when the removal applies, not at its timeout: the
// removed member no longer sees the group's commits.
func TestManagerRemovedMemberRequestInFlightIsRefused(t *testing.T) {
	f, _ := newFixture(t, 3, fsm.ModeRaft, func(c *ManagerConfig) { c.Timeout = time.Minute })
	ctx := context.Background()
	gone := f.keys[2].Public()
	stalling := make(chan struct{}, 1)
	f.hub.mu.Lock()
	f.hub.stalled = map[identity.PublicKey]chan<- struct{}{gone: stalling}
	f.hub.mu.Unlock()
	res := make(chan error, 1)
	go func() {
		_, err := f.mgrs[2].Put(ctx, "reviews", "k", []byte("v"), nil)
		res <- err
	}()
	<-stalling
	a, err := f.mgrs[0].ChangeMember(ctx, "reviews", gone, false, "left the org")
	if err != nil {
		t.Fatalf("remove: %v", err)
	}
	for _, m := range f.mgrs[:2] {
		if _, err := m.Vote(ctx, "reviews", a.Result.Motion, true); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-res:
		if !errors.Is(err, ErrNotMember) || localapi.ExitCode(err) != localapi.ExitDenied {
			t.Fatalf("request in flight at the removal: %v (exit %d)", err, localapi.ExitCode(err))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the removed member's request in flight still waits for its commit")
	}
}

// A BFT group adds a member by motion; the new node joins from the epoch-0
// definition and takes part once it has applied the motion.
func TestManagerJoinsABFTGroup(t *testing.T) {
	f, g := newFixture(t, 4, fsm.ModeBFT, nil)
	ctx := context.Background()
	newcomer := testKey(t, 9)
	add, err := f.mgrs[0].ChangeMember(ctx, "reviews", newcomer.Public(), true, "welcome")
	if err != nil {
		t.Fatalf("add to a bft group: %v", err)
	}
	for i := range 3 {
		if add, err = f.mgrs[i].Vote(ctx, "reviews", add.Result.Motion, true); err != nil {
			t.Fatalf("vote %d: %v", i, err)
		}
	}
	if add.Result.Outcome != fsm.OutcomePassed {
		t.Fatalf("add motion: %+v", add.Result)
	}
	f.keys = append(f.keys, newcomer)
	f.dirs = append(f.dirs, t.TempDir())
	j := f.open(t, 4, nil)
	if err := j.Join(g); err != nil {
		t.Fatalf("join a bft group that added this node: %v", err)
	}
	if a, err := j.Put(ctx, "reviews", "from-the-newcomer", []byte("v"), nil); err != nil || !a.Result.OK() {
		t.Fatalf("put by the new member: %+v %v", a, err)
	}
	if err := j.Join(g); localapi.ExitCode(err) != localapi.ExitUsage {
		t.Fatalf("join twice: %v", err)
	}
}

// A member whose own yes vote passes its removal succeeded: the vote
// counted and decided the motion. It gets the decision, marked Removed,
// not a not-a-member refusal (exit 3), even when the engine's wait for its
// result loses to the cancellation the removal causes.
func TestManagerOwnVoteThatPassesOwnRemovalSucceeds(t *testing.T) {
	for _, late := range []bool{false, true} {
		t.Run(fmt.Sprintf("late=%v", late), func(t *testing.T) {
			f, _ := newFixture(t, 3, fsm.ModeRaft, func(c *ManagerConfig) { c.Timeout = time.Minute })
			ctx := context.Background()
			gone := f.keys[2].Public()
			a, err := f.mgrs[0].ChangeMember(ctx, "reviews", gone, false, "leaves")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.mgrs[0].Vote(ctx, "reviews", a.Result.Motion, true); err != nil {
				t.Fatal(err)
			}
			released := make(chan string, 2)
			if late {
				f.hub.mu.Lock()
				f.hub.late = map[identity.PublicKey]bool{gone: true}
				f.hub.held = map[identity.PublicKey]bool{gone: true}
				f.hub.mu.Unlock()
				// The engine shows the new definition before it hands
				// over the entry: a refresh (as another request's would)
				// cancels the vote, which must wait for the entry.
				gr, _ := f.mgrs[2].lookup("reviews")
				voteIndex := f.hub.lastIndex() + 1
				go func() {
					defer close(released)
					deadline := time.Now().Add(10 * time.Second)
					for f.hub.lastIndex() < voteIndex {
						if time.Now().After(deadline) {
							released <- "the vote was not ordered"
							return
						}
						time.Sleep(time.Millisecond) // polling the hub with a deadline
					}
					gr.refresh()
					for {
						gr.deliveredMu.Lock()
						waiting := gr.deliveredWake != nil
						gr.deliveredMu.Unlock()
						if waiting {
							break
						}
						if time.Now().After(deadline) {
							released <- "the vote did not wait for its entry"
							break
						}
						time.Sleep(time.Millisecond) // polling for the waiter with a deadline
					}
					f.hub.release(gone)
				}()
			}
			v, err := f.mgrs[2].Vote(ctx, "reviews", a.Result.Motion, true)
			if late {
				for msg := range released {
					t.Error(msg)
				}
			}
			if err != nil || localapi.ExitCode(err) != localapi.ExitOK {
				t.Fatalf("the vote that passed this member's removal: %v (exit %d)", err, localapi.ExitCode(err))
			}
			if !v.Removed || v.Result.Motion != a.Result.Motion || v.Result.Outcome != fsm.OutcomePassed {
				t.Fatalf("decision %+v: want the passed removal, marked Removed", v)
			}
			// Its next request is refused: it is no longer a member.
			if _, err := f.mgrs[2].Put(ctx, "reviews", "k", []byte("v"), nil); !errors.Is(err, ErrNotMember) {
				t.Fatalf("removed member proposes: %v", err)
			}
			// Another member's vote that passes a removal is not marked.
			b, err := f.mgrs[0].ChangeMember(ctx, "reviews", f.keys[1].Public(), false, "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.mgrs[1].Vote(ctx, "reviews", b.Result.Motion, true); err != nil {
				t.Fatal(err)
			}
			if v, err := f.mgrs[0].Vote(ctx, "reviews", b.Result.Motion, true); err != nil || v.Removed || v.Result.Outcome != fsm.OutcomePassed {
				t.Fatalf("vote passing another member's removal: %+v %v", v, err)
			}
		})
	}
}

// A group created with a nonce keeps it across a restart (groups.json), and
// its ID is the nonce's: a request signed for the same definition without
// the nonce is refused as wrong-group.
func TestManagerGroupNonceSurvivesRestart(t *testing.T) {
	f := &fixture{hub: newHub(), keys: []identity.PrivateKey{testKey(t, 1)}, dirs: []string{t.TempDir()}}
	g, err := fsm.NewGroup("reviews", fsm.ModeRaft, 0, []identity.PublicKey{f.keys[0].Public()})
	if err != nil {
		t.Fatal(err)
	}
	plain := g
	if g.Nonce, err = fsm.NewNonce(); err != nil {
		t.Fatal(err)
	}
	m := f.open(t, 0, nil)
	if err := m.Create(g); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Put(ctx, "reviews", "a", []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m = f.open(t, 0, nil)
	m.Start(nil)
	gs := m.Groups()
	if len(gs) != 1 || gs[0].Status.Group.ID() != g.ID() || gs[0].Status.Group.Nonce != g.Nonce {
		t.Fatalf("after restart: %+v", gs)
	}
	q, err := fsm.SignRequest(f.keys[0], plain.ID(), 1000, fsm.Put("a", []byte("old")))
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.hub.members[f.keys[0].Public()].Propose(ctx, q.Encode())
	if err != nil || a.Result.Code != fsm.CodeWrongGroup {
		t.Fatalf("a request for the group without the nonce: %+v %v", a.Result, err)
	}
	// Created again with another nonce on the same state: refused, naming it.
	other := g
	other.Nonce, _ = fsm.NewNonce()
	m.Close()
	m = f.open(t, 0, nil)
	if err := m.Create(other); err == nil || !strings.Contains(err.Error(), "nonce") {
		t.Fatalf("create with another nonce over the old state: %v", err)
	}
}
