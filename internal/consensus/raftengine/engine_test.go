package raftengine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/consensus/raftengine/rafttest"
	"github.com/treaty-dev/treaty/internal/identity"
)

// TestElectCommitSurviveRestart: n members elect a leader, commit from the
// leader and from followers (forwarded), survive the leader's crash, and
// the crashed member restarts with its state and catches up.
func TestElectCommitSurviveRestart(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			tc := newCluster(t, n)
			lead := tc.leader(20 * time.Second)
			var last consensus.Applied
			for i := range n {
				last = tc.propose(i, fsm.Put(fmt.Sprintf("k%d", i), []byte("v1")))
			}
			tc.converge(last.Index, 20*time.Second)

			tc.stop(lead)
			next := tc.leader(20 * time.Second)
			if next == lead {
				t.Fatalf("stopped member %d still leads", lead)
			}
			for i := range n {
				if i != lead {
					last = tc.propose(i, fsm.Put(fmt.Sprintf("k%d", i), []byte("v2")))
				}
			}
			tc.start(lead)
			tc.converge(last.Index, 20*time.Second)
			for i := range n {
				want := "v2"
				if i == lead {
					want = "v1"
				}
				it, ok := tc.get(lead, fmt.Sprintf("k%d", i))
				if !ok || string(it.Value) != want {
					t.Fatalf("restarted member reads k%d = %q, %v; want %q", i, it.Value, ok, want)
				}
			}
			// OnApply saw each member's indexes in increasing order.
			for i, l := range tc.apply {
				l.mu.Lock()
				sorted := slices.IsSorted(l.idx) && len(slices.Compact(slices.Clone(l.idx))) == len(l.idx)
				l.mu.Unlock()
				if !sorted {
					t.Fatalf("member %d: OnApply out of order or repeated: %v", i, l.idx)
				}
			}
		})
	}
}

