package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestPruneKeepsProofs: pruning drops content but not leaves, so Verify
// passes, proofs taken before still check, and new ones do too.
func TestPruneKeepsProofs(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, nil)
	ctx := t.Context()
	appendN(t, l, 0, 30)
	before, err := l.Prove(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	cut := mustGet(t, l, 20).Time // entries 0..19 are older
	n, err := l.Prune(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	// 0..19 minus the digest-only ones (4, 9, 14, 19).
	if n != 16 {
		t.Fatalf("pruned %d, want 16", n)
	}
	if again, _ := l.Prune(ctx, cut); again != 0 {
		t.Fatalf("pruned %d twice", again)
	}
	for i := range 30 {
		e := mustGet(t, l, i)
		if wantNil := i < 20 || i%5 == 4; wantNil != (e.Content == nil) {
			t.Fatalf("entry %d content %q after prune", i, e.Content)
		}
		if len(e.ContentDigest) != 32 {
			t.Fatalf("entry %d lost its digest", i)
		}
	}
	res, err := Verify(ctx, path, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	// 16 pruned, 6 digest-only, and the pruning record's own entry.
	if res.Entries != 31 || res.Pruned != 23 || len(res.Prunes) != 1 || res.Prunes[0].Content != 20 || res.Prunes[0].Rows != 0 {
		t.Fatalf("%+v", res)
	}
	if err := VerifyProof(before, key.Public()); err != nil {
		t.Fatalf("proof from before the prune: %v", err)
	}
	after, err := l.Prove(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after.Leaf, before.Leaf) {
		t.Fatal("prune changed the leaf")
	}
	js, _ := json.Marshal(after)
	if !checkExportedProof(t, js, OriginFor(key.Public()), key.Public().Ed25519()) {
		t.Fatal("proof after prune rejected by the independent verifier")
	}
	// Pruning is a write like any other: entries keep flowing afterwards.
	if _, err := l.Append(ctx, sampleEntry(31)); err != nil {
		t.Fatal(err)
	}
}

const tricky = "comma, \"quote\", newline\nand\r\ncr, tab\t, unicode é😀, =cmd|' /C calc'!A0"

func TestExportEscaping(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, nil)
	ctx := t.Context()
	e := sampleEntry(0)
	e.Capability = tricky
	e.Content = []byte(tricky)
	e.Report = json.RawMessage(`{"note":` + string(mustJSON(t, tricky)) + `}`)
	if _, err := l.Append(ctx, e); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1, 2)
	want, err := l.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("jsonl", func(t *testing.T) {
		var buf bytes.Buffer
		if err := Export(ctx, path, &buf, "jsonl"); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("%d lines:\n%s", len(lines), buf.String())
		}
		for i, line := range lines {
			var got Entry
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			if !bytes.Equal(mustJSON(t, got), mustJSON(t, want[i])) {
				t.Fatalf("line %d:\n got %s\nwant %s", i, mustJSON(t, got), mustJSON(t, want[i]))
			}
		}
	})
	t.Run("csv", func(t *testing.T) {
		var buf bytes.Buffer
		if err := Export(ctx, path, &buf, "csv"); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 4 || strings.Join(recs[0], ",") != strings.Join(CSVHeader(), ",") {
			t.Fatalf("records %q", recs)
		}
		r := recs[1]
		content, _ := base64.StdEncoding.DecodeString(r[12])
		// encoding/csv reads "\r\n" inside a quoted field back as "\n".
		if r[5] != strings.ReplaceAll(tricky, "\r\n", "\n") || string(content) != tricky ||
			r[10] != hex.EncodeToString(want[0].ContentDigest) || r[11] != string(want[0].Report) || r[0] != "0" {
			t.Fatalf("row %q", r)
		}
		if r[1] != want[0].Time.Format(time.RFC3339Nano) {
			t.Fatalf("time %q", r[1])
		}
	})
	t.Run("unknown format", func(t *testing.T) {
		if err := Export(ctx, path, &bytes.Buffer{}, "xml"); err == nil {
			t.Fatal("accepted xml")
		}
	})
}
