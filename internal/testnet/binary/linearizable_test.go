package binary

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/consensus/kvcheck"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// linClient runs random operations against one node's local API until stop
// or maxOps.
func linClient(id, node int, cl *client.Client, h *kvcheck.History, stop <-chan struct{}, maxOps int) {
	rng := rand.New(rand.NewPCG(uint64(id), 11))
	keys := []string{"a", "b", "c"}
	seen := map[string]uint64{}
	for n := 0; n < maxOps; n++ {
		select {
		case <-stop:
			return
		default:
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
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		call := h.Now()
		var out kvcheck.Result
		if in.Kind == "get" {
			it, err := cl.KVGet(ctx, "lin", in.Key)
			cancel()
			var le *localapi.Error
			switch {
			case err == nil:
				out.OK, out.Value, out.Version = true, it.Value, it.Version
				seen[in.Key] = it.Version
			case errors.As(err, &le) && le.Stage == localapi.StageUsage && strings.Contains(le.Reason, "has no key"):
				seen[in.Key] = 0
			default:
				pause(stop)
				continue // a failed read had no effect: leave it out
			}
			h.Add(id, node, in, call, out)
			continue
		}
		req := localapi.KVPutRequest{Group: "lin", Key: in.Key, Value: in.Value}
		if in.Kind == "cas" {
			req.IfVersion = &in.IfVersion
		}
		d, err := cl.KVPut(ctx, req)
		cancel()
		var le *localapi.Error
		switch {
		case err == nil:
			out.OK, out.Version = true, d.Version
			seen[in.Key] = d.Version
		case errors.Is(err, client.ErrNotRunning):
			pause(stop)
			continue // nothing listened: the request never left
		case errors.As(err, &le) && le.Stage == localapi.StageConsensus && in.Kind == "cas" && strings.Contains(le.Reason, "cas-mismatch"):
			delete(seen, in.Key) // read it again before the next CAS
		default:
			out.Unknown = true // timeout, no quorum after sending, node killed mid-answer
			pause(stop)
		}
		h.Add(id, node, in, call, out)
	}
}

// pause backs off a client whose node is down or electing, without
// outliving stop.
func pause(stop <-chan struct{}) {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-stop:
	case <-t.C:
	}
}

// TestLinearizableRealProcesses: three `treaty run` processes form a Raft
// group; four clients run put/get/CAS on three keys through the nodes' local
// sockets while the leader process is SIGKILLed and restarted. porcupine must
// find the history linearizable, and operations through every node, the
// restarted one included, must complete after the restart.
func TestLinearizableRealProcesses(t *testing.T) {
	bin := treatyBin(t)
	names := []string{"acme", "globex", "initech"}
	var nodes []*testnet.Node
	for _, name := range names {
		nodes = append(nodes, testnet.Init(t, bin, name))
	}
	for i := range nodes {
		for j := i + 1; j < len(nodes); j++ {
			testnet.Federate(t, nodes[i], nodes[j])
		}
	}
	for _, n := range nodes {
		n.Start(t)
	}
	for _, n := range nodes {
		n.Must(t, "group", "create", "lin", "--mode", "raft", "--members", strings.Join(names, ","))
	}
	leader := func() int {
		var at int
		testnet.Eventually(t, 30*time.Second, func() error {
			for _, n := range nodes {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				gs, err := client.New(n.Home).Groups(ctx)
				cancel()
				if err != nil {
					continue
				}
				for _, g := range gs {
					if g.Name != "lin" || g.Leader == "" || !g.Healthy {
						continue
					}
					for _, m := range g.Members {
						if m.ID != g.Leader {
							continue
						}
						for j, cand := range nodes {
							if cand.ID == m.ID || cand.Name == m.Name {
								at = j
								return nil
							}
						}
					}
				}
			}
			return errors.New("group lin has no healthy leader yet")
		})
		return at
	}
	leader()

	h := kvcheck.NewHistory()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const clients, maxOps = 4, 200
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			linClient(c, c%len(nodes), client.New(nodes[c%len(nodes)].Home), h, stop, maxOps)
		}()
	}
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer halt()

	testnet.Eventually(t, 20*time.Second, func() error {
		if k, _, _ := h.Counts(); k < 60 {
			return fmt.Errorf("%d operations completed before the kill", k)
		}
		return nil
	})
	lead := leader()
	t.Logf("killing the leader %s (pid %d)", nodes[lead].Name, nodes[lead].PID())
	nodes[lead].Kill(t)
	nodes[lead].Start(t)
	h.Mark()
	testnet.Eventually(t, 30*time.Second, func() error {
		_, after, via := h.Counts()
		if after < 50 || via[lead] == 0 {
			return fmt.Errorf("after the restart: %d operations completed, %d through the restarted %s", after, via[lead], nodes[lead].Name)
		}
		return nil
	})
	halt()

	known, _, _ := h.Counts()
	res, bad := h.Check(30 * time.Second)
	t.Logf("%d operations (%d with known outcome): %s", h.Len(), known, res)
	if res != porcupine.Ok {
		for _, l := range bad {
			t.Log(l)
		}
		t.Fatalf("history is %s", res)
	}
}
