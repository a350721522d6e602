package node

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/wire"
)

// An answer signed ahead (while call.served is committed) is used only for
// exactly that answer; any other answer is signed when it is sent, so every
// answer's signature covers what was sent.
func TestSignAheadOnlyForThatAnswer(t *testing.T) {
	caller, _ := identity.FromSeed(bytes.Repeat([]byte{1}, 32))
	callee, _ := identity.FromSeed(bytes.Repeat([]byte{2}, 32))
	now := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	req, _ := http.NewRequest(http.MethodPost, "https://x/v1/call/echo", nil)
	sent, err := wire.SignRequest(req, []byte(`{}`), wire.SignParams{Key: caller, Audience: callee.Public(), Capability: "echo", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	in := &inbound{n: &Node{key: callee, now: func() time.Time { return now }}, req: wire.Request{Signature: sent.Signature}}
	planned := []byte(`{"out":"planned"}`)
	in.ahead = in.signAhead(http.StatusOK, planned)
	<-in.ahead.done

	for _, tc := range []struct {
		name   string
		status int
		body   []byte
		ahead  bool
	}{
		{"the planned answer", http.StatusOK, planned, true},
		{"another body", http.StatusOK, []byte(`{"out":"other"}`), false},
		{"another status", http.StatusServiceUnavailable, planned, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if err := in.signAnswer(h, tc.status, tc.body); err != nil {
				t.Fatal(err)
			}
			if _, err := wire.VerifyResponse(&http.Response{StatusCode: tc.status, Header: h}, tc.body, sent, callee.Public()); err != nil {
				t.Fatalf("answer's signature does not verify: %v", err)
			}
			if got := h.Get(wire.HeaderSignature) == in.ahead.h.Get(wire.HeaderSignature); got != tc.ahead {
				t.Fatalf("signature made ahead used: %v, want %v", got, tc.ahead)
			}
		})
	}
}
