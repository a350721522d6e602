package audit

import (
	"errors"
	"slices"
	"testing"
)

// TestVerifyCatchesIndexColumnOfAnotherType: the index columns are compared
// by List as TEXT. An attacker who rebuilds the entries table without STRICT
// can store an entry's peer_key and rare_kind as BLOBs with the same bytes:
// List's `peer_key = ?` and `rare_kind = ?` then never match the entry (it is
// hidden), so Verify must refuse a column that is not TEXT, not only one
// whose bytes differ.
func TestVerifyCatchesIndexColumnOfAnotherType(t *testing.T) {
	const n, hidden = 12, 3 // entry 3: peer did:key:z6MkPeer0, kind call.refused (a rare kind)
	for _, col := range []string{"peer_key", "rare_kind"} {
		t.Run(col, func(t *testing.T) {
			k := testKey(t, 1)
			l, path := openTest(t, k, nil)
			appendN(t, l, 0, n)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			db := rawDB(t, path)
			for _, q := range []string{
				`CREATE TABLE e2 (idx INTEGER PRIMARY KEY, leaf TEXT NOT NULL, content BLOB, hashes BLOB NOT NULL,
					peer_key TEXT NOT NULL DEFAULT '', rare_kind TEXT)`,
				`INSERT INTO e2 SELECT idx, leaf, content, hashes, peer_key, rare_kind FROM entries`,
				`DROP VIEW entry_fields`,
				`DROP TABLE entries`,
				`ALTER TABLE e2 RENAME TO entries`,
				`CREATE INDEX entries_by_peer ON entries (peer_key)`,
				`CREATE INDEX entries_by_rare_kind ON entries (rare_kind) WHERE rare_kind IS NOT NULL`,
				`UPDATE entries SET ` + col + ` = CAST(` + col + ` AS BLOB) WHERE idx = 3`,
			} {
				mustExec(t, db, q)
			}
			db.Close()

			// The tamper hides the entry from List.
			r, err := OpenReader(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			f := Filter{Peer: sampleEntry(hidden).Peer}
			if col == "rare_kind" {
				f = Filter{Kind: sampleEntry(hidden).Kind}
			}
			es, err := r.List(t.Context(), f)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(es, func(e Entry) bool { return e.Index == hidden }) {
				t.Fatalf("List %+v still finds entry %d: the tamper is not what this test needs", f, hidden)
			}

			_, err = Verify(t.Context(), path, k.Public())
			var be *BadEntryError
			if !errors.As(err, &be) || !errors.Is(err, ErrTampered) || be.Index != hidden {
				t.Fatalf("Verify after storing %s of entry %d as a BLOB: %v, want a *BadEntryError at %d", col, hidden, err, hidden)
			}
		})
	}
}
