package bftengine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/bftengine/bfttest"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// testOptions are faster than the defaults so that view changes take about
// a second.
func testOptions() options {
	o := defaultOptions()
	o.config.LeaderHeartbeatTimeout = time.Second
	o.config.ViewChangeResendInterval = 300 * time.Millisecond
	o.config.ViewChangeTimeout = 3 * time.Second
	o.config.RequestForwardTimeout = 500 * time.Millisecond
	o.config.RequestComplainTimeout = 2 * time.Second
	o.config.CollectTimeout = 200 * time.Millisecond
	o.tick = 20 * time.Millisecond
	return o
}

type evidenceLog struct {
	mu  sync.Mutex
	got []string // "member kind"
}

func (l *evidenceLog) add(k identity.PublicKey, kind, _ string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, k.String()+" "+kind)
}

func (l *evidenceLog) has(k identity.PublicKey, kind string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, g := range l.got {
		if g == k.String()+" "+kind {
			return true
		}
	}
	return false
}

func (l *evidenceLog) against(k identity.PublicKey) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, g := range l.got {
		if len(g) > len(k.String()) && g[:len(k.String())] == k.String() {
			out = append(out, g[len(k.String())+1:])
		}
	}
	return out
}

// appliedLog records every entry each member applies, to check that no two
// members apply different entries at one index.
type appliedLog struct {
	mu     sync.Mutex
	at     map[uint64]map[int][32]byte // index → member → entry digest
	forged map[int]int                 // member → entries it applied whose request was forged
}

func (a *appliedLog) hook(i int) func(consensus.Applied) {
	return func(x consensus.Applied) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.at == nil {
			a.at = map[uint64]map[int][32]byte{}
		}
		if a.at[x.Index] == nil {
			a.at[x.Index] = map[int][32]byte{}
		}
		a.at[x.Index][i] = x.Entry.Digest()
		if x.Result.Code == fsm.CodeBadSignature || x.Result.Code == fsm.CodeNotMember {
			if a.forged == nil {
				a.forged = map[int]int{}
			}
			a.forged[i]++
		}
	}
}

// members is how many members reported applying index.
func (a *appliedLog) members(index uint64) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at[index])
}

// check fails if two members applied different entries at one index, or
// one applied an entry whose request a member did not sign.
func (a *appliedLog) check(t *testing.T, honest []int) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, i := range honest {
		if a.forged[i] > 0 {
			t.Fatalf("member %d applied %d forged requests", i+1, a.forged[i])
		}
	}
	for idx, by := range a.at {
		var first [32]byte
		var have bool
		for _, i := range honest {
			d, ok := by[i]
			if !ok {
				continue
			}
			if have && d != first {
				t.Fatalf("index %d: members applied different entries", idx)
			}
			first, have = d, true
		}
	}
}

type harness struct {
	t       *testing.T
	c       *bfttest.Cluster
	dirs    []string
	engines []*Engine
	opts    []options
	ev      []*evidenceLog
	gates   []func(identity.PublicKey, int) (func(), error) // each member's AdmitRequest, nil: none
	logs    []*slog.Logger                                  // each member's logger, nil: testLogger
	applied *appliedLog
	seq     map[identity.PublicKey]uint64
	seqMu   sync.Mutex
}

func newHarness(t *testing.T, n int) *harness {
	t.Helper()
	return newHarnessOf(t, bfttest.NewCluster(t, "reviews", n))
}

// newHarnessOf runs the nodes of c; those c.Group does not list start as
// learners.
func newHarnessOf(t *testing.T, c *bfttest.Cluster) *harness {
	t.Helper()
	n := len(c.Keys)
	h := &harness{t: t, c: c, applied: &appliedLog{}, seq: map[identity.PublicKey]uint64{}}
	for i := 0; i < n; i++ {
		h.dirs = append(h.dirs, filepath.Join(t.TempDir(), fmt.Sprintf("m%d", i+1)))
		h.engines = append(h.engines, nil)
		h.opts = append(h.opts, testOptions())
		h.ev = append(h.ev, &evidenceLog{})
		h.gates = append(h.gates, nil)
		h.logs = append(h.logs, nil)
	}
	t.Cleanup(func() {
		for _, e := range h.engines {
			if e != nil {
				e.Close()
			}
		}
	})
	return h
}

