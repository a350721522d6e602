package audit

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testdata/audit-v1-4k.db was made by the code before the short indexes
// (4 KiB pages, full-width time and peer indexes): 40 sampleEntry entries
// by testKey(7), CheckpointEvery 8, the stepClock times.
const oldFixture = "testdata/audit-v1-4k.db"

func copyFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(oldFixture)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func indexNames(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entries' AND sql IS NOT NULL ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	return strings.Join(names, ",")
}

// queryPlan is SQLite's plan for q, one detail per line.
func queryPlan(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.Query(`EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	return b.String()
}

func TestOldLogUpgradesAndVerifies(t *testing.T) {
	key := testKey(t, 7)
	path := copyFixture(t)
	// The old file verifies with this code before it is opened for writing.
	res, err := Verify(t.Context(), path, key.Public())
	if err != nil {
		t.Fatalf("old log before upgrade: %v", err)
	}
	if res.Entries != 40 {
		t.Fatalf("old log has %d entries, want 40", res.Entries)
	}
	oldRoot := res.Root
	if got := indexNames(t, rawDB(t, path)); got != "entries_kind,entries_peer,entries_time" {
		t.Fatalf("fixture indexes %q: not the old schema", got)
	}

	clock := newStepClock()
	clock.n.Store(1000) // after the fixture's times
	l, err := Open(t.Context(), Config{Path: path, Identity: key, Now: clock.Now, CheckpointEvery: 8})
	if err != nil {
		t.Fatalf("open old log: %v", err)
	}
	appendN(t, l, 40, 10)
	peer := sampleEntry(1).Peer
	got, err := l.List(t.Context(), Filter{Peer: peer})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 17 { // i%3 == 1 for i in [0, 50)
		t.Fatalf("List by peer: %d entries, want 17", len(got))
	}
	for _, e := range got {
		if e.Peer != peer {
			t.Fatalf("List by peer returned entry %d of %s", e.Index, e.Peer)
		}
	}
	for kind, want := range map[string]int{KindCallRefused: 12, KindCallSent: 13} {
		got, err := l.List(t.Context(), Filter{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Fatalf("List kind %s: %d entries, want %d", kind, len(got), want)
		}
		for _, e := range got {
			if e.Kind != kind {
				t.Fatalf("List kind %s returned entry %d of kind %s", kind, e.Index, e.Kind)
			}
		}
	}
	since := clock.base.Add(1000 * 1e6)
	got, err = l.List(t.Context(), Filter{Since: since})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 || got[0].Index != 40 {
		t.Fatalf("List since the upgrade: %d entries from %v, want 10 from 40", len(got), got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	db := rawDB(t, path)
	if got := indexNames(t, db); got != "entries_by_peer,entries_by_rare_kind" {
		t.Fatalf("indexes after upgrade %q", got)
	}
	res, err = VerifyWith(t.Context(), path, key.Public(), VerifyOptions{Checkpoints: [][]byte{mustHeadNote(t, oldFixture)}})
	if err != nil {
		t.Fatalf("upgraded log: %v", err)
	}
	if res.Entries != 50 || len(res.Given) != 1 || !res.Given[0].Checked || res.Given[0].Root != oldRoot {
		t.Fatalf("upgraded log: %v", res)
	}
}

// mustHeadNote is the head checkpoint note stored in the log at path.
func mustHeadNote(t *testing.T, path string) []byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, msg, err := readHead(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestNewLogPagesAndIndexes(t *testing.T) {
	l, path := openTest(t, testKey(t, 1), nil)
	appendN(t, l, 0, 12)
	db := rawDB(t, path)
	var ps int
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&ps); err != nil {
		t.Fatal(err)
	}
	if ps != pageSize {
		t.Fatalf("page_size %d, want %d", ps, pageSize)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q (%v), want wal", mode, err)
	}
	// Ad-hoc queries read the fields through the view.
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM entry_fields WHERE peer = 'did:key:z6MkPeer1' AND kind = 'call.served'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("entry_fields: %d rows (%v), want 1 (entry 1)", n, err)
	}
	// The filters List writes use the short indexes.
	for _, c := range []struct{ where, arg, index string }{
		{"peer_key = ?1 AND json_extract(leaf, '$.peer') = ?2", string(peerKey([]byte("did:key:z6MkPeer1"))), "entries_by_peer"},
		{"rare_kind = ?1", KindCallRefused, "entries_by_rare_kind"},
	} {
		plan := queryPlan(t, db, `SELECT idx FROM entries WHERE `+c.where+` ORDER BY idx`, c.arg, "did:key:z6MkPeer1")
		if !strings.Contains(plan, c.index) {
			t.Errorf("WHERE %s: plan %q does not use %s", c.where, plan, c.index)
		}
	}
}

// TestShortIndexLogUpgrades upgrades a log of the schema before the index
// columns, with its indexes on JSON expressions (substr(peer, 13, 10) and the
// partial kind index), rebuilt here from a new log.
func TestShortIndexLogUpgrades(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, nil)
	appendN(t, l, 0, 30)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	for _, q := range []string{
		`DROP VIEW entry_fields`, `DROP INDEX entries_by_peer`, `DROP INDEX entries_by_rare_kind`,
		`ALTER TABLE entries DROP COLUMN peer_key`, `ALTER TABLE entries DROP COLUMN rare_kind`,
		`CREATE INDEX entries_peer_key ON entries (substr(peer, 13, 10))`,
		`CREATE INDEX entries_rare_kind ON entries (kind) WHERE kind NOT IN ('call.sent', 'call.served', 'call.completed')`,
	} {
		if strings.HasPrefix(q, "CREATE INDEX entries_peer_key") {
			for _, c := range []string{"time", "kind", "peer", "direction", "capability", "outcome", "stage",
				"request_digest", "response_digest", "content_digest", "report", "evidence"} {
				mustExec(t, db, `ALTER TABLE entries ADD COLUMN `+c+` TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.`+c+`')) VIRTUAL`)
			}
		}
		mustExec(t, db, q)
	}
	db.Close()
	before, err := Verify(t.Context(), path, key.Public())
	if err != nil {
		t.Fatalf("short-index log before upgrade: %v", err)
	}
	r, err := OpenReader(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.List(t.Context(), Filter{Peer: sampleEntry(2).Peer, Kind: KindCallRefused})
	r.Close()
	if err != nil || len(got) != 2 { // i%3 == 2 and i%4 == 3 for i in [0, 30): 11 and 23
		t.Fatalf("List on the log before upgrade: %d entries, %v", len(got), err)
	}

	oldNote := mustHeadNote(t, path)
	l, err = Open(t.Context(), Config{Path: path, Identity: key, Now: newStepClock().Now})
	if err != nil {
		t.Fatalf("open short-index log: %v", err)
	}
	appendN(t, l, 30, 6)
	for kind, want := range map[string]int{KindCallRefused: 9, KindCallSent: 9} {
		got, err := l.List(t.Context(), Filter{Kind: kind})
		if err != nil || len(got) != want {
			t.Fatalf("List kind %s after upgrade: %d entries (%v), want %d", kind, len(got), err, want)
		}
	}
	got, err = l.List(t.Context(), Filter{Peer: sampleEntry(2).Peer})
	if err != nil || len(got) != 12 {
		t.Fatalf("List by peer after upgrade: %d entries (%v), want 12", len(got), err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := indexNames(t, rawDB(t, path)); got != "entries_by_peer,entries_by_rare_kind" {
		t.Fatalf("indexes after upgrade %q", got)
	}
	res, err := VerifyWith(t.Context(), path, key.Public(), VerifyOptions{Checkpoints: [][]byte{oldNote}})
	if err != nil || res.Entries != 36 || len(res.Given) != 1 || res.Given[0].Root != before.Root {
		t.Fatalf("upgraded log: %v %v", res, err)
	}
	// No row was rewritten: the older ones keep the defaults, which Verify
	// requires of them.
	db = rawDB(t, path)
	var from string
	var filled int
	if err := db.QueryRow(`SELECT value FROM meta WHERE key = 'indexed_from'`).Scan(&from); err != nil || from != "30" {
		t.Fatalf("indexed_from %q (%v), want 30", from, err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM entries WHERE idx < 30 AND (peer_key != '' OR rare_kind IS NOT NULL)`).Scan(&filled); err != nil || filled != 0 {
		t.Fatalf("%d older rows rewritten (%v)", filled, err)
	}
	mustExec(t, db, `UPDATE entries SET rare_kind = 'call.refused' WHERE idx = 7`)
	var bad *BadEntryError
	if _, err := Verify(t.Context(), path, key.Public()); !errors.As(err, &bad) || bad.Index != 7 {
		t.Fatalf("index column set on an older row: %v", err)
	}
}

// TestPeerKeyIsSQLiteSubstr: the writer computes peer_key in Go, the upgrade
// in SQL; both must give the same characters, multi-byte ones included.
func TestPeerKeyIsSQLiteSubstr(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, p := range []string{"", "did:key:z6M", "did:key:z6Mk", "did:key:z6MkA", "did:key:z6MkhaXgBZDvotDkL5257",
		"déd:kéy:z6Mkhé€𝄞xyzabc", "ééééééééééééééééééé", "did:key:z6Mk\u00e9\u20ac\U0001d11e"} {
		var want string
		if err := db.QueryRow(`SELECT substr(?, 13, 6)`, p).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if got := string(peerKey([]byte(p))); got != want {
			t.Errorf("peerKey(%q) = %q, SQLite substr %q", p, got, want)
		}
	}
}

// TestOddPeerIndexed: a peer and kind that need escaping in the leaf, with
// multi-byte characters in the key's six, are indexed as the leaf says:
// Verify accepts the columns and List finds the entry.
func TestOddPeerIndexed(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, nil)
	appendN(t, l, 0, 3)
	e := sampleEntry(3)
	e.Kind, e.Peer = "k\"ind\t", "did:key:z6Mk\"é\\\n\x01𝄞xyz"
	if _, err := l.Append(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	for _, f := range []Filter{{Peer: e.Peer}, {Kind: e.Kind}} {
		got, err := l.List(t.Context(), f)
		if err != nil || len(got) != 1 || got[0].Index != 3 {
			t.Fatalf("List %+v: %v, %v", f, got, err)
		}
	}
	l.Close()
	if _, err := Verify(t.Context(), path, key.Public()); err != nil {
		t.Fatal(err)
	}
}
