package raftengine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// TestForwardHostile: what a member sends on the forwarding stream is
// checked: malformed request bytes are agreed as a refusal (not a crash),
// an oversized frame, an unknown request kind and an unknown stream byte
// close that connection only, and the leader keeps serving.
func TestForwardHostile(t *testing.T) {
	tc := newCluster(t, 3)
	lead := tc.leader(20 * time.Second)
	from := (lead + 1) % 3
	leaderKey := tc.c.Keys[lead].Public()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(kind byte) *conn {
		c, err := tc.engine(from).mux.dial(ctx, leaderKey, kind)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		return c
	}
	closed := func(c *conn) {
		t.Helper()
		_, _, _, err := readFrame(c, maxResponseFrame)
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("connection not closed by the leader: %v", err)
		}
	}

	c := dial(streamForward)
	if err := writeFrame(c, kindPropose, 1, []byte("not a request")); err != nil {
		t.Fatal(err)
	}
	status, id, body, err := readFrame(c, maxResponseFrame)
	if err != nil || status != statusOK || id != 1 || len(body) < 16 {
		t.Fatalf("answer: status %d id %d err %v", status, id, err)
	}
	var res fsm.Result
	if err := json.Unmarshal(body[16:], &res); err != nil || res.Code != fsm.CodeMalformed {
		t.Fatalf("malformed request: %+v %v", res, err)
	}

	c = dial(streamForward)
	_, _ = c.Write(binary.BigEndian.AppendUint32(nil, maxRequestFrame+1))
	closed(c)

	c = dial(streamForward)
	_ = writeFrame(c, 99, 1, nil)
	closed(c)

	c = dial('x')
	closed(c)

	a := tc.propose(from, fsm.Put("still", []byte("serving")))
	tc.converge(a.Index, 20*time.Second)
}