func testLogger(t *testing.T, i int) *slog.Logger {
	if os.Getenv("BFT_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("m", i+1)
	}
	return slog.New(slog.DiscardHandler)
}

func (h *harness) start(i int) *Engine {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lg := h.logs[i]
	if lg == nil {
		lg = testLogger(h.t, i)
	}
	e, err := newEngine(ctx, consensus.EngineConfig{
		Group: h.c.Group, Self: h.c.Keys[i], Dir: h.dirs[i], Net: h.c.Network(h.t, i),
		OnApply: h.applied.hook(i), OnEvidence: h.ev[i].add, AdmitRequest: h.gates[i], Log: lg,
	}, h.opts[i])
	if err != nil {
		h.t.Fatalf("start member %d: %v", i+1, err)
	}
	h.engines[i] = e
	return e
}

func (h *harness) startAll() {
	for i := range h.engines {
		h.start(i)
	}
}

func (h *harness) stop(i int) {
	h.t.Helper()
	if err := h.engines[i].Close(); err != nil {
		h.t.Fatalf("close member %d: %v", i+1, err)
	}
	h.engines[i] = nil
}

// req signs op as member i with its next sequence number.
func (h *harness) req(i int, op fsm.Op) []byte {
	h.t.Helper()
	k := h.c.Keys[i]
	h.seqMu.Lock()
	h.seq[k.Public()]++
	s := h.seq[k.Public()]
	h.seqMu.Unlock()
	q, err := fsm.SignRequest(k, h.c.Group.ID(), s, op)
	if err != nil {
		h.t.Fatal(err)
	}
	return q.Encode()
}

// propose proposes through member via and fails the test on error.
func (h *harness) propose(via int, req []byte, within time.Duration) consensus.Applied {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	a, err := h.engines[via].Propose(ctx, req)
	if err != nil {
		h.t.Fatalf("propose via member %d: %v", via+1, err)
	}
	return a
}

// waitIndex polls until every listed member has applied index.
func (h *harness) waitIndex(members []int, index uint64, within time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok := true
		for _, i := range members {
			if h.engines[i].lastIdx.Load() < index {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var have []uint64
			for _, i := range members {
				have = append(have, h.engines[i].lastIdx.Load())
			}
			h.t.Fatalf("members %v did not reach index %d within %v (have %v)", members, index, within, have)
		}
		waitTick()
	}
}

// waitTick paces a polling loop that has its own deadline.
func waitTick() { <-time.After(10 * time.Millisecond) }

func (h *harness) digest(i int) [32]byte {
	e := h.engines[i]
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m.Digest()
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		waitTick()
	}
}

func contextWithin(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func bfttestKey(t *testing.T, b byte) identity.PrivateKey {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = b
	}
	k, err := identity.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sortedKeys returns n test keys in byte order and a builder of BFT groups
// named "g" over them.
func sortedKeys(t *testing.T, n byte) ([]identity.PublicKey, func(epoch uint64, members ...identity.PublicKey) fsm.Group) {
	t.Helper()
	var ks []identity.PublicKey
	for b := byte(1); b <= n; b++ {
		ks = append(ks, bfttestKey(t, b).Public())
	}
	slices.SortFunc(ks, func(a, b identity.PublicKey) int { return slices.Compare(a.Bytes(), b.Bytes()) })
	return ks, func(epoch uint64, members ...identity.PublicKey) fsm.Group {
		g, err := fsm.NewGroup("g", fsm.ModeBFT, epoch, members)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
}
