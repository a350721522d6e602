package membership

import (
	"fmt"
	"testing"

	"github.com/hashicorp/memberlist"
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
	var first []byte
	for i := range 3 * m.maxSeen {
		s, err := SignStatement(signer, "revoke", fmt.Appendf(nil, "statement %d", i))
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = b
		}
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
	if fresh, err := m.acceptStatement(first); err != nil || fresh {
		t.Errorf("kept statement seen again: fresh %v, err %v", fresh, err)
	}
}
