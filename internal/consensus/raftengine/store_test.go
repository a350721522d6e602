package raftengine

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// TestStoreLogAndStable: the LogStore and StableStore contract raft relies
// on, across a reopen (what a restart sees).
func TestStoreLogAndStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := openStore(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if first, _ := s.FirstIndex(); first != 0 {
		t.Fatalf("empty store: first %d", first)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}, Extensions: []byte("x")})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v, raft needs \"not found\"", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	s.close()

	s, err = openStore(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 4 || last != 10 {
		t.Fatalf("after reopen: first %d last %d, want 4 and 10", first, last)
	}
	var l raft.Log
	if err := s.GetLog(2, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted entry: %v", err)
	}
	if err := s.GetLog(5, &l); err != nil || l.Term != 1 || !bytes.Equal(l.Data, []byte{5}) || string(l.Extensions) != "x" {
		t.Fatalf("entry 5: %+v %v", l, err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("term: %d %v", v, err)
	}
}

// TestStoreRecords: records stored in batches are found by index, runs with
// different groups split, and a replay that stores overlapping batches
// leaves every record readable.
func TestStoreRecords(t *testing.T) {
	s, err := openStore(context.Background(), filepath.Join(t.TempDir(), "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	rec := func(i uint64, g string) storedRecord {
		return storedRecord{index: i, group: []byte(g), time: int64(i * 10), req: []byte{byte(i)}, res: []byte(`{"Index":1}`)}
	}
	if err := s.putRecords([]storedRecord{rec(1, "g0"), rec(2, "g0"), rec(3, "g1"), rec(4, "g1")}); err != nil {
		t.Fatal(err)
	}
	// A replay from index 2 in other batch bounds.
	if err := s.putRecords([]storedRecord{rec(2, "g0"), rec(3, "g1")}); err != nil {
		t.Fatal(err)
	}
	if err := s.putRecords([]storedRecord{rec(5, "g1")}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := uint64(1); i <= 5; i++ {
		r, found, err := s.record(ctx, i)
		want := rec(i, "g1")
		if i <= 2 {
			want = rec(i, "g0")
		}
		if err != nil || !found || r.index != i || r.time != want.time || !bytes.Equal(r.req, want.req) || !bytes.Equal(r.group, want.group) {
			t.Fatalf("record %d: %+v found=%v err=%v", i, r, found, err)
		}
	}
	if _, found, err := s.record(ctx, 6); found || err != nil {
		t.Fatalf("record 6: found=%v err=%v", found, err)
	}
	if last, err := s.lastRecord(ctx); last != 5 || err != nil {
		t.Fatalf("last record %d %v", last, err)
	}
	// A store without a mark starts it at its last record.
	if m, c, err := s.delivered(ctx); m != 5 || c != 0 || err != nil {
		t.Fatalf("delivered mark %d/%d %v, want 5/0", m, c, err)
	}
	if err := s.setMark(4, 77); err != nil {
		t.Fatal(err)
	}
	if m, c, err := s.delivered(ctx); m != 4 || c != 77 || err != nil {
		t.Fatalf("delivered mark %d/%d %v, want 4/77", m, c, err)
	}
}
