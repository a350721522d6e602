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

// endlessNode streams one event, then nothing until the call is cancelled,
// as a peer's slow stream would; its calls never answer either.
type endlessNode struct{ *fakeNode }

func (e endlessNode) Stream(ctx context.Context, _, _ string, _ json.RawMessage, emit func(json.RawMessage) error) error {
	if err := emit(json.RawMessage(`{"tick":1}`)); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestTaskTimeout: a task whose call or stream does not end is failed at
// stage transport once it passes Options.TaskTimeout, saying so; a2a-go would
// otherwise run it (and hold one of the MaxConcurrent slots) for ever, even
// after its client left.
func TestTaskTimeout(t *testing.T) {
	g := &gatedNode{fakeNode: newFake(), started: make(chan struct{}, 1), gate: make(chan struct{})}
	t.Cleanup(func() { close(g.gate) })
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer srv.Close()
	b, err := New(Options{Node: nodeOf{call: g, stream: endlessNode{g.fakeNode}, fakeNode: g.fakeNode}, URL: srv.URL + "/", TaskTimeout: 300 * time.Millisecond})
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
	for _, skill := range []string{"globex__echo", "globex__ticks"} {
		start := time.Now()
		task := send(t, c, map[string]any{MetaSkill: skill})
		if task.Status.State != a2a.TaskStateFailed || !strings.Contains(statusText(task), "stage transport: no answer within the task limit of 300ms") {
			t.Fatalf("%s: %s %q", skill, task.Status.State, statusText(task))
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("%s: the task ended after %v", skill, d)
		}
	}
	if _, err := New(Options{Node: newFake(), URL: "http://x/", TaskTimeout: -1}); err == nil || !strings.Contains(err.Error(), "Options.TaskTimeout") {
		t.Fatalf("a negative TaskTimeout: %v", err)
	}
}

// nodeOf takes its calls from call and its streams from stream.
type nodeOf struct {
	*fakeNode
	call   *gatedNode
	stream endlessNode
}

func (n nodeOf) Call(ctx context.Context, peer, capability string, input json.RawMessage) (*localapi.CallResponse, error) {
	return n.call.Call(ctx, peer, capability, input)
}

func (n nodeOf) Stream(ctx context.Context, peer, capability string, input json.RawMessage, emit func(json.RawMessage) error) error {
	return n.stream.Stream(ctx, peer, capability, input, emit)
}
