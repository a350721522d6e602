package binary

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// linIn is one client operation on one key.
type linIn struct {
	op    string // "get", "put", "cas"
	key   string
	value string
	ifVer uint64
}

// linOut is its outcome. unknown: the request may have been committed (a
// timeout, a node killed while it answered); the local API does not return a
// CAS mismatch's current version, so a mismatch says only that it did not
// apply.
type linOut struct {
	unknown bool
	ok      bool // put/cas applied; get: the key exists
	value   string
	version uint64 // after put/cas; current on get
}

type linState struct {
	value   string
	version uint64
}

// linModel is the group's versioned store for one key: a put bumps the
// version, a CAS applies only at its version (0: absent).
var linModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, o := range h {
			k := o.Input.(linIn).key
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
	Init: func() any { return linState{} },
	Step: func(st, in, out any) (bool, any) {
		s, i, o := st.(linState), in.(linIn), out.(linOut)
		switch i.op {
		case "get":
			return o.ok == (s.version > 0) && o.value == s.value && o.version == s.version, s
		case "put":
			next := linState{value: i.value, version: s.version + 1}
			return o.unknown || (o.ok && o.version == next.version), next
		default: // cas
			match := i.ifVer == s.version
			next := s
			if match {
				next = linState{value: i.value, version: s.version + 1}
			}
			switch {
			case o.unknown:
				return true, next
			case o.ok:
				return match && o.version == next.version, next
			}
			return !match, s
		}
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(linIn), out.(linOut)
		return fmt.Sprintf("%s(%s %q if %d) -> %+v", i.op, i.key, i.value, i.ifVer, o)
	},
}

// linHistory collects operations from concurrent clients.
type linHistory struct {
	mu      sync.Mutex
	start   time.Time
	ops     []porcupine.Operation
	known   int // operations with a known outcome
	after   int // of those, called after `since`
	viaNode map[int]int
	since   int64
}

func (h *linHistory) now() int64 { return int64(time.Since(h.start)) }

func (h *linHistory) add(client, node int, in linIn, call int64, out linOut) {
	ret := h.now()
	if out.unknown {
		ret = math.MaxInt64 // it may take effect at any later time
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	if out.unknown {
		return
	}
	h.known++
	if h.since > 0 && call > h.since {
		h.after++
		h.viaNode[node]++
	}
}

// mark starts counting the operations called from now on.
func (h *linHistory) mark() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.since, h.after, h.viaNode = h.now(), 0, map[int]int{}
}

func (h *linHistory) counts() (known, after int, viaNode map[int]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.known, h.after, maps.Clone(h.viaNode)
}

// linClient runs random operations against one node's local API until stop
// or maxOps.
func linClient(id, node int, cl *client.Client, h *linHistory, stop <-chan struct{}, maxOps int) {
	rng := rand.New(rand.NewPCG(uint64(id), 11))
	keys := []string{"a", "b", "c"}
	seen := map[string]uint64{}
	for n := 0; n < maxOps; n++ {
		select {
		case <-stop:
			return
		default:
		}
		in := linIn{key: keys[rng.IntN(len(keys))], value: fmt.Sprintf("c%d-%d", id, n)}
		switch r := rng.IntN(10); {
		case r < 4:
			in.op = "get"
		case r < 7:
			in.op = "put"
		default:
			in.op, in.ifVer = "cas", seen[in.key]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		call := h.now()
		var out linOut
		if in.op == "get" {
			it, err := cl.KVGet(ctx, "lin", in.key)
			cancel()
			var le *localapi.Error
			switch {
			case err == nil:
				out.ok, out.value, out.version = true, it.Value, it.Version
				seen[in.key] = it.Version
			case errors.As(err, &le) && le.Stage == localapi.StageUsage && strings.Contains(le.Reason, "has no key"):
				seen[in.key] = 0
			default:
				pause(stop)
				continue // a failed read had no effect: leave it out
			}
			h.add(id, node, in, call, out)
			continue
		}
		req := localapi.KVPutRequest{Group: "lin", Key: in.key, Value: in.value}
		if in.op == "cas" {
			req.IfVersion = &in.ifVer
		}
		d, err := cl.KVPut(ctx, req)
		cancel()
		var le *localapi.Error
		switch {
		case err == nil:
			out.ok, out.version = true, d.Version
			seen[in.key] = d.Version
		case errors.Is(err, client.ErrNotRunning):
			pause(stop)
			continue // nothing listened: the request never left
		case errors.As(err, &le) && le.Stage == localapi.StageConsensus && in.op == "cas" && strings.Contains(le.Reason, "cas-mismatch"):
			delete(seen, in.key) // read it again before the next CAS
		default:
			out.unknown = true // timeout, no quorum after sending, node killed mid-answer
			pause(stop)
		}
		h.add(id, node, in, call, out)
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

	h := &linHistory{start: time.Now()}
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
		if k, _, _ := h.counts(); k < 60 {
			return fmt.Errorf("%d operations completed before the kill", k)
		}
		return nil
	})
	lead := leader()
	t.Logf("killing the leader %s (pid %d)", nodes[lead].Name, nodes[lead].PID())
	nodes[lead].Kill(t)
	nodes[lead].Start(t)
	h.mark()
	testnet.Eventually(t, 30*time.Second, func() error {
		_, after, via := h.counts()
		if after < 50 || via[lead] == 0 {
			return fmt.Errorf("after the restart: %d operations completed, %d through the restarted %s", after, via[lead], nodes[lead].Name)
		}
		return nil
	})
	halt()

	h.mu.Lock()
	ops, known := h.ops, h.known
	h.mu.Unlock()
	res := porcupine.CheckOperationsTimeout(linModel, ops, 30*time.Second)
	t.Logf("%d operations (%d with known outcome): %s", len(ops), known, res)
	if res != porcupine.Ok {
		for _, part := range linModel.Partition(ops) {
			if porcupine.CheckOperationsTimeout(linModel, part, 10*time.Second) == porcupine.Ok {
				continue
			}
			slices.SortFunc(part, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
			for _, o := range part {
				t.Logf("client %d [%d, %d] %s", o.ClientId, o.Call, o.Return, linModel.DescribeOperation(o.Input, o.Output))
			}
		}
		t.Fatalf("history is %s", res)
	}
}

// TestLinearizableModelRefusesStaleRead: the checker this test uses is not
// vacuous.
func TestLinearizableModelRefusesStaleRead(t *testing.T) {
	op := func(in linIn, call, ret int64, out linOut) porcupine.Operation {
		return porcupine.Operation{Input: in, Call: call, Return: ret, Output: out}
	}
	h := []porcupine.Operation{
		op(linIn{op: "put", key: "a", value: "x"}, 0, 1, linOut{ok: true, version: 1}),
		op(linIn{op: "put", key: "a", value: "y"}, 2, 3, linOut{ok: true, version: 2}),
		op(linIn{op: "get", key: "a"}, 4, 5, linOut{ok: true, value: "x", version: 1}),
	}
	if porcupine.CheckOperations(linModel, h) {
		t.Fatal("stale read accepted")
	}
	h = []porcupine.Operation{
		op(linIn{op: "cas", key: "a", value: "x", ifVer: 0}, 0, 1, linOut{ok: true, version: 1}),
		op(linIn{op: "cas", key: "a", value: "y", ifVer: 0}, 2, 3, linOut{ok: true, version: 1}),
	}
	if porcupine.CheckOperations(linModel, h) {
		t.Fatal("two CAS at version 0 both applied: accepted")
	}
}
