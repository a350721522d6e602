package audit

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// TestRowReaderMatchesDatabaseSQL checks that Verify's reader below
// database/sql sees exactly what the driver sees: the same leaves, stored
// hashes and missing content on an intact log, and the same first failure
// on each kind of tampered row, including content set to an empty blob.
func TestRowReaderMatchesDatabaseSQL(t *testing.T) {
	const n = 40
	tamper := []struct {
		name string
		sql  string
	}{
		{"intact", ``},
		{"content emptied", `UPDATE entries SET content = x'' WHERE idx = 7`},
		{"content nulled", `UPDATE entries SET content = NULL WHERE idx = 8`},
		{"content edited", `UPDATE entries SET content = x'00' WHERE idx = 11`},
		{"leaf edited", `UPDATE entries SET leaf = replace(leaf, 'review', 'reviwe') WHERE idx = 12`},
		{"hashes cut", `UPDATE entries SET hashes = substr(hashes, 1, 16) WHERE idx = 13`},
		{"row deleted", `DELETE FROM entries WHERE idx = 20`},
		{"row moved", `UPDATE entries SET idx = 100 WHERE idx = 21`},
		{"peer key edited", `UPDATE entries SET peer_key = 'xxxxxx' WHERE idx = 23`},
		{"rare kind set", `UPDATE entries SET rare_kind = 'call.sent' WHERE idx = 24`},
		{"rare kind cleared", `UPDATE entries SET rare_kind = NULL WHERE idx = 27`},
	}
	for _, tc := range tamper {
		t.Run(tc.name, func(t *testing.T) {
			l, path := openTest(t, testKey(t, 1), nil)
			appendN(t, l, 0, n)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.sql != "" {
				db := rawDB(t, path)
				mustExec(t, db, tc.sql)
				db.Close()
			}
			ro, err := openReadDB(path, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			r, err := openRowReader(path, true)
			if err != nil {
				t.Fatal(err)
			}
			defer r.close()
			for _, span := range [][2]uint64{{0, n}, {5, 25}, {30, 30}, {38, n + 3}} {
				want := scanChunk(t.Context(), ro, span[0], span[1], 0, newLeafHasher(), true, 0)
				got := scanChunkRaw(t.Context(), r, span[0], span[1], 0, newLeafHasher(), 0, chunkResult{})
				if fmt.Sprint(got.err) != fmt.Sprint(want.err) {
					t.Fatalf("rows %v: raw reader error %v, database/sql %v", span, got.err, want.err)
				}
				if !reflect.DeepEqual(got.leaves, want.leaves) || string(got.stored) != string(want.stored) || got.noContent != want.noContent {
					t.Fatalf("rows %v: raw reader read %d leaves (%d without content), database/sql %d (%d)",
						span, len(got.leaves), got.noContent, len(want.leaves), want.noContent)
				}
				if span == [2]uint64{0, n} && (want.err == nil) != (tc.sql == "") {
					t.Fatalf("rows %v: error %v", span, want.err)
				}
			}
		})
	}
}

func TestRowReaderRefusesMissingFile(t *testing.T) {
	if _, err := openRowReader(t.TempDir()+"/none.db", true); err == nil {
		t.Fatal("opened a file that does not exist")
	}
}

// TestScanParallelReusesBuffers runs Verify's parallel scan with chunks small
// enough that every worker reuses consumed results' buffers: the tree must
// come out as a plain sequential scan builds it, and a tampered row must be
// the one reported.
func TestScanParallelReusesBuffers(t *testing.T) {
	const n = 100
	l, path := openTest(t, testKey(t, 1), nil)
	appendN(t, l, 0, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := openReadDB(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	want := &verifier{}
	if err := want.feed(scanChunk(t.Context(), ro, 0, n, 0, newLeafHasher(), true, 0)); err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []uint64{1, 7, 64} {
		v := &verifier{}
		if err := scanParallel(t.Context(), path, true, 0, 0, n, 0, 3, chunk, v); err != nil {
			t.Fatalf("chunks of %d: %v", chunk, err)
		}
		if v.tr.size != n || v.tr.root() != want.tr.root() {
			t.Fatalf("chunks of %d: %d leaves, root differs from the sequential scan", chunk, v.tr.size)
		}
	}
	mustExec(t, rawDB(t, path), `UPDATE entries SET content = x'00' WHERE idx = 57`)
	v := &verifier{}
	var bad *BadEntryError
	if err := scanParallel(t.Context(), path, true, 0, 0, n, 0, 3, 7, v); !errors.As(err, &bad) || bad.Index != 57 {
		t.Fatalf("tampered row 57: %v", err)
	}
}
