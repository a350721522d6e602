package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// endless answers 200 with a body that never ends (a JSON array of
// strings), written from one buffer until the client stops reading.
func endless(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	chunk := []byte(strings.Repeat(`"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",`, 2048))
	if _, err := w.Write([]byte("[")); err != nil {
		return
	}
	for r.Context().Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// TestAnswerOverBoundIsRefused: a node (or an impostor on its socket) that
// answers a read of its state or a change without end gets a typed error
// naming the bound, within a deadline, with no partial result and without
// the client reading, or allocating, anywhere near the 1 GiB a call's answer
// may take. Not parallel: it measures the process's allocations.
func TestAnswerOverBoundIsRefused(t *testing.T) {
	cl := fake(t, endless)
	for _, c := range []struct {
		method, path string
		do           func(context.Context) (any, error)
	}{
		{http.MethodGet, "/v1/peers", func(ctx context.Context) (any, error) { return cl.Peers(ctx) }},
		{http.MethodGet, "/v1/status", func(ctx context.Context) (any, error) { s, err := cl.Status(ctx); return s.ID, err }},
		{http.MethodGet, "/v1/kv/ls", func(ctx context.Context) (any, error) { return cl.KVList(ctx, "g", "") }},
		{http.MethodGet, "/v1/members", func(ctx context.Context) (any, error) { return cl.Members(ctx) }},
		{http.MethodPost, "/v1/kv/put", func(ctx context.Context) (any, error) {
			d, err := cl.KVPut(ctx, localapi.KVPutRequest{Group: "g", Key: "k", Value: "v"})
			return d.Index, err
		}},
	} {
		t.Run(strings.TrimPrefix(c.path, "/v1/"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got, err := c.do(ctx)
			runtime.ReadMemStats(&after)
			var tl *AnswerTooLargeError
			if !errors.As(err, &tl) {
				t.Fatalf("endless answer: %v (%v), want *AnswerTooLargeError", err, got)
			}
			if tl.Limit != maxStateAnswer || tl.Method != c.method || tl.Path != c.path {
				t.Fatalf("error %+v, want %s %s with limit %d", tl, c.method, c.path, maxStateAnswer)
			}
			if !strings.Contains(err.Error(), "over 32 MiB") {
				t.Errorf("message %q does not name the limit", err)
			}
			switch v := got.(type) {
			case []localapi.PeerInfo:
				if v != nil {
					t.Errorf("partial result %d peers", len(v))
				}
			case []string:
				if v != nil {
					t.Errorf("partial result %d keys", len(v))
				}
			case []localapi.MemberInfo:
				if v != nil {
					t.Errorf("partial result %d members", len(v))
				}
			}
			// The body is read up to the bound into a buffer grown by
			// append, whose copies add up to ~6 times the bound; unbounded,
			// the client would read a call's 1 GiB.
			if a := after.TotalAlloc - before.TotalAlloc; a > 8*maxStateAnswer {
				t.Errorf("allocated %d MiB reading an answer bounded at %d MiB", a>>20, maxStateAnswer>>20)
			}
		})
	}
}

// TestAnswerBounds: a call's answer and a peer's capability list keep the
// bound of a peer's body; motions ls has its own; every other answer the
// state bound.
func TestAnswerBounds(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/v1/call", maxRemoteAnswer},
		{http.MethodGet, "/v1/caps?peer=globex", maxRemoteAnswer},
		{http.MethodGet, "/v1/motions/ls?group=g", maxMotionList},
		{http.MethodGet, "/v1/motions/show?group=g&name=m", maxStateAnswer},
		{http.MethodGet, "/v1/call", maxStateAnswer},
		{http.MethodPost, "/v1/caps", maxStateAnswer},
		{http.MethodGet, "/v1/kv/ls?group=/v1/call", maxStateAnswer},
		{http.MethodGet, "/v1/decisions/export?group=g&index=1", maxStateAnswer},
		{http.MethodPost, "/v1/trust/set", maxStateAnswer},
	} {
		if got := answerBound(c.method, c.path); got != c.want {
			t.Errorf("answerBound(%s %s) = %d, want %d", c.method, c.path, got, c.want)
		}
	}
	if maxRemoteAnswer < 1<<30 {
		t.Errorf("maxRemoteAnswer %d is below limits.max_body_bytes' largest value, 1 GiB", maxRemoteAnswer)
	}
}

