package raftengine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/consensus/kvcheck"
	"github.com/treaty-dev/treaty/internal/identity"
)

// client runs random operations against member i until stop or maxOps.
func (tc *tcluster) client(id, member int, h *kvcheck.History, stop <-chan struct{}, maxOps int) {
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
		in := kvcheck.Op{Key: keys[rng.IntN(len(keys))], Value: fmt.Sprintf("c%d-%d", id, n)}
		switch r := rng.IntN(10); {
		case r < 4:
			in.Kind = "get"
		case r < 7:
			in.Kind = "put"
		default:
			in.Kind, in.IfVersion = "cas", seen[in.Key]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		call := h.Now()
		var out kvcheck.Result
		if in.Kind == "get" {
			var it fsm.Item
			err := e.Read(ctx, func(m *fsm.Machine) { it, out.OK = m.Get(in.Key) })
			cancel()
			if err != nil {
				continue // a failed read had no effect: leave it out
			}
			out.Value, out.Version = string(it.Value), it.Version
			seen[in.Key] = it.Version
			h.Add(id, member, in, call, out)
			continue
		}
		op := fsm.Put(in.Key, []byte(in.Value))
		if in.Kind == "cas" {
			op = fsm.CAS(in.Key, []byte(in.Value), in.IfVersion)
		}
		a, err := e.ProposeFunc(ctx, tc.sign(member, op))
		cancel()
		switch {
		case err != nil && errors.Is(err, errUnknown):
			out.Unknown = true
		case err != nil:
			// Certainly not appended (no leader until the deadline, closed
			// before sending): no effect.
			if !errors.Is(err, consensus.ErrNoQuorum) && !errors.Is(err, consensus.ErrClosed) {
				out.Unknown = true
			} else {
				continue
			}
		case a.Result.OK():
			out.OK, out.Version = true, a.Result.Version
			seen[in.Key] = a.Result.Version
		case a.Result.Code == fsm.CodeCASMismatch:
			out.Version, out.MismatchVersion = a.Result.Version, true
			seen[in.Key] = a.Result.Version
		default:
			out.Refused = true
		}
		h.Add(id, member, in, call, out)
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
			h := kvcheck.NewHistory()
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

			known, _, _ := h.Counts()
			if known < 50 {
				t.Fatalf("only %d operations completed", known)
			}
			res, bad := h.Check(60 * time.Second)
			t.Logf("%d operations (%d with known outcome), %d connections cut: %s", h.Len(), known, tc.c.Faults.Dropped(), res)
			if res != porcupine.Ok {
				for _, l := range bad {
					t.Log(l)
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
