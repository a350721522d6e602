package binary

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/internal/wire"
)

// TestKill9CallerSentOverlap: the caller makes call.sent durable while the
// request travels (docs/adr/0010). SIGKILL at random moments while 8 agents
// call, several times over: after each restart the caller's log verifies,
// and every answer an agent received has both call.sent and call.completed
// in the caller's log and call.served in the callee's.
func TestKill9CallerSentOverlap(t *testing.T) {
	t.Parallel()
	bin := treatyBin(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	}))
	defer backend.Close()
	acme, globex := testnet.Init(t, bin, "acme"), testnet.Init(t, bin, "globex")
	testnet.Federate(t, acme, globex)
	globex.Must(t, "expose", "echo", "--http", backend.URL)
	globex.Must(t, "grant", "acme", "echo")
	globex.Start(t)

	const rounds = 4
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	var mu sync.Mutex
	acked := map[[32]byte]bool{} // request digests of answers an agent received
	for round := range rounds {
		acme.Start(t)
		cl := client.New(acme.Home)
		ctx, stop := context.WithTimeout(t.Context(), 60*time.Second)
		first := make(chan struct{})
		var once sync.Once
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := 0; i < 5000 && ctx.Err() == nil; i++ {
					res, err := cl.Call(ctx, "globex", "echo", json.RawMessage(fmt.Sprintf(`{"r":%d,"w":%d,"i":%d}`, round, w, i)))
					if err != nil {
						continue // refused or cut off by the kill: no answer was seen
					}
					var r wire.Receipt
					if err := json.Unmarshal(res.Receipt, &r); err != nil {
						t.Errorf("receipt: %v", err)
						return
					}
					mu.Lock()
					acked[r.RequestDigest()] = true
					mu.Unlock()
					once.Do(func() { close(first) })
				}
			})
		}
		select {
		case <-first:
		case <-ctx.Done():
			t.Fatalf("round %d: no call answered:\n%s", round, acme.Log())
		}
		// A random moment once calls flow: mid-send, mid-fsync, mid-answer.
		kill := time.NewTimer(time.Duration(rng.IntN(1000)) * time.Millisecond)
		select {
		case <-kill.C:
		case <-ctx.Done():
		}
		acme.Kill(t)
		stop()
		wg.Wait()
		out, errOut, code := acme.Run(t, "audit", "verify")
		if code != 0 || !strings.HasPrefix(out, "ok ") {
			t.Fatalf("round %d: audit verify after SIGKILL: exit %d %s %s", round, code, out, errOut)
		}
	}
	digests := func(n *testnet.Node, kind string) map[[32]byte]bool {
		var entries []struct {
			RequestDigest string `json:"request_digest"`
		}
		if err := json.Unmarshal([]byte(n.Must(t, "audit", "ls", "--kind", kind, "--json")), &entries); err != nil {
			t.Fatal(err)
		}
		set := map[[32]byte]bool{}
		for _, e := range entries {
			var d [32]byte
			if b, err := hex.DecodeString(e.RequestDigest); err == nil && len(b) == 32 {
				copy(d[:], b)
				set[d] = true
			}
		}
		return set
	}
	sent, completed, served := digests(acme, "call.sent"), digests(acme, "call.completed"), digests(globex, "call.served")
	for d := range acked {
		switch {
		case !sent[d]:
			t.Fatalf("answered call %x has no durable call.sent at the caller", d[:8])
		case !completed[d]:
			t.Fatalf("answered call %x has no durable call.completed at the caller", d[:8])
		case !served[d]:
			t.Fatalf("answered call %x has no call.served at the callee", d[:8])
		}
	}
	if len(acked) == 0 {
		t.Fatal("no call was answered")
	}
	open := 0
	for d := range sent {
		if !completed[d] {
			open++
		}
	}
	t.Logf("%d answered calls over %d kills, all with call.sent and call.completed durable; %d calls cut off by a kill after call.sent", len(acked), rounds, open)
}