// TestHonestLargestAnswersPass: the largest answers a node can honestly
// give, as its encoder writes them (text of '<', each byte 6 in JSON), fit
// their bounds and are read whole.
func TestHonestLargestAnswersPass(t *testing.T) {
	t.Run("kv ls of 10,000 keys of 256 bytes", func(t *testing.T) {
		keys := make([]string, 10_000)
		for i := range keys {
			keys[i] = fmt.Sprintf("%s%05d", strings.Repeat("<", 256-5), i)
		}
		body := encode(t, localapi.KVList{Keys: keys, Truncated: true, Limit: 10_000})
		if len(body) < 14<<20 {
			t.Fatalf("worst kv ls is only %d bytes; the test does not test the bound", len(body))
		}
		cl := fake(t, answer(http.StatusOK, string(body)))
		got, err := cl.KVListAnswer(t.Context(), "g", "")
		if err != nil || len(got.Keys) != 10_000 || got.Keys[9_999] != keys[9_999] {
			t.Fatalf("kv ls of %d bytes: %d keys, %v", len(body), len(got.Keys), err)
		}
	})
	t.Run("motions ls over the state bound", func(t *testing.T) {
		// Many motions padded with white space, which decodes faster than
		// text under -race.
		one := strings.TrimSuffix(string(encode(t, worstMotion())), "\n")
		body := `{"motions":[` + strings.Repeat(one+",", 99) + one + `]}` + strings.Repeat(" ", maxStateAnswer)
		cl := fake(t, answer(http.StatusOK, body))
		got, err := cl.MotionList(t.Context(), "g")
		if err != nil || len(got) != 100 {
			t.Fatalf("motions ls of %d bytes: %d motions, %v", len(body), len(got), err)
		}
	})
	t.Run("a motion at its largest times the motions kept", func(t *testing.T) {
		// 1,024 open and 4,096 decided motions (fsm.MaxOpenMotions,
		// fsm.MaxDecidedMotions).
		one := len(encode(t, worstMotion()))
		if total := 5120 * (one + 1); total > maxMotionList {
			t.Fatalf("5,120 motions of %d bytes are %d MiB, over maxMotionList %d MiB", one, total>>20, maxMotionList>>20)
		}
	})
}

// TestCallAnswerOverStateBoundPasses: a call's output larger than any
// answer about the node's state still passes: its bound is the peer's body
// (limits.max_body_bytes, up to 1 GiB). TestAnswerBounds gives a peer's
// capability list the same bound.
func TestCallAnswerOverStateBoundPasses(t *testing.T) {
	// Padded with white space, which decodes faster than a long string
	// under -race.
	pad := strings.Repeat(" ", maxStateAnswer)
	cl := fake(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"output":{"text":"hello"},"receipt":{},"elapsed_ms":1}`+pad)
	})
	res, err := cl.Call(t.Context(), "globex", "echo", nil)
	if err != nil || string(res.Output) != `{"text":"hello"}` {
		t.Fatalf("call answer over %d bytes: %v", maxStateAnswer, err)
	}
}

// worstMotion is a motion at its largest: a 4 KiB text and a 64-byte name
// of '<', 128 votes, a long reason.
func worstMotion() localapi.MotionInfo {
	did := "did:key:z6MkfjrgudVXJVnJdJaURbACTmvc8PzsyzKa73BsHYZHXTiq"
	deadline := time.Now().UTC()
	m := localapi.MotionInfo{Name: strings.Repeat("<", 64), Kind: "remove-member", Subject: did, Proposer: did, Quorum: 128,
		Deadline: &deadline, Text: strings.Repeat("<", 4<<10), Outcome: "failed", Reason: strings.Repeat("<", 512),
		Opened: 1 << 62, Decided: 1 << 62, Yes: []string{}, No: []string{}}
	for range 64 {
		m.Yes = append(m.Yes, did)
		m.No = append(m.No, did)
	}
	return m
}

// encode is v as the node writes it (json.Encoder, HTML escaped).
func encode(t *testing.T, v any) []byte {
	t.Helper()
	var b strings.Builder
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return []byte(b.String())
}
