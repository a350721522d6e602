package audit

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// testKey derives a deterministic identity from a one-byte seed.
func testKey(t testing.TB, seed byte) identity.PrivateKey {
	t.Helper()
	k, err := identity.FromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// stepClock returns base, base+1ms, base+2ms, ... one step per call.
type stepClock struct {
	base time.Time
	n    atomic.Int64
}

func newStepClock() *stepClock {
	return &stepClock{base: time.Date(2025, 11, 28, 9, 0, 0, 0, time.UTC)}
}

func (c *stepClock) Now() time.Time {
	return c.base.Add(time.Duration(c.n.Add(1)) * time.Millisecond)
}

// openTest opens a log in a fresh temp dir; mod may adjust the config.
func openTest(t testing.TB, key identity.PrivateKey, mod func(*Config)) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	cfg := Config{Path: path, Identity: key, Now: newStepClock().Now}
	if mod != nil {
		mod(&cfg)
	}
	l, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

// sampleEntry is a varied, deterministic entry for index i.
func sampleEntry(i int) Entry {
	e := Entry{
		Kind:           []string{KindCallSent, KindCallServed, KindCallCompleted, KindCallRefused}[i%4],
		Peer:           fmt.Sprintf("did:key:z6MkPeer%d", i%3),
		Direction:      []string{"out", "in", "out", ""}[i%4],
		Capability:     fmt.Sprintf("review.code-%d", i),
		Outcome:        "ok",
		RequestDigest:  []byte{byte(i), 1, 2, 3},
		ResponseDigest: []byte{byte(i), 4, 5, 6},
		Report:         []byte(fmt.Sprintf(`{"action": "redact", "findings": [{"category":"email","start":%d}]}`, i)),
		Evidence:       []byte(fmt.Sprintf(`{"index":%d,"sig":"c2ln"}`, i*7)),
	}
	if i%5 != 4 {
		e.Content = []byte(fmt.Sprintf(`{"text":"sanitized content %d, with \"quotes\"\nand newline"}`, i))
	} else {
		e.ContentDigest = bytes.Repeat([]byte{byte(i)}, 32) // digest only
	}
	if i%4 == 3 {
		e.Outcome, e.Stage = "refused", "policy"
	}
	return e
}

func appendN(t testing.TB, l *Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		idx, err := l.Append(t.Context(), sampleEntry(i))
		if err != nil {
			t.Fatal(err)
		}
		if idx != uint64(i) {
			t.Fatalf("Append %d returned index %d", i, idx)
		}
	}
}

// rawDB opens the file with a plain read-write SQLite connection: the
// attacker's tool.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
