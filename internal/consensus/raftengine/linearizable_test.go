package raftengine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// kvIn is one client operation on one key.
type kvIn struct {
	op    string // "get", "put", "cas"
	key   string
	value string
	ifVer uint64
}

// kvOut is its outcome. unknown: the proposal failed after it may have been
// appended; refused: the group refused it (a replayed sequence number), so
// it had no effect.
type kvOut struct {
	unknown, refused bool
	ok               bool // put/cas applied; get: key exists
	value            string
	version          uint64 // after put/cas; current on get and on cas mismatch
}

type kvState struct {
	value   string
	version uint64
}

// kvModel is the fsm's versioned store for one key: a put bumps the
// version, a CAS applies only at its version (0: absent).
var kvModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, o := range h {
			k := o.Input.(kvIn).key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], o)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return kvState{} },
	Step: func(st, in, out any) (bool, any) {
		s, i, o := st.(kvState), in.(kvIn), out.(kvOut)
		if o.refused {
			return true, s
		}
		switch i.op {
		case "get":
			if o.unknown {
				return true, s
			}
			return o.ok == (s.version > 0) && o.value == s.value && o.version == s.version, s
		case "put":
			next := kvState{value: i.value, version: s.version + 1}
			if o.unknown {
				return true, next
			}
			return o.ok && o.version == next.version, next
		default: // cas
			match := i.ifVer == s.version
			next := s
			if match {
				next = kvState{value: i.value, version: s.version + 1}
			}
			if o.unknown {
				return true, next
			}
			if o.ok {
				return match && o.version == next.version, next
			}
			return !match && o.version == s.version, s
		}
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(kvIn), out.(kvOut)
		return fmt.Sprintf("%s(%s %q if %d) -> %+v", i.op, i.key, i.value, i.ifVer, o)
	},
}

