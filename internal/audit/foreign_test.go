package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestForeignFilesRefused: what the read-only commands (verify, ls, show,
// prove, export, --against) open may be any file. One that is not a treaty
// log is refused at once, naming why; one whose schema was rebuilt to hang the
// reader (a recursive view in place of a table) or whose meta values carry
// terminal escapes or megabytes is refused too, never followed, echoed raw or
// copied into the error.
func TestForeignFilesRefused(t *testing.T) {
	f := newTamperFixture(t)
	pub := f.key.Public()
	for _, tc := range []struct {
		name  string
		make  func(t *testing.T) string
		want  string
		extra func(t *testing.T, msg string)
	}{
		{"another application's SQLite file", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "app.db")
			db := rawDB(t, path)
			mustExec(t, db, `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)`)
			db.Close()
			return path
		}, "not a treaty audit log", nil},
		{"not SQLite at all", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "audit.db")
			if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 400), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}, "not a database", nil},
		{"entries is a recursive view", func(t *testing.T) string {
			path := f.copyTo(t)
			db := rawDB(t, path)
			mustExec(t, db, `ALTER TABLE entries RENAME TO e2`)
			mustExec(t, db, `CREATE VIEW entries AS WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM r)
				SELECT i AS idx, 'x' AS leaf, NULL AS content, x'' AS hashes, '' AS peer_key, NULL AS rare_kind FROM r`)
			db.Close()
			return path
		}, "entries is a view, not a table", nil},
		{"checkpoints is a view", func(t *testing.T) string {
			path := f.copyTo(t)
			db := rawDB(t, path)
			mustExec(t, db, `ALTER TABLE checkpoints RENAME TO c2`)
			mustExec(t, db, `CREATE VIEW checkpoints AS SELECT * FROM c2`)
			db.Close()
			return path
		}, "checkpoints is a view, not a table", nil},
		{"owner key with a terminal escape", func(t *testing.T) string {
			path := f.copyTo(t)
			db := rawDB(t, path)
			mustExec(t, db, "UPDATE meta SET value = 'did:key:z6Mk\x1b]0;owned\a\x1b[2J' WHERE key = 'key'")
			db.Close()
			return path
		}, "not a treaty audit log", func(t *testing.T, msg string) {
			if strings.ContainsAny(msg, "\x1b\a") {
				t.Fatalf("error carries the escape raw: %q", msg)
			}
		}},
		{"a megabyte origin", func(t *testing.T) string {
			path := f.copyTo(t)
			db := rawDB(t, path)
			mustExec(t, db, `UPDATE meta SET value = value || CAST(zeroblob(1000000) AS TEXT) WHERE key = 'origin'`)
			db.Close()
			return path
		}, "not a treaty audit log", nil},
		{"a megabyte format", func(t *testing.T) string {
			path := f.copyTo(t)
			db := rawDB(t, path)
			mustExec(t, db, `UPDATE meta SET value = replace(hex(zeroblob(500000)), '0', 'A') WHERE key = 'format'`)
			db.Close()
			return path
		}, "not a treaty audit log", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.make(t)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			errs := map[string]error{}
			_, errs["Verify"] = Verify(ctx, path, pub)
			r, err := OpenReader(ctx, path)
			if err == nil {
				r.Close()
			}
			errs["OpenReader"] = err
			errs["Export"] = Export(ctx, path, new(bytes.Buffer), "jsonl")
			_, _, errs["WitnessedCheckpoint"] = WitnessedCheckpoint(ctx, path, pub)
			for what, err := range errs {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%s: %v, want an error saying %q", what, err, tc.want)
				}
				if len(err.Error()) > 1024 {
					t.Fatalf("%s: a %d-byte error", what, len(err.Error()))
				}
				if tc.extra != nil {
					tc.extra(t, err.Error())
				}
			}
			if ctx.Err() != nil {
				t.Fatal("the reads did not end before the deadline")
			}
		})
	}
}

