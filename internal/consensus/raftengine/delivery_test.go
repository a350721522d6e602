package raftengine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// auditModel is a consumer like the node's audit: what it wrote survives
// restarts; a flush that fails models a crash before the writes were
// durable (every other entry of the failed batches is lost); redelivered
// entries it already holds are skipped.
type auditModel struct {
	mu          sync.Mutex
	count       map[uint64]int // index -> times written durably
	redelivered map[uint64]bool
	seen        map[uint64]bool // delivered at all
	failFlush   bool
	batch       []uint64
}

func (m *auditModel) onApply(a consensus.Applied) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen != nil {
		m.seen[a.Index] = true
	}
	if a.Redelivered {
		m.redelivered[a.Index] = true
		if m.count[a.Index] > 0 {
			return
		}
	}
	m.batch = append(m.batch, a.Index)
}

func (m *auditModel) flush() (uint64, func() error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	batch, fail := m.batch, m.failFlush
	m.batch = nil
	return 0, func() error {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, i := range batch {
			if !fail || i%2 == 0 {
				m.count[i]++
			}
		}
		if fail {
			return errors.New("power lost")
		}
		return nil
	}
}

func (m *auditModel) set(fail bool) {
	m.mu.Lock()
	m.failFlush = fail
	m.mu.Unlock()
}

// TestDeliveryExactlyOnceAcrossCrash: entries flushed before a crash are not
// delivered again; entries whose flush did not complete are delivered again
// after the restart, marked Redelivered, so a deduplicating consumer holds
// every index exactly once.
func TestDeliveryExactlyOnceAcrossCrash(t *testing.T) {
	model := &auditModel{count: map[uint64]int{}, redelivered: map[uint64]bool{}}
	const watched = 0
	tc := newClusterHooked(t, 3, 3, testTiming(), func(i int, c *consensus.EngineConfig) {
		if i == watched {
			c.OnApply, c.FlushApplied = model.onApply, model.flush
		}
	})
	tc.leader(30 * time.Second)
	var mark, last consensus.Applied
	for k := range 5 {
		mark = tc.propose(1, fsm.Put(fmt.Sprintf("a/%d", k), []byte("x")))
	}
	tc.converge(mark.Index, 20*time.Second)
	model.set(true) // the consumer's writes stop being durable
	for k := range 6 {
		last = tc.propose(1, fsm.Put(fmt.Sprintf("b/%d", k), []byte("y")))
	}
	tc.converge(last.Index, 20*time.Second)
	tc.settle(watched, last.Index) // the failed batches were half written
	tc.stop(watched)
	model.set(false)
	tc.start(watched)
	tc.converge(last.Index, 30*time.Second)
	tc.settle(watched, last.Index) // the consumer's waits have run

	model.mu.Lock()
	for i := uint64(1); i <= last.Index; i++ {
		if i > mark.Index && model.count[i] == 0 {
			t.Errorf("index %d was lost", i)
		}
		if model.count[i] > 1 {
			t.Errorf("index %d written %d times", i, model.count[i])
		}
		if i <= mark.Index && model.redelivered[i] {
			t.Errorf("index %d was flushed before the crash and delivered again", i)
		}
		if i > mark.Index && !model.redelivered[i] {
			t.Errorf("index %d, not flushed before the crash, was not redelivered", i)
		}
	}
	clear(model.redelivered)
	model.mu.Unlock()
	if t.Failed() {
		t.FailNow()
	}

	// A clean restart after that delivers nothing again.
	tc.stop(watched)
	tc.start(watched)
	a := tc.propose(1, fsm.Put("after", []byte("z")))
	tc.converge(a.Index, 30*time.Second)
	tc.settle(watched, a.Index)
	model.mu.Lock()
	defer model.mu.Unlock()
	if len(model.redelivered) > 0 || model.count[a.Index] != 1 {
		t.Fatalf("after a clean restart: redelivered %v, new entry written %d times", model.redelivered, model.count[a.Index])
	}
}

// TestCatchUpResumesAfterCrash: a member that installs a snapshot and
// crashes before its consumer made the adopted entries durable fetches them
// again at its next start (from its local snapshot), and with the
// consumer's deduplication holds every entry the leader applied exactly
// once.
func TestCatchUpResumesAfterCrash(t *testing.T) {
	model := &auditModel{count: map[uint64]int{}, redelivered: map[uint64]bool{}, seen: map[uint64]bool{}}
	tm := testTiming()
	tm.trailingLogs = 2
	lag := -1
	tc := newClusterHooked(t, 3, 3, tm, func(i int, c *consensus.EngineConfig) {
		if i == lag {
			c.OnApply, c.FlushApplied = model.onApply, model.flush
		}
	})
	lead := tc.leader(30 * time.Second)
	lag = (lead + 1) % 3
	tc.stop(lag)
	var last consensus.Applied
	for k := range 20 {
		last = tc.propose(lead, fsm.Put(fmt.Sprintf("k%d", k), []byte("v")))
	}
	// Both members that stay compact, so the lagging one catches up from a
	// snapshot whichever of them leads when it returns.
	tc.converge(last.Index, 30*time.Second)
	for _, i := range []int{lead, 3 - lead - lag} {
		if err := tc.engine(i).raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %d: %v", i, err)
		}
	}
	model.set(true) // the lagging member's consumer loses what it writes
	tc.start(lag)
	tc.converge(last.Index, 30*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		model.mu.Lock()
		got := model.seen[last.Index]
		model.mu.Unlock()
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the adopted entries never reached OnApply")
		}
		pollPause()
	}
	tc.settle(lag, last.Index)
	tc.stop(lag)
	model.set(false)
	tc.start(lag)
	tc.converge(last.Index, 30*time.Second)

	leader := tc.apply[lead]
	leader.mu.Lock()
	want := append([]uint64{}, leader.idx...)
	leader.mu.Unlock()
	deadline = time.Now().Add(20 * time.Second)
	for {
		model.mu.Lock()
		missing := uint64(0)
		for _, i := range want {
			if c := model.count[i]; c > 1 {
				model.mu.Unlock()
				t.Fatalf("index %d written %d times", i, c)
			} else if c == 0 && missing == 0 {
				missing = i
			}
		}
		model.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("index %d never written on the member that caught up", missing)
		}
		pollPause()
	}
}

// settle waits until member i has handed every entry up to idx to OnApply
// and its marker has run the consumer's waits for them.
func (tc *tcluster) settle(i int, idx uint64) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := tc.engine(i)
	if err := e.waitApplied(ctx, idx); err != nil {
		tc.t.Fatalf("member %d did not apply %d: %v", i, idx, err)
	}
	e.syncMarks()
}