// history collects operations from concurrent clients.
type history struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
	known int
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(client int, in kvIn, call int64, out kvOut) {
	ret := h.now()
	if out.unknown {
		ret = math.MaxInt64 // it may take effect at any later time
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	if !out.unknown {
		h.known++
	}
}

// client runs random operations against member i until stop or maxOps.
func (tc *tcluster) client(id, member int, h *history, stop <-chan struct{}, maxOps int) {
	rng := rand.New(rand.NewPCG(uint64(id), 7))
	keys := []string{"a", "b", "c"}
	seen := map[string]uint64{}
	for n := 0; n < maxOps; n++ {
		select {
		case <-stop:
			return
		default:
		}
		e := tc.engine(member)
		if e == nil {
			pollPause()
			continue
		}
		in := kvIn{key: keys[rng.IntN(len(keys))], value: fmt.Sprintf("c%d-%d", id, n)}
		switch r := rng.IntN(10); {
		case r < 4:
			in.op = "get"
		case r < 7:
			in.op = "put"
		default:
			in.op, in.ifVer = "cas", seen[in.key]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		call := h.now()
		var out kvOut
		if in.op == "get" {
			var it fsm.Item
			err := e.Read(ctx, func(m *fsm.Machine) { it, out.ok = m.Get(in.key) })
			cancel()
			if err != nil {
				continue // a failed read had no effect: leave it out
			}
			out.value, out.version = string(it.Value), it.Version
			seen[in.key] = it.Version
			h.add(id, in, call, out)
			continue
		}
		op := fsm.Put(in.key, []byte(in.value))
		if in.op == "cas" {
			op = fsm.CAS(in.key, []byte(in.value), in.ifVer)
		}
		a, err := e.ProposeFunc(ctx, tc.sign(member, op))
		cancel()
		switch {
		case err != nil && errors.Is(err, errUnknown):
			out.unknown = true
		case err != nil:
			// Certainly not appended (no leader until the deadline, closed
			// before sending): no effect.
			if !errors.Is(err, consensus.ErrNoQuorum) && !errors.Is(err, consensus.ErrClosed) {
				out.unknown = true
			} else {
				continue
			}
		case a.Result.OK():
			out.ok, out.version = true, a.Result.Version
			seen[in.key] = a.Result.Version
		case a.Result.Code == fsm.CodeCASMismatch:
			out.version = a.Result.Version
			seen[in.key] = a.Result.Version
		default:
			out.refused = true
		}
		h.add(id, in, call, out)
	}
}

// TestLinearizable runs concurrent put/get/CAS clients on every member while
// every connection is dropped, the leader is killed and restarted, a
// minority and then a majority are partitioned, and a follower restarts; porcupine must find the history
// linearizable, and the group must make progress after healing.
func TestLinearizable(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			if testing.Short() && n == 5 {
				t.Skip("short")
			}
			tc := newCluster(t, n)
			tc.leader(20 * time.Second)
			h := &history{start: time.Now()}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for c := range 2 * n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tc.client(c, c%n, h, stop, 400)
				}()
			}
			pubs := tc.c.Pubs()
			phase := func(d time.Duration) { waitFor(d) }

			phase(time.Second)
			for range 3 { // connection drops: proposals in flight end with unknown outcomes
				tc.c.Faults.DropAll()
				phase(300 * time.Millisecond)
			}
			lead := tc.leader(20 * time.Second)
			tc.stop(lead) // the leader crashes
			phase(1500 * time.Millisecond)
			tc.start(lead)

			lead = tc.leader(20 * time.Second)
			minority := []identity.PublicKey{pubs[lead]} // the leader is cut off with the minority
			var rest []identity.PublicKey
			for i, k := range pubs {
				if i != lead {
					rest = append(rest, k)
				}
			}
			tc.c.Faults.Partition(minority, rest)
			phase(2 * time.Second)
			tc.c.Faults.Heal()

			var sides [][]identity.PublicKey // no side holds a majority
			for _, k := range pubs {
				sides = append(sides, []identity.PublicKey{k})
			}
			tc.c.Faults.Partition(sides...)
			phase(1500 * time.Millisecond)
			tc.c.Faults.Heal()

			lead = tc.leader(20 * time.Second)
			f := (lead + 1) % n
			tc.stop(f) // a follower restarts
			phase(time.Second)
			tc.start(f)
			phase(time.Second)
			close(stop)
			wg.Wait()

			// Progress after healing, from every member.
			var last consensus.Applied
			for i := range n {
				last = tc.propose(i, fsm.Put("after", []byte(fmt.Sprint(i))))
			}
			tc.converge(last.Index, 20*time.Second)

			h.mu.Lock()
			ops := h.ops
			known := h.known
			h.mu.Unlock()
			if known < 50 {
				t.Fatalf("only %d operations completed", known)
			}
			res := porcupine.CheckOperationsTimeout(kvModel, ops, 60*time.Second)
			t.Logf("%d operations (%d with known outcome), %d connections cut: %s", len(ops), known, tc.c.Faults.Dropped(), res)
			if res != porcupine.Ok {
				for _, part := range kvModel.Partition(ops) {
					if porcupine.CheckOperationsTimeout(kvModel, part, 10*time.Second) == porcupine.Ok {
						continue
					}
					slices.SortFunc(part, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
					for _, o := range part {
						t.Logf("client %d [%d, %d] %s", o.ClientId, o.Call, o.Return, kvModel.DescribeOperation(o.Input, o.Output))
					}
				}
				t.Fatalf("history is %s", res)
			}
		})
	}
}

// waitFor lets the clients run for d under the current faults: the test's
// schedule, not synchronisation.
func waitFor(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}

// TestModelCatchesStaleRead: the checker is not vacuous. A read that returns
// an overwritten value after the overwrite completed is a violation.
func TestModelCatchesStaleRead(t *testing.T) {
	op := func(in kvIn, call, ret int64, out kvOut) porcupine.Operation {
		return porcupine.Operation{Input: in, Call: call, Return: ret, Output: out}
	}
	h := []porcupine.Operation{
		op(kvIn{op: "put", key: "a", value: "x"}, 0, 1, kvOut{ok: true, version: 1}),
		op(kvIn{op: "put", key: "a", value: "y"}, 2, 3, kvOut{ok: true, version: 2}),
		op(kvIn{op: "get", key: "a"}, 4, 5, kvOut{ok: true, value: "x", version: 1}),
	}
	if porcupine.CheckOperations(kvModel, h) {
		t.Fatal("stale read accepted")
	}
	// An unknown put may take effect late: a read of it after is fine.
	h = []porcupine.Operation{
		op(kvIn{op: "put", key: "a", value: "x"}, 0, math.MaxInt64, kvOut{unknown: true}),
		op(kvIn{op: "get", key: "a"}, 4, 5, kvOut{}),
		op(kvIn{op: "get", key: "a"}, 6, 7, kvOut{ok: true, value: "x", version: 1}),
	}
	if !porcupine.CheckOperations(kvModel, h) {
		t.Fatal("late unknown put refused")
	}
}
