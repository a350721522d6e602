package binary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

// TestGroupDecisionsAuditedOnceAcrossKill: three `treaty run` processes form
// a Raft group; two clients commit through the other two while a follower
// process is SIGKILLed mid-stream and restarted. Afterwards the killed
// member's audit log holds every decision the leader audited, each index
// exactly once: none lost with the audit queue it had in memory, none
// audited twice when the engine replayed its log.
func TestGroupDecisionsAuditedOnceAcrossKill(t *testing.T) {
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
		n.Must(t, "group", "create", "ledger", "--mode", "raft", "--members", strings.Join(names, ","))
	}
	info := func(n *testnet.Node) (localapi.GroupInfo, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		gs, err := client.New(n.Home).Groups(ctx)
		if err != nil {
			return localapi.GroupInfo{}, err
		}
		for _, g := range gs {
			if g.Name == "ledger" {
				return g, nil
			}
		}
		return localapi.GroupInfo{}, errors.New("no group ledger")
	}
	lead := -1
	testnet.Eventually(t, 30*time.Second, func() error {
		g, err := info(nodes[0])
		if err != nil || g.Leader == "" || !g.Healthy {
			return fmt.Errorf("no healthy leader yet: %+v %v", g, err)
		}
		for i, n := range nodes {
			if n.ID == g.Leader {
				lead = i
				return nil
			}
		}
		return fmt.Errorf("leader %s is not a node", g.Leader)
	})
	victim := (lead + 1) % 3

	var done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c, at := range []int{lead, (lead + 2) % 3} {
		wg.Go(func() {
			cl := client.New(nodes[at].Home)
			for k := 0; k < 2000; k++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := cl.KVPut(ctx, localapi.KVPutRequest{Group: "ledger", Key: fmt.Sprintf("c%d/%d", c, k), Value: "v"})
				cancel()
				if err == nil {
					done.Add(1)
				} else {
					pause(stop)
				}
			}
		})
	}
	halted := false
	halt := func() {
		if !halted {
			halted = true
			close(stop)
			wg.Wait()
		}
	}
	defer halt()
	atLeast := func(n int64) {
		testnet.Eventually(t, 30*time.Second, func() error {
			if d := done.Load(); d < n {
				return fmt.Errorf("%d puts committed, want %d", d, n)
			}
			return nil
		})
	}
	atLeast(60)
	t.Logf("killing follower %s (pid %d) after %d puts", nodes[victim].Name, nodes[victim].PID(), done.Load())
	nodes[victim].Kill(t)
	atLeast(done.Load() + 30)
	nodes[victim].Start(t)
	atLeast(done.Load() + 60)
	halt()

	// The restarted member catches up on everything the leader applied.
	var last uint64
	testnet.Eventually(t, 30*time.Second, func() error {
		l, err := info(nodes[lead])
		if err != nil {
			return err
		}
		v, err := info(nodes[victim])
		if err != nil {
			return err
		}
		if v.LastIndex < l.LastIndex {
			return fmt.Errorf("%s applied %d, the leader %d", nodes[victim].Name, v.LastIndex, l.LastIndex)
		}
		last = l.LastIndex
		return nil
	})
	for _, n := range nodes {
		n.Stop(t)
	}
	want := decisions(t, nodes[lead], last)
	got := decisions(t, nodes[victim], last)
	if len(want) < 100 {
		t.Fatalf("the leader audited only %d decisions", len(want))
	}
	for i, c := range got {
		if c != 1 {
			t.Fatalf("%s audited index %d %d times", nodes[victim].Name, i, c)
		}
	}
	for i := range want {
		if got[i] != 1 {
			t.Fatalf("%s did not audit index %d (it audited %d decisions, the leader %d)", nodes[victim].Name, i, len(got), len(want))
		}
	}
}

// decisions counts a stopped node's decision entries of group ledger by
// index, up to last.
func decisions(t *testing.T, n *testnet.Node, last uint64) map[uint64]int {
	t.Helper()
	r, err := audit.OpenReader(context.Background(), filepath.Join(n.Home, node.AuditFile))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	es, err := r.List(context.Background(), audit.Filter{Kind: node.KindDecision})
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]int{}
	for _, e := range es {
		if e.Capability != "group:ledger" {
			continue
		}
		var rep struct {
			Index uint64 `json:"index"`
		}
		if err := json.Unmarshal(e.Report, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Index <= last {
			out[rep.Index]++
		}
	}
	return out
}
