package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// prunedFixture is a closed log of 100 entries with rows below 40 deleted
// (record 1) and then rows below 45 and content below 60 (records 2 and 3).
type prunedFixture struct {
	tamperFixture
	before    Checkpoint // the head before any pruning (size 100)
	proof80   Proof      // entry 80 in before
	afterSize uint64
}

func newPrunedFixture(t *testing.T) prunedFixture {
	t.Helper()
	key := testKey(t, 1)
	l, path := openTest(t, key, func(c *Config) { c.CheckpointEvery = 8; c.CheckpointInterval = time.Hour })
	ctx := t.Context()
	appendN(t, l, 0, 100)
	f := prunedFixture{tamperFixture: tamperFixture{key: key, path: path}}
	f.before = mustCheckpoint(t, l)
	var err error
	if f.proof80, err = l.Prove(ctx, 80); err != nil {
		t.Fatal(err)
	}
	n, err := l.PruneRows(ctx, mustGet(t, l, 40).Time)
	if err != nil || n != 40 {
		t.Fatalf("PruneRows: %d, %v; want 40", n, err)
	}
	if _, err := l.Get(ctx, 39); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a deleted entry: %v", err)
	}
	if n, err := l.PruneRows(ctx, mustGet(t, l, 45).Time); err != nil || n != 5 {
		t.Fatalf("second PruneRows: %d, %v", n, err)
	}
	if n, err := l.Prune(ctx, mustGet(t, l, 60).Time); err != nil || n != 12 { // 45..59 minus 49, 54, 59
		t.Fatalf("Prune content: %d, %v", n, err)
	}
	appendN2(t, l, 3) // entries keep flowing after pruning
	f.afterSize = mustCheckpoint(t, l).Size
	f.head = mustCheckpoint(t, l).Note
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

