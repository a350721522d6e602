package node_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/testnet"
)

// A caller that stops reading a stream does not hold the serving node's call
// (its concurrency slot, its handler) past limits.call_timeout of silence:
// the backend was killed at its timeout, but the write of the next event
// waited on the caller's flow control for ever.
func TestStalledStreamReaderReleasesItsSlot(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	pad := strings.Repeat("x", 1000)
	globex.Expose(t, config.Capability{
		Name: "flood", Stream: true, Timeout: config.Duration(time.Second),
		Exec: &config.ExecBackend{Command: testnet.WriteScript(t, `while :; do echo '{"pad":"`+pad+`"}'; done`+"\n")},
	})
	globex.ExposeExec(t, "echo", `cat`)
	globex.Grant(t, "acme", "flood")
	globex.Grant(t, "acme", "echo")
	globex.AppendConfig(t, "limits:\n  call_timeout: 2s\nbudget:\n  rules:\n    - peer: "+acme.ID.String()+"\n      dir: in\n      concurrency: 1\n")

	stall := make(chan struct{})
	defer close(stall)
	got := make(chan struct{}, 1)
	go acme.Client().Stream(t.Context(), "globex", "flood", json.RawMessage(`{}`), func(json.RawMessage) error {
		select {
		case got <- struct{}{}:
		default:
		}
		<-stall // a reader that never reads on
		return nil
	})
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream never started")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		o := acme.Call(t, "globex", "echo", `{}`)
		if o.Err == nil {
			return
		}
		if !strings.Contains(o.Err.Error(), "concurrency") {
			t.Fatalf("call while a stream stalls: %v", o)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stalled stream still holds its slot 20s on: %v", o)
		}
		// Polling the node from outside, slowly: each refusal spends the
		// caller's allowance of refused requests (100, then 1/s).
		time.Sleep(300 * time.Millisecond)
	}
}

// The bound is on a stalled write, not on silence: a stream whose backend
// is quiet for longer than call_timeout between events still delivers them.
func TestQuietStreamOutlivesCallTimeout(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Member("acme"), c.Member("globex")
	globex.Expose(t, config.Capability{
		Name: "slowticks", Stream: true, Timeout: config.Duration(20 * time.Second),
		Exec: &config.ExecBackend{Command: testnet.WriteScript(t, `echo '{"n":1}'; sleep 2; echo '{"n":2}'`+"\n")},
	})
	globex.Grant(t, "acme", "slowticks")
	globex.AppendConfig(t, "limits:\n  call_timeout: 1s\n")
	var got []string
	err := acme.Client().Stream(t.Context(), "globex", "slowticks", json.RawMessage(`{}`), func(d json.RawMessage) error {
		got = append(got, string(d))
		return nil
	})
	if err != nil || len(got) != 2 {
		t.Fatalf("quiet stream: %q, %v; want both events", got, err)
	}
}
