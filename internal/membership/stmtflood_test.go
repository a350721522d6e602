package membership

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/memberlist"

	"github.com/treaty-dev/treaty/internal/identity"
)

// TestStatementFloodIsBounded: any member can mint valid statements at will
// (a revocation signed by a fresh key is valid by construction), so the
// digests remembered for deduplication and the broadcasts waiting to be
// gossiped must both be bounded. Without the bounds both grew by one per
// statement: 3 x maxSeen statements left 3 x maxSeen digests and queued
// broadcasts.
func TestStatementFloodIsBounded(t *testing.T) {
	t.Parallel()
	m := newInspectOnly(t)
	m.cfg.MaxStatements = 4
	m.maxSeen, m.maxQueued = 16, 8
	m.queue = &memberlist.TransmitLimitedQueue{RetransmitMult: 4, NumNodes: func() int { return 8 }}
	signer := testKey(t, 7)
	var last []byte
	for i := range 3 * m.maxSeen {
		s, err := SignStatement(signer, "revoke", fmt.Appendf(nil, "statement %d", i))
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		last = b
		if fresh, err := m.acceptStatement(b); err != nil || !fresh {
			t.Fatalf("statement %d: fresh %v, err %v", i, fresh, err)
		}
	}
	m.mu.Lock()
	seen, kept := len(m.stmts), len(m.kept)
	m.mu.Unlock()
	if seen > m.maxSeen {
		t.Errorf("%d statement digests remembered, want at most %d", seen, m.maxSeen)
	}
	if kept != m.cfg.MaxStatements {
		t.Errorf("%d statements kept, want MaxStatements %d", kept, m.cfg.MaxStatements)
	}
	if q := m.queue.NumQueued(); q > m.maxQueued {
		t.Errorf("%d broadcasts queued, want at most %d", q, m.maxQueued)
	}
	// A kept statement stays known across the reset: seeing it again is not
	// news (it is not kept or broadcast twice).
	if fresh, err := m.acceptStatement(last); err != nil || fresh {
		t.Errorf("kept statement seen again: fresh %v, err %v", fresh, err)
	}
}

// TestKeptStoreIsFairUnderFlood: a member that floods gossip with valid
// statements (say revocations of keys it made) displaces its own from the
// store kept for later joiners, not other members': a statement kept before
// the flood, and one published after it, are both handed to later joiners.
// Without this the store, once full, refused every later statement, so one
// burst kept a real revocation from later joiners.
func TestKeptStoreIsFairUnderFlood(t *testing.T) {
	t.Parallel()
	m := newInspectOnly(t)
	m.cfg.MaxStatements = 8
	m.queue = &memberlist.TransmitLimitedQueue{RetransmitMult: 4, NumNodes: func() int { return 8 }}
	honest, flooder := testKey(t, 1), testKey(t, 2)
	publish := func(k identity.PrivateKey, body string) Statement {
		t.Helper()
		s, err := SignStatement(k, "revoke", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if fresh, err := m.acceptStatement(b); err != nil || !fresh {
			t.Fatalf("%s: fresh %v, err %v", body, fresh, err)
		}
		return s
	}
	before := publish(honest, "before the flood")
	for i := range 200 {
		publish(flooder, fmt.Sprintf("flood %d", i))
	}
	after := publish(honest, "after the flood")
	kept := m.Statements()
	if len(kept) != m.cfg.MaxStatements {
		t.Fatalf("%d kept, want %d", len(kept), m.cfg.MaxStatements)
	}
	for _, want := range []Statement{before, after} {
		if !slices.ContainsFunc(kept, func(s Statement) bool { return bytes.Equal(s.Body, want.Body) }) {
			t.Errorf("%q not kept for later joiners after the flood", want.Body)
		}
	}
}
