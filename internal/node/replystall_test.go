package node_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/wire"
)

// A peer that never reads an answer larger than its flow-control window
// does not hold the call (its concurrency slot, a handler) past
// limits.call_timeout: the write of the answer waited on it for ever.
func TestStalledReaderOfAnAnswerReleasesItsSlot(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	server := startNode(t, "server", quiet, nil)
	big := bytes.Repeat([]byte("x"), 6<<20) // more than the caller's stream window (4 MiB)
	must(t, server.Register(node.Handler{Info: node.CapabilityInfo{Name: "big"}, Backend: backend.Func(func(context.Context, backend.Invocation) ([]byte, error) {
		return append(append([]byte(`{"pad":"`), big...), `"}`...), nil
	})}))
	must(t, server.Register(node.Handler{Info: node.CapabilityInfo{Name: "echo"}, Backend: backend.Func(func(_ context.Context, inv backend.Invocation) ([]byte, error) {
		return inv.Input, nil
	})}))
	key, err := identity.Generate(nil)
	must(t, err)
	must(t, home.AddPeer(server.Home(), "mallory", "127.0.0.1:1", key.Public().String()))
	for _, c := range []string{"big", "echo"} {
		_, err := home.Grant(server.Home(), "mallory", c)
		must(t, err)
	}
	f, err := os.OpenFile(filepath.Join(server.Home(), config.FileName), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = fmt.Fprintf(f, "limits:\n  max_body_bytes: 33554432\n  call_timeout: 2s\nbudget:\n  rules:\n    - peer: %s\n      dir: in\n      concurrency: 1\n", key.Public())
	must(t, err)
	must(t, f.Close())
	must(t, server.Reload())
	a := newClient(t, key, server)
	a.client.Timeout = 0 // only the server may end the stalled call
	call := func(capName string) (*http.Response, error) {
		body := []byte(`{}`)
		req, _ := http.NewRequest(http.MethodPost, transport.PeerURL(a.target, "/v1/call/"+capName), bytes.NewReader(body))
		if _, err := wire.SignRequest(req, body, wire.SignParams{Key: a.key, Audience: a.target, Capability: capName, Now: time.Now()}); err != nil {
			return nil, err
		}
		return a.client.Do(req)
	}
	resp, err := call("big")
	must(t, err)
	defer resp.Body.Close() // never read
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("big: status %d %s", resp.StatusCode, b)
	}
	// Polled slowly: each refusal spends the caller's allowance of refused
	// requests (100, then 1/s).
	poll(t, 15*time.Second, 300*time.Millisecond, func() error {
		r, err := call("echo")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			return fmt.Errorf("echo refused while the answer stalls: %d %s", r.StatusCode, b)
		}
		return nil
	})
}
