package node

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/home"
)

// A call's call.sent rides with its call.completed (docs/adr/0019): when
// Call, Stream or a failed Call returns, both entries are durable and
// readable, and sequential calls cost the caller's log about one commit each
// rather than two.
func TestCallSentRidesWithCompleted(t *testing.T) {
	caller, _ := pairNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := caller.Call(ctx, "callee", "echo", []byte(`{"warm":true}`)); err != nil {
		t.Fatal(err)
	}
	// both fails unless the caller's log holds call.sent and call.completed
	// for the request digest dig.
	both := func(t *testing.T, dig []byte) {
		t.Helper()
		for _, kind := range []string{audit.KindCallSent, audit.KindCallCompleted} {
			es, err := caller.audit.List(ctx, audit.Filter{Kind: kind, Reverse: true, Limit: 4})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range es {
				found = found || bytes.Equal(e.RequestDigest, dig)
			}
			if !found {
				t.Fatalf("no durable %s for the call that just returned", kind)
			}
		}
	}

	const calls = 20
	before := caller.audit.Stats()
	for i := range calls {
		res, err := caller.Call(ctx, "callee", "echo", []byte(`{"i":1}`))
		if err != nil {
			t.Fatal(err)
		}
		e, err := caller.audit.Get(ctx, res.AuditIndex)
		if err != nil || e.Kind != audit.KindCallCompleted {
			t.Fatalf("call %d: entry %d is %q, %v", i, res.AuditIndex, e.Kind, err)
		}
		both(t, e.RequestDigest)
	}
	after := caller.audit.Stats()
	if got := after.Entries - before.Entries; got < 2*calls {
		t.Fatalf("%d entries for %d calls", got, calls)
	}
	// Two commits per call before ADR 19; the witness's occasional work may
	// add a few.
	if got := after.Commits - before.Commits; got > calls+calls/2 {
		t.Fatalf("%d commits for %d sequential calls, want about one per call", got, calls)
	}
	t.Logf("%d sequential calls: %d entries in %d commits", calls, after.Entries-before.Entries, after.Commits-before.Commits)

	var events int
	if err := caller.Stream(ctx, "callee", "ticks", []byte(`{}`), func(json.RawMessage) error { events++; return nil }); err != nil || events != 1 {
		t.Fatalf("stream: %d events, %v", events, err)
	}
	last, err := caller.audit.List(ctx, audit.Filter{Kind: audit.KindCallCompleted, Reverse: true, Limit: 1})
	if err != nil || len(last) != 1 || last[0].Capability != "ticks" {
		t.Fatalf("stream's call.completed: %v, %v", last, err)
	}
	both(t, last[0].RequestDigest)

	// A call that fails after call.sent was handed over still leaves both.
	gone := "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	if err := home.AddPeer(caller.Home(), "gone", "127.0.0.1:1", gone); err != nil {
		t.Fatal(err)
	}
	if err := caller.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.Call(ctx, "gone", "echo", []byte(`{}`)); err == nil {
		t.Fatal("call to an unreachable peer succeeded")
	}
	es, err := caller.audit.List(ctx, audit.Filter{Peer: gone})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, e := range es {
		kinds[e.Kind] = true
	}
	if !kinds[audit.KindCallSent] || !kinds[audit.KindCallCompleted] {
		t.Fatalf("failed call left %v, want call.sent and call.completed", kinds)
	}
}