// appendN2 appends n more entries whatever the current size.
func appendN2(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(t.Context(), sampleEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPruneRows(t *testing.T) {
	f := newPrunedFixture(t)
	ctx := t.Context()
	pub := f.key.Public()
	// 100 entries, 3 pruning records, 3 more entries.
	if f.afterSize != 106 {
		t.Fatalf("size after pruning %d, want 106", f.afterSize)
	}
	res, err := VerifyWith(ctx, f.path, pub, VerifyOptions{Checkpoints: [][]byte{f.before.Note, f.head}})
	if err != nil {
		t.Fatalf("verify of a pruned log: %v", err)
	}
	if res.Entries != 106 || len(res.Prunes) != 3 || res.Prunes[1].Rows != 45 || res.Prunes[2].Content != 60 || res.Prunes[2].Rows != 45 {
		t.Fatalf("%+v", res)
	}
	out := res.String()
	for _, want := range []string{
		"ok 106 entries root ",
		"\npruned 1 at 2025-11-28T09:00:00Z: entries below 40 deleted, content below 40 dropped\n",
		"\npruned 3 at ",
		": entries below 45 deleted, content below 60 dropped\n",
		"\nconsistent with checkpoint 100 root ",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("verify output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("verify output:\n%s", out)
	// A checkpoint from below the cut cannot be recomputed: reported, not failed.
	signer, _ := newNoteSigner(OriginFor(pub), f.key)
	old, _ := signer.checkpoint(30, [32]byte{7})
	res, err = VerifyWith(ctx, f.path, pub, VerifyOptions{Checkpoints: [][]byte{old.Note}})
	if err != nil || len(res.Given) != 1 || res.Given[0].Checked ||
		!strings.HasSuffix(res.String(), "\ncheckpoint 30 predates the pruned prefix (entries below 45): not checkable") {
		t.Fatalf("old given checkpoint: %v\n%s", err, res)
	}

	// An old checkpoint from before the cut is reported, not failed.
	r, err := OpenReader(ctx, f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Proofs of remaining entries still check, in the new head and in the
	// checkpoint from before the pruning, also with the independent verifier.
	p, err := r.Prove(ctx, 80)
	if err != nil {
		t.Fatalf("prove after pruning: %v", err)
	}
	if err := VerifyProof(p, pub); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(p)
	if !checkExportedProof(t, js, OriginFor(pub), pub.Ed25519()) {
		t.Fatal("independent verifier rejects a proof after pruning")
	}
	pOld, err := r.ProveAt(ctx, 80, f.before)
	if err != nil || !bytes.Equal(pOld.Leaf, f.proof80.Leaf) || len(pOld.Hashes) != len(f.proof80.Hashes) {
		t.Fatalf("ProveAt the old checkpoint: %v", err)
	}
	if err := VerifyProof(pOld, pub); err != nil {
		t.Fatal(err)
	}
	// Consistency from a size at or above the cut holds; below it cannot be given.
	cpNew, _ := OpenCheckpoint(f.head, pub)
	cons, err := r.ConsistencyProof(ctx, 50, cpNew.Size)
	if err != nil {
		t.Fatalf("consistency 50..%d: %v", cpNew.Size, err)
	}
	r50 := mustRootAt(t, f, 50)
	if !consistent(cons, Checkpoint{Size: 50, Root: r50}, cpNew) {
		t.Fatal("consistency proof after pruning does not check")
	}
	if _, err := r.ConsistencyProof(ctx, 30, cpNew.Size); !errors.Is(err, ErrPruned) {
		t.Fatalf("consistency from a pruned size: %v, want ErrPruned", err)
	}
	if _, err := r.Prove(ctx, 10); !errors.Is(err, ErrPruned) || errors.Is(err, ErrTampered) {
		t.Fatalf("prove a pruned entry: %v, want ErrPruned", err)
	}

	// A node restarts on it, checks the whole tail, and appends.
	l, err := Open(ctx, Config{Path: f.path, Identity: f.key, TailCheck: -1})
	if err != nil {
		t.Fatalf("reopen a pruned log: %v", err)
	}
	appendN2(t, l, 2)
	l.Close()
	if res, err := Verify(ctx, f.path, pub); err != nil || res.Entries != 108 {
		t.Fatalf("verify after reopen: %v %v", res, err)
	}
}

// mustRootAt is the root of the first n entries as the unpruned log had it:
// recomputed from a fresh log with the same entries and clock.
func mustRootAt(t *testing.T, f prunedFixture, n int) [32]byte {
	t.Helper()
	l, _ := openTest(t, f.key, func(c *Config) { c.CheckpointEvery = 8; c.CheckpointInterval = time.Hour })
	appendN(t, l, 0, n)
	return mustCheckpoint(t, l).Root
}

// TestVerifyCatchesPruneTampering: the pruning records and the rows they
// leave are as tamper-evident as the rest.
func TestVerifyCatchesPruneTampering(t *testing.T) {
	f := newPrunedFixture(t)
	pub := f.key.Public()
	for _, tc := range []struct {
		name   string
		tamper string
		entry  int64  // want a *BadEntryError at this index, or -1
		prune  uint64 // want a *BadPruneError for this record
	}{
		{"delete the first record", `DELETE FROM prunes WHERE seq = 1`, -1, 1},
		{"delete a middle record", `DELETE FROM prunes WHERE seq = 2`, -1, 2},
		{"delete the last record", `DELETE FROM prunes WHERE seq = 3`, 45, 0}, // content below 60 is gone unrecorded
		{"delete every record", `DELETE FROM prunes`, 0, 0},
		{"edit a record", `UPDATE prunes SET note = replace(note, 'rows 45', 'rows 44') WHERE seq = 3`, -1, 3},
		{"replay an old record", `UPDATE prunes SET note = (SELECT note FROM prunes WHERE seq = 1) WHERE seq = 2`, -1, 2},
		{"delete a row beyond the cut", `DELETE FROM entries WHERE idx = 45`, 45, 0},
		{"delete the rows beyond the cut", `DELETE FROM entries WHERE idx < 70`, 45, 0},
		{"null content outside a record", `UPDATE entries SET content = NULL WHERE idx = 61`, 61, 0},
		{"null content of every entry", `UPDATE entries SET content = NULL`, 60, 0},
		{"edit a remaining entry", `UPDATE entries SET leaf = replace(leaf, '"outcome":"ok"', '"outcome":"failed"') WHERE idx = 46`, 46, 0},
		{"insert a row below the cut", `INSERT INTO entries(idx, leaf, content, hashes) SELECT 10, leaf, content, hashes FROM entries WHERE idx = 50`, 45, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := f.copyTo(t)
			db := rawDB(t, path)
			mustExec(t, db, tc.tamper)
			db.Close()
			_, err := Verify(t.Context(), path, pub)
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Verify: %v, want ErrTampered", err)
			}
			var be *BadEntryError
			var bp *BadPruneError
			if tc.entry >= 0 {
				if !errors.As(err, &be) || int64(be.Index) != tc.entry {
					t.Fatalf("Verify: %v, want bad entry %d", err, tc.entry)
				}
			} else if !errors.As(err, &bp) || bp.Seq != tc.prune {
				t.Fatalf("Verify: %v, want bad pruning record %d", err, tc.prune)
			}
			t.Logf("caught: %v", err)
		})
	}
}

// TestVerifyAgainstCutBack: a log cut back (rows and checkpoints after the cut
// deleted) verifies alone, and fails against a checkpoint a peer witnessed,
// also after pruning.
func TestVerifyAgainstCutBack(t *testing.T) {
	f := newPrunedFixture(t)
	path := f.copyTo(t)
	db := rawDB(t, path)
	mustExec(t, db, `DELETE FROM entries WHERE idx >= 88`)
	mustExec(t, db, `DELETE FROM checkpoints WHERE size > 88`)
	db.Close()
	pub := f.key.Public()
	if _, err := Verify(t.Context(), path, pub); err != nil {
		t.Fatalf("cut-back log alone: %v (the residual risk)", err)
	}
	_, err := VerifyWith(t.Context(), path, pub, VerifyOptions{Checkpoints: [][]byte{f.head}})
	var be *BadEntryError
	if !errors.As(err, &be) || be.Index != 88 || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("against the peer's checkpoint: %v, want missing from 88", err)
	}
}

func TestContentNulledWithoutPruning(t *testing.T) {
	f := newTamperFixture(t)
	path := f.copyTo(t)
	db := rawDB(t, path)
	mustExec(t, db, `UPDATE entries SET content = NULL WHERE idx = 7`)
	db.Close()
	_, err := Verify(t.Context(), path, f.key.Public())
	var be *BadEntryError
	if !errors.As(err, &be) || be.Index != 7 || !strings.Contains(be.Reason, "without a pruning record") {
		t.Fatalf("Verify: %v, want entry 7 content removed without a pruning record", err)
	}
	// A digest-only entry (4) has no content to remove: that is no tampering.
	path = f.copyTo(t)
	db = rawDB(t, path)
	mustExec(t, db, `UPDATE entries SET content = NULL WHERE idx = 4`)
	db.Close()
	if _, err := Verify(t.Context(), path, f.key.Public()); err != nil {
		t.Fatal(err)
	}
}

// TestPruneRefusesEditedRecord: a pruning record edited on disk is not signed
// over by the next pruning.
func TestPruneRefusesEditedRecord(t *testing.T) {
	key := testKey(t, 1)
	l, path := openTest(t, key, nil)
	ctx := t.Context()
	appendN(t, l, 0, 20)
	if _, err := l.Prune(ctx, mustGet(t, l, 5).Time); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	mustExec(t, db, `UPDATE prunes SET note = replace(note, 'content 5', 'content 15')`)
	db.Close()
	if _, err := l.Prune(ctx, mustGet(t, l, 10).Time); err == nil {
		t.Fatal("pruned on top of an edited record")
	}
	if _, err := l.PruneRows(ctx, mustGet(t, l, 10).Time); err == nil {
		t.Fatal("pruned rows on top of an edited record")
	}
}

// TestCheckRowVersions: version 1 leaves (logs written before content_kept)
// still verify, with or without content; version 2 leaves say whether content
// was kept.
func TestCheckRowVersions(t *testing.T) {
	const ts = "2025-11-28T09:00:00.000000000Z"
	idx := []byte(`,"index":3,"time":"`)
	e := sampleEntry(0)
	p1, _ := prepareLeaf(e, 1, false)
	v1 := leafBytesV(nil, leafV1Prefix, 3, ts, p1.body)
	p2, _ := prepare(e)
	v2 := leafBytes(nil, 3, ts, p2.body)
	digestOnly, _ := prepare(sampleEntry(4))
	v2d := leafBytes(nil, 3, ts, digestOnly.body)
	for _, tc := range []struct {
		name      string
		leaf, c   []byte
		reason    string
		wantDrops bool
	}{
		{"v1 with content", v1, e.Content, "", false},
		{"v1 without content", v1, nil, "", false},
		{"v2 with content", v2, e.Content, "", false},
		{"v2 content removed", v2, nil, "", true},
		{"v2 digest only", v2d, nil, "", false},
		{"v2 digest only, content added", v2d, []byte("x"), "content present but the leaf says none was kept (edited)", false},
		{"v2 other content", v2, []byte("x"), "content does not match the leaf's digest (edited)", false},
	} {
		reason, dropped := checkRow(tc.leaf, idx, tc.c)
		if reason != tc.reason || dropped != tc.wantDrops {
			t.Errorf("%s: %q %v, want %q %v", tc.name, reason, dropped, tc.reason, tc.wantDrops)
		}
	}
	if _, err := ParseLeaf(v1); err != nil {
		t.Fatalf("version 1 leaf: %v", err)
	}
	if got, err := ParseLeaf(v2); err != nil || !got.ContentKept {
		t.Fatalf("version 2 leaf: %+v %v", got, err)
	}
}
