package audit

import (
	"bytes"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// memHashes is an in-memory tlog.HashReader.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m[x]
	}
	return out, nil
}

// TestTreeMatchesTlog checks the incremental right-edge tree against tlog's
// reference functions: the same stored hashes per record and the same root.
func TestTreeMatchesTlog(t *testing.T) {
	var tr tree
	var stored memHashes
	for n := 0; n < 600; n++ {
		if got, _ := tlog.TreeHash(int64(n), stored); tr.root() != got {
			t.Fatalf("root of %d leaves: got %x want %x", n, tr.root(), got)
		}
		leaf := []byte{byte(n), byte(n >> 8)}
		lh := tlog.RecordHash(leaf)
		want, err := tlog.StoredHashesForRecordHash(int64(n), lh, stored)
		if err != nil {
			t.Fatal(err)
		}
		got := tr.add(lh, nil)
		var wantB []byte
		for _, h := range want {
			wantB = append(wantB, h[:]...)
		}
		if !bytes.Equal(got, wantB) || len(got) != storedLen(uint64(n)) {
			t.Fatalf("record %d: stored hashes differ", n)
		}
		stored = append(stored, want...)
	}
	if var0 := (tree{}); emptyRoot != var0.root() {
		t.Fatal("empty root")
	}
}

func TestLeafHasherMatchesRecordHash(t *testing.T) {
	h := newLeafHasher()
	for _, leaf := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("ab"), 1000)} {
		if h.sum(leaf) != tlog.RecordHash(leaf) {
			t.Fatalf("leaf %q", leaf)
		}
	}
}