// TestVerifyHostileColumns: a checkpoint or pruning record row rebuilt to hold
// a huge value or a value of the wrong type is a typed tampering error, and
// Verify does not copy the huge value into its own memory to find out.
func TestVerifyHostileColumns(t *testing.T) {
	f := newTamperFixture(t)
	const huge = 64 << 20
	loose := func(tbl, cols string) []string {
		return []string{`CREATE TABLE x AS SELECT * FROM ` + tbl, `DROP TABLE ` + tbl,
			`CREATE TABLE ` + tbl + `(` + cols + `)`, `INSERT INTO ` + tbl + ` SELECT * FROM x`, `DROP TABLE x`}
	}
	for _, tc := range []struct {
		name string
		sql  []string
		want string // in the error, which wraps ErrTampered
	}{
		{"a huge checkpoint note", []string{
			fmt.Sprintf(`UPDATE checkpoints SET note = CAST(zeroblob(%d) AS TEXT) WHERE size = 16`, huge)},
			"checkpoint at size 16: note is 67108864 bytes"},
		{"a huge pruning record", []string{
			fmt.Sprintf(`INSERT INTO prunes(seq, note, time) VALUES(1, CAST(zeroblob(%d) AS TEXT), '')`, huge)},
			"pruning record 1: note is 67108864 bytes"},
		{"a checkpoint size that is text", append(loose("checkpoints", "size, note, time, retained"),
			`UPDATE checkpoints SET size = 'sixteen' WHERE size = 16`), "size is not an integer"},
		{"a checkpoint size that is real", append(loose("checkpoints", "size, note, time, retained"),
			`UPDATE checkpoints SET size = 1e30 WHERE size = 16`), "size is not an integer"},
		{"a checkpoint note that is NULL", append(loose("checkpoints", "size, note, time, retained"),
			`UPDATE checkpoints SET note = NULL WHERE size = 16`), "checkpoint at size 16: no note"},
		{"a pruning record seq that is text", append(loose("prunes", "seq, note, time"),
			`INSERT INTO prunes VALUES('one', 'x', '')`), "pruning record 1: seq is not an integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := f.copyTo(t)
			db := rawDB(t, path)
			for _, q := range tc.sql {
				mustExec(t, db, q)
			}
			db.Close()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Verify(t.Context(), path, f.key.Public())
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify: %v, want ErrTampered saying %q", err, tc.want)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > huge/4 {
				t.Fatalf("Verify allocated %d MiB for a %d MiB value", got>>20, huge>>20)
			}
		})
	}
	// The head as the readers read it (prove, and the consistency proofs
	// served to peers), a huge note in its place.
	path := f.copyTo(t)
	db := rawDB(t, path)
	mustExec(t, db, fmt.Sprintf(`UPDATE checkpoints SET note = CAST(zeroblob(%d) AS TEXT) WHERE size = 43`, huge))
	db.Close()
	r, err := OpenReader(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = r.Prove(t.Context(), 3)
	runtime.ReadMemStats(&after)
	var bc *BadCheckpointError
	if !errors.As(err, &bc) || bc.Size != 43 || !strings.Contains(err.Error(), "note is 67108864 bytes") {
		t.Fatalf("Prove with a huge head note: %v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > huge/4 {
		t.Fatalf("Prove allocated %d MiB for a %d MiB note", got>>20, huge>>20)
	}
}

// TestHugeRowValuesNotRead: an entry's leaf, content or stored hashes edited
// to a value larger than any entry's can be is reported as that, by Verify
// and by the readers (ls, show, export), without SQLite or Go loading it.
func TestHugeRowValuesNotRead(t *testing.T) {
	f := newTamperFixture(t)
	const huge = 64 << 20
	for _, tc := range []struct {
		col, set string
		idx      uint64
		readers  bool // the readers read this column
	}{
		{"leaf", fmt.Sprintf("CAST(zeroblob(%d) AS TEXT)", huge), 9, true},
		{"content", fmt.Sprintf("zeroblob(%d)", huge), 5, true},
		{"hashes", fmt.Sprintf("zeroblob(%d)", huge), 7, false},
	} {
		t.Run(tc.col, func(t *testing.T) {
			path := f.copyTo(t)
			db := rawDB(t, path)
			mustExec(t, db, fmt.Sprintf(`UPDATE entries SET %s = %s WHERE idx = %d`, tc.col, tc.set, tc.idx))
			db.Close()
			want := tc.col + " is larger than any entry's"
			_, err := Verify(t.Context(), path, f.key.Public())
			var be *BadEntryError
			if !errors.As(err, &be) || be.Index != tc.idx || !strings.Contains(err.Error(), want) {
				t.Fatalf("Verify: %v, want bad entry %d saying %q", err, tc.idx, want)
			}
			if !tc.readers {
				return
			}
			r, err := OpenReader(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, lerr := r.List(t.Context(), Filter{})
			_, gerr := r.Get(t.Context(), tc.idx)
			xerr := Export(t.Context(), path, new(bytes.Buffer), "csv")
			runtime.ReadMemStats(&after)
			for what, err := range map[string]error{"List": lerr, "Get": gerr, "Export": xerr} {
				if !errors.As(err, &be) || be.Index != tc.idx || !strings.Contains(err.Error(), want) {
					t.Fatalf("%s: %v, want bad entry %d saying %q", what, err, tc.idx, want)
				}
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > huge/4 {
				t.Fatalf("the readers allocated %d MiB for a %d MiB value", got>>20, huge>>20)
			}
		})
	}
}
