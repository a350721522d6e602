package raftengine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/consensus/raftengine/rafttest"
	"github.com/treaty-dev/treaty/internal/identity"
)

// testTiming is shorter than the default so that elections in tests take
// one to two seconds, and long enough not to churn under -race on a loaded
// 2-core machine.
func testTiming() timing {
	return timing{heartbeat: 700 * time.Millisecond, election: 700 * time.Millisecond, lease: 350 * time.Millisecond, commit: 5 * time.Millisecond}
}

// tcluster is n Raft engines on a rafttest cluster.
type tcluster struct {
	t     testing.TB
	c     *rafttest.Cluster
	g     fsm.Group
	dirs  []string
	mu    sync.Mutex
	eng   []*Engine // nil while stopped
	seq   []uint64  // per member, under mu
	apply []*appliedLog
	tm    timing
	// hook, if set, adjusts member i's EngineConfig at every start.
	hook func(i int, cfg *consensus.EngineConfig)
}

// appliedLog records what OnApply saw, to check order.
type appliedLog struct {
	mu      sync.Mutex
	idx     []uint64
	adopted map[uint64]bool
}

func (l *appliedLog) add(a consensus.Applied) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.idx = append(l.idx, a.Index)
	if a.Adopted {
		if l.adopted == nil {
			l.adopted = map[uint64]bool{}
		}
		l.adopted[a.Index] = true
	}
}

func newCluster(t testing.TB, n int) *tcluster { return newClusterOf(t, n, n, testTiming()) }

// newClusterOf makes n transports and starts the first founders as the
// group's epoch-0 members; the others can be started later (as joiners).
func newClusterOf(t testing.TB, n, founders int, tm timing) *tcluster {
	t.Helper()
	return newClusterHooked(t, n, founders, tm, nil)
}

// newClusterHooked is newClusterOf with hook applied to every member's
// EngineConfig.
func newClusterHooked(t testing.TB, n, founders int, tm timing, hook func(i int, cfg *consensus.EngineConfig)) *tcluster {
	t.Helper()
	c := rafttest.New(t, n)
	g, err := fsm.NewGroup("reviews", fsm.ModeRaft, 0, c.Pubs()[:founders])
	if err != nil {
		t.Fatal(err)
	}
	tc := &tcluster{t: t, c: c, g: g, eng: make([]*Engine, n), seq: make([]uint64, n), tm: tm, hook: hook}
	for i := range n {
		tc.dirs = append(tc.dirs, filepath.Join(t.TempDir(), fmt.Sprint(i)))
		tc.apply = append(tc.apply, &appliedLog{})
	}
	for i := range founders {
		tc.start(i)
	}
	t.Cleanup(func() {
		for i := range n {
			tc.stop(i)
		}
	})
	return tc
}

func (tc *tcluster) start(i int) {
	tc.t.Helper()
	cfg := consensus.EngineConfig{
		Group:   tc.g,
		Self:    tc.c.Keys[i],
		Dir:     tc.dirs[i],
		Net:     tc.c.Network(i, tc.g, nil),
		Log:     tc.c.Log,
		OnApply: tc.apply[i].add,
	}
	if tc.hook != nil {
		tc.hook(i, &cfg)
	}
	e, err := newEngine(context.Background(), cfg, tc.tm)
	if err != nil {
		tc.t.Fatalf("start %d: %v", i, err)
	}
	tc.mu.Lock()
	tc.eng[i] = e
	tc.mu.Unlock()
}

func (tc *tcluster) stop(i int) {
	tc.mu.Lock()
	e := tc.eng[i]
	tc.eng[i] = nil
	tc.mu.Unlock()
	if e != nil {
		if err := e.Close(); err != nil {
			tc.t.Logf("close %d: %v", i, err)
		}
	}
}

func (tc *tcluster) engine(i int) *Engine {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.eng[i]
}

// leader waits for a running engine that is leader and that every other
// running engine agrees on, and returns its position.
func (tc *tcluster) leader(within time.Duration) int {
	tc.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if i := tc.agreedLeader(); i >= 0 {
			return i
		}
		pollPause()
	}
	tc.t.Fatalf("no leader within %v", within)
	return -1
}

func (tc *tcluster) agreedLeader() int {
	var lead identity.PublicKey
	seen := false
	for i := range tc.eng {
		e := tc.engine(i)
		if e == nil {
			continue
		}
		s := e.Status()
		if s.Leader.IsZero() || (seen && s.Leader != lead) {
			return -1
		}
		lead, seen = s.Leader, true
	}
	for i, k := range tc.c.Keys {
		if e := tc.engine(i); e != nil && k.Public() == lead && e.raft.State().String() == "Leader" {
			return i
		}
	}
	return -1
}

// pollPause is the interval of the polling loops (they all have deadlines).
func pollPause() { time.Sleep(10 * time.Millisecond) }

// sign builds member i's next request for op on the group's current epoch.
func (tc *tcluster) sign(i int, op fsm.Op) func() ([]byte, error) {
	return func() ([]byte, error) {
		e := tc.engine(i)
		if e == nil {
			return nil, errors.New("stopped")
		}
		tc.mu.Lock()
		tc.seq[i]++
		seq := tc.seq[i]
		tc.mu.Unlock()
		q, err := fsm.SignRequest(tc.c.Keys[i], e.Status().Group.ID(), seq, op)
		if err != nil {
			return nil, err
		}
		return q.Encode(), nil
	}
}

// propose proposes op from member i and fails the test on error or refusal.
func (tc *tcluster) propose(i int, op fsm.Op) consensus.Applied {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := tc.engine(i).ProposeFunc(ctx, tc.sign(i, op))
	if err != nil {
		tc.t.Fatalf("propose from %d: %v", i, err)
	}
	if !a.Result.OK() {
		tc.t.Fatalf("propose from %d refused: %v", i, a.Result.Err())
	}
	return a
}

// converge waits until every running engine has applied at least idx and
// all have the same state digest.
func (tc *tcluster) converge(idx uint64, within time.Duration) {
	tc.t.Helper()
	tc.convergeAmong(idx, within, nil)
}

// convergeAmong is converge over the running engines in members (all when
// members is nil). The failure names what each one applied.
func (tc *tcluster) convergeAmong(idx uint64, within time.Duration, members []int) {
	tc.t.Helper()
	if members == nil {
		members = make([]int, len(tc.eng))
		for i := range members {
			members[i] = i
		}
	}
	deadline := time.Now().Add(within)
	for {
		var digests [][32]byte
		var applied []string
		ok := true
		for _, i := range members {
			e := tc.engine(i)
			if e == nil {
				continue
			}
			e.mu.RLock()
			if e.m.LastIndex() < idx {
				ok = false
			}
			digests = append(digests, e.m.Digest())
			applied = append(applied, fmt.Sprintf("%d:%d", i, e.m.LastIndex()))
			e.mu.RUnlock()
		}
		for _, d := range digests[1:] {
			ok = ok && d == digests[0]
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("members did not converge on index %d within %v (member:applied %v)", idx, within, applied)
		}
		pollPause()
	}
}

func (tc *tcluster) get(i int, key string) (fsm.Item, bool) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var it fsm.Item
	var ok bool
	if err := tc.engine(i).Read(ctx, func(m *fsm.Machine) { it, ok = m.Get(key) }); err != nil {
		tc.t.Fatalf("read on %d: %v", i, err)
	}
	return it, ok
}