// TestRecordVerifies: a committed entry's record is the same on every member,
// verifies offline, says no certificate exists, and an unknown index is
// ErrNoRecord.
func TestRecordVerifies(t *testing.T) {
	tc := newCluster(t, 3)
	tc.leader(20 * time.Second)
	a := tc.propose(1, fsm.Put("pr/42", []byte("approved")))
	tc.converge(a.Index, 20*time.Second)
	ctx := context.Background()
	var first []byte
	for i := range 3 {
		r, err := tc.engine(i).Record(ctx, a.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := fsm.Verify(r); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		if r.NoCertificate != fsm.NoCertificateRaft || len(r.Certificate) != 0 {
			t.Fatalf("raft record claims a certificate: %+v", r)
		}
		b := fmt.Sprintf("%+v", r)
		if first == nil {
			first = []byte(b)
		} else if string(first) != b {
			t.Fatalf("member %d's record differs:\n%s\n%s", i, first, b)
		}
	}
	if _, err := tc.engine(0).Record(ctx, a.Index+1000); !errors.Is(err, consensus.ErrNoRecord) {
		t.Fatalf("unknown index: %v, want ErrNoRecord", err)
	}
}

// TestRefusedRequestIsAgreed: a CAS mismatch is a result, not an error, and a
// replayed request is refused on every member.
func TestRefusedRequestIsAgreed(t *testing.T) {
	tc := newCluster(t, 3)
	tc.leader(20 * time.Second)
	tc.propose(0, fsm.Put("k", []byte("a")))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := tc.engine(2).ProposeFunc(ctx, tc.sign(2, fsm.CAS("k", []byte("b"), 7)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Result.Code != fsm.CodeCASMismatch || a.Result.Version != 1 {
		t.Fatalf("CAS on version 7 of a version-1 key: %+v", a.Result)
	}
	req := a.Entry.Request
	b, err := tc.engine(1).Propose(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if b.Result.Code != fsm.CodeReplay {
		t.Fatalf("replayed request: %+v, want %s", b.Result, fsm.CodeReplay)
	}
}

// TestNoQuorum: with a majority gone, Propose fails with ErrNoQuorum by its
// deadline, and after healing the group makes progress.
func TestNoQuorum(t *testing.T) {
	tc := newCluster(t, 3)
	lead := tc.leader(20 * time.Second)
	others := []int{(lead + 1) % 3, (lead + 2) % 3}
	tc.c.Faults.Partition(tc.c.Pubs()[lead:lead+1], []identity.PublicKey{tc.c.Pubs()[others[0]], tc.c.Pubs()[others[1]]})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := tc.engine(lead).ProposeFunc(ctx, tc.sign(lead, fsm.Put("k", []byte("x"))))
	if !errors.Is(err, consensus.ErrNoQuorum) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("propose on an isolated leader: %v, want no quorum or deadline", err)
	}
	if err := tc.engine(lead).Read(ctx, func(*fsm.Machine) {}); err == nil {
		t.Fatal("read on an isolated member succeeded")
	}
	tc.c.Faults.Heal()
	a := tc.propose(lead, fsm.Put("after", []byte("heal")))
	tc.converge(a.Index, 20*time.Second)
}

// TestConfigErrors: New names the wrong field.
func TestConfigErrors(t *testing.T) {
	c := rafttest.New(t, 1)
	g := c.Group("g", fsm.ModeRaft)
	good := consensus.EngineConfig{Group: g, Self: c.Keys[0], Dir: t.TempDir(), Net: c.Network(0, g, nil)}
	bft := c.Group("g", fsm.ModeBFT)
	later := g
	later.Epoch = 3
	for _, tt := range []struct {
		name  string
		edit  func(*consensus.EngineConfig)
		field string
	}{
		{"no group", func(c *consensus.EngineConfig) { c.Group = fsm.Group{} }, "Group"},
		{"bft group", func(c *consensus.EngineConfig) { c.Group = bft }, "Group"},
		{"no self", func(c *consensus.EngineConfig) { c.Self = identity.PrivateKey{} }, "Self"},
		{"no dir", func(c *consensus.EngineConfig) { c.Dir = "" }, "Dir"},
		{"no net", func(c *consensus.EngineConfig) { c.Net = nil }, "Net"},
		{"fresh at epoch 3", func(c *consensus.EngineConfig) { c.Group = later }, "epoch-0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			cfg.Dir = t.TempDir()
			tt.edit(&cfg)
			e, err := New(context.Background(), cfg)
			if err == nil {
				e.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q does not name %s", err, tt.field)
			}
		})
	}
}

// TestRestartRefusesAnotherGenesis: a restart with an epoch-0 definition
// other than the stored genesis is refused with the difference named.
func TestRestartRefusesAnotherGenesis(t *testing.T) {
	c := rafttest.New(t, 2)
	g1, _ := fsm.NewGroup("g", fsm.ModeRaft, 0, c.Pubs()[:1])
	g2, _ := fsm.NewGroup("g", fsm.ModeRaft, 0, c.Pubs())
	dir := t.TempDir()
	e, err := New(context.Background(), consensus.EngineConfig{Group: g1, Self: c.Keys[0], Dir: dir, Net: c.Network(0, g1, nil), Log: c.Log})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	_, err = New(context.Background(), consensus.EngineConfig{Group: g2, Self: c.Keys[0], Dir: dir, Net: c.Network(0, g2, nil), Log: c.Log})
	var mm *fsm.MismatchError
	if !errors.As(err, &mm) || mm.Field != "member" {
		t.Fatalf("restart with another member list: %v", err)
	}
}

// TestSingleMember: a group of one elects itself and commits.
func TestSingleMember(t *testing.T) {
	tc := newClusterOf(t, 1, 1, testTiming())
	tc.leader(20 * time.Second)
	a := tc.propose(0, fsm.Put("solo", []byte("yes")))
	if it, ok := tc.get(0, "solo"); !ok || it.Index != a.Index {
		t.Fatalf("solo = %+v %v", it, ok)
	}
	e := tc.engine(0)
	tc.stop(0)
	ctx := context.Background()
	if _, err := e.Propose(ctx, a.Entry.Request); !errors.Is(err, consensus.ErrClosed) {
		t.Errorf("propose after close: %v", err)
	}
	if err := e.Read(ctx, func(*fsm.Machine) {}); !errors.Is(err, consensus.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
	if _, err := e.Record(ctx, a.Index); !errors.Is(err, consensus.ErrClosed) {
		t.Errorf("record after close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// TestLeaderStampsTime: the leader stamps entries from EngineConfig.Now,
// and a clock that steps back does not move the stamps back.
func TestLeaderStampsTime(t *testing.T) {
	c := rafttest.New(t, 1)
	g := c.Group("g", fsm.ModeRaft)
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e, err := newEngine(context.Background(), consensus.EngineConfig{Group: g, Self: c.Keys[0], Dir: t.TempDir(),
		Net: c.Network(0, g, nil), Log: c.Log, Now: clock}, testTiming())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seq := uint64(0)
	put := func() consensus.Applied {
		seq++
		q, err := fsm.SignRequest(c.Keys[0], g.ID(), seq, fsm.Put("k", []byte("v")))
		if err != nil {
			t.Fatal(err)
		}
		a, err := e.Propose(ctx, q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := put(); a.Entry.Time != now.UnixNano() || a.Result.Time != now.UnixNano() {
		t.Fatalf("stamp %d, agreed %d, want %d", a.Entry.Time, a.Result.Time, now.UnixNano())
	}
	mu.Lock()
	want := now.UnixNano()
	now = now.Add(-time.Hour)
	mu.Unlock()
	if a := put(); a.Entry.Time != want {
		t.Fatalf("stamp after the clock stepped back: %d, want %d", a.Entry.Time, want)
	}
}

// TestStatus: every member names the same leader and term, reports itself
// healthy, its last applied index, and the leader as reachable; a member
// cut off stops reporting the leader as reachable.
func TestStatus(t *testing.T) {
	tc := newCluster(t, 3)
	lead := tc.leader(20 * time.Second)
	a := tc.propose(lead, fsm.Put("k", []byte("v")))
	tc.converge(a.Index, 20*time.Second)
	leaderKey := tc.c.Keys[lead].Public()
	term := tc.engine(lead).Status().Term
	for i := range 3 {
		s := tc.engine(i).Status()
		if s.Leader != leaderKey || s.Term != term || !s.Healthy || s.LastIndex < a.Index || len(s.Members) != 3 {
			t.Fatalf("member %d: %+v", i, s)
		}
		for _, m := range s.Members {
			if m.Key == leaderKey && !m.Reachable {
				t.Fatalf("member %d sees the leader unreachable: %+v", i, m)
			}
		}
	}
	f := (lead + 1) % 3
	tc.c.Faults.Partition(tc.c.Pubs()[f:f+1], append(slices.Clone(tc.c.Pubs()[:f]), tc.c.Pubs()[f+1:]...))
	deadline := time.Now().Add(20 * time.Second)
	for tc.engine(f).Status().Healthy {
		if time.Now().After(deadline) {
			t.Fatal("a cut-off member still reports itself healthy")
		}
		pollPause()
	}
}
