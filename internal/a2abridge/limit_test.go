package a2abridge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/treaty-dev/treaty/localapi"
)

// gatedNode holds every call until gate closes.
type gatedNode struct {
	*fakeNode
	started chan struct{}
	gate    chan struct{}
}

func (g *gatedNode) Call(ctx context.Context, peer, capability string, input json.RawMessage) (*localapi.CallResponse, error) {
	select {
	case g.started <- struct{}{}:
	default:
	}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.fakeNode.Call(ctx, peer, capability, input)
}

// TestConcurrentTasksBounded: with MaxConcurrent calls in flight, a further
// task is refused at once rather than queued, and the bridge serves again
// when they end (the README's "64 tasks at once"). The refusal says why: a2a-go
// alone answers "internal error".
func TestConcurrentTasksBounded(t *testing.T) {
	g := &gatedNode{fakeNode: newFake(), started: make(chan struct{}, MaxConcurrent+1), gate: make(chan struct{})}
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer srv.Close()
	b, err := New(Options{Node: g, URL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if h, err = b.HTTPHandler(testToken); err != nil {
		t.Fatal(err)
	}
	c := clientFor(t, srv.URL)
	noWait := false
	sendAsync := func() (a2a.SendMessageResult, error) {
		msg := a2a.NewMessage(a2a.MessageRoleUser)
		msg.Metadata = map[string]any{MetaSkill: "globex__echo"}
		return c.SendMessage(t.Context(), &a2a.MessageSendParams{Message: msg, Config: &a2a.MessageSendConfig{Blocking: &noWait}})
	}
	for i := range MaxConcurrent {
		if _, err := sendAsync(); err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
	deadline := time.After(10 * time.Second)
	for range MaxConcurrent {
		select {
		case <-g.started:
		case <-deadline:
			t.Fatal("the tasks did not all start within 10 s")
		}
	}
	if _, err := sendAsync(); err == nil || !strings.Contains(err.Error(), "64 tasks are executing, the most at once") {
		t.Fatalf("task %d beyond the bound: %v, want a refusal", MaxConcurrent+1, err)
	}
	close(g.gate)
	// Served again once the calls end.
	yes := true
	for {
		msg := a2a.NewMessage(a2a.MessageRoleUser)
		msg.Metadata = map[string]any{MetaSkill: "globex__echo"}
		res, err := c.SendMessage(t.Context(), &a2a.MessageSendParams{Message: msg, Config: &a2a.MessageSendConfig{Blocking: &yes}})
		if task, ok := res.(*a2a.Task); err == nil && ok && task.Status.State == a2a.TaskStateCompleted {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("the bridge did not serve again within 10 s: %v", err)
		default:
		}
	}
}
