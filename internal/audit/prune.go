package audit

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/treaty-dev/treaty/internal/identity"
)

// KindPruned is the entry the log appends with each pruning record.
const KindPruned = "audit.pruned"

// ErrPruned is wrapped when a proof needs entries a pruning deleted.
var ErrPruned = errors.New("audit: entry pruned")

// Pruning.
//
// The log is pruned only from its start. Each Prune or PruneRows transaction
// writes a pruning record: a signed note by the node's key, kept forever in
// the prunes table (and as an "audit.pruned" entry, which a later pruning may
// delete). A record is cumulative:
//
//	<origin>
//	prune <seq>
//	time <time>
//	rows <R>
//	content <C>
//	root <base64 root of the tree of the first R entries>
//	edge <base64 hash>          one line per bit set in R, highest level first
//
// Entries below R are deleted; the content of entries below C (C >= R) is
// dropped. The edge hashes are the RFC 6962 subtrees that make up the first R
// leaves (their compact range): enough to rebuild the tree from entry R on, so
// Verify recomputes every checkpoint at or above R, and to give inclusion and
// consistency proofs between sizes at or above R. Records are numbered from 1
// without gaps, so a deleted record shows; rows missing at R or above, and
// content missing at C or above where the leaf says it was kept, are
// tampering.

// PruneRecord is one pruning record.
type PruneRecord struct {
	Seq     uint64
	Time    time.Time
	Rows    uint64      // entries below this are deleted
	Content uint64      // entries below this have no content
	Root    tlog.Hash   // tree hash of the first Rows entries
	Edge    []tlog.Hash // the compact range of [0, Rows), highest level first
	Note    []byte      // the signed note
}

// pruneText is the unsigned body of a record.
func (r PruneRecord) text(origin string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nprune %d\ntime %s\nrows %d\ncontent %d\nroot %s\n", origin, r.Seq,
		r.Time.UTC().Format(timeLayout), r.Rows, r.Content, base64.StdEncoding.EncodeToString(r.Root[:]))
	for _, h := range r.Edge {
		b.WriteString("edge " + base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	return b.String()
}

// parsePruneText parses a record body; it checks the shape, not the signature.
func parsePruneText(text string) (PruneRecord, error) {
	bad := func(why string) (PruneRecord, error) {
		return PruneRecord{}, fmt.Errorf("audit: pruning record: %s", why)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 6 || !strings.HasSuffix(text, "\n") {
		return bad("too short")
	}
	var r PruneRecord
	num := func(line, key string) (uint64, bool) {
		v, ok := strings.CutPrefix(line, key+" ")
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseUint(v, 10, 63)
		return n, err == nil && strconv.FormatUint(n, 10) == v
	}
	hash := func(line string) (tlog.Hash, bool) {
		var h tlog.Hash
		b, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(b) != len(h) {
			return h, false
		}
		copy(h[:], b)
		return h, true
	}
	var ok bool
	if r.Seq, ok = num(lines[1], "prune"); !ok || r.Seq == 0 {
		return bad("no sequence number")
	}
	ts, _ := strings.CutPrefix(lines[2], "time ")
	t, err := time.Parse(timeLayout, ts)
	if err != nil || len(ts) != timeLen {
		return bad("no time")
	}
	r.Time = t
	if r.Rows, ok = num(lines[3], "rows"); !ok {
		return bad("no rows")
	}
	if r.Content, ok = num(lines[4], "content"); !ok || r.Content < r.Rows {
		return bad("no content, or content below rows")
	}
	rs, _ := strings.CutPrefix(lines[5], "root ")
	if r.Root, ok = hash(rs); !ok {
		return bad("no root")
	}
	for _, l := range lines[6:] {
		es, found := strings.CutPrefix(l, "edge ")
		h, ok := hash(es)
		if !found || !ok {
			return bad("malformed edge line")
		}
		r.Edge = append(r.Edge, h)
	}
	if len(r.Edge) != bits.OnesCount64(r.Rows) {
		return bad(fmt.Sprintf("%d edge hashes for %d rows, want %d", len(r.Edge), r.Rows, bits.OnesCount64(r.Rows)))
	}
	if t := r.tree(); t.root() != r.Root {
		return bad("edge hashes do not make the root")
	}
	return r, nil
}

// openPruneRecord verifies a record's signature by pub under origin and parses it.
func openPruneRecord(msg []byte, pub identity.PublicKey, origin string) (PruneRecord, error) {
	v, err := noteVerifier(origin, pub)
	if err != nil {
		return PruneRecord{}, err
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return PruneRecord{}, fmt.Errorf("audit: pruning record: %w", err)
	}
	if first, _, _ := strings.Cut(n.Text, "\n"); first != origin {
		return PruneRecord{}, errors.New("audit: pruning record: wrong origin")
	}
	r, err := parsePruneText(n.Text)
	if err != nil {
		return PruneRecord{}, err
	}
	r.Note = bytes.Clone(msg)
	return r, nil
}

// tree is the tree of the first r.Rows leaves, ready to take leaf r.Rows.
func (r PruneRecord) tree() tree {
	t := tree{size: r.Rows}
	i := 0
	for l := 63; l >= 0; l-- {
		if r.Rows>>l&1 == 1 && i < len(r.Edge) {
			t.edge[l] = r.Edge[i]
			i++
		}
	}
	return t
}

// storedEdge maps the tlog stored-hash indexes of r's edge to their hashes.
func (r PruneRecord) storedEdge() map[int64]tlog.Hash {
	m := make(map[int64]tlog.Hash, len(r.Edge))
	i := 0
	for l := 63; l >= 0; l-- {
		if r.Rows>>l&1 == 1 && i < len(r.Edge) {
			m[tlog.StoredHashIndex(l, int64(r.Rows>>l)-1)] = r.Edge[i]
			i++
		}
	}
	return m
}

// latestPrune returns the newest pruning record, parsed but (pub zero) not
// verified, or verified with pub. ok is false when the log was never pruned.
func latestPrune(ctx context.Context, q querier, pub identity.PublicKey, origin string) (PruneRecord, bool, error) {
	var msg []byte
	err := q.QueryRowContext(ctx, `SELECT note FROM prunes ORDER BY seq DESC LIMIT 1`).Scan(&msg)
	if errors.Is(err, sql.ErrNoRows) {
		return PruneRecord{}, false, nil
	}
	if err != nil {
		return PruneRecord{}, false, fmt.Errorf("audit: read pruning records: %w", err)
	}
	if pub.IsZero() {
		body, _, _ := strings.Cut(string(msg), "\n\n")
		r, err := parsePruneText(body + "\n")
		r.Note = msg
		return r, err == nil, err
	}
	r, err := openPruneRecord(msg, pub, origin)
	return r, err == nil, err
}

// allPrunes reads and checks every pruning record, oldest first: each signed,
// numbered from 1 without gaps, never undoing an earlier one.
func allPrunes(ctx context.Context, q querier, pub identity.PublicKey, origin string) ([]PruneRecord, error) {
	// As loadCheckpoints: wrong types and oversized notes are not copied out.
	rows, err := q.QueryContext(ctx, `SELECT CASE WHEN typeof(seq) = 'integer' THEN seq END,
		CASE WHEN octet_length(note) <= ?1 THEN note END, octet_length(note) FROM prunes ORDER BY seq`, MaxNoteSize)
	if err != nil {
		return nil, fmt.Errorf("audit: read pruning records: %w", err)
	}
	defer rows.Close()
	var out []PruneRecord
	for rows.Next() {
		var seq sql.NullInt64
		var n sql.NullInt64
		var msg []byte
		if err := rows.Scan(&seq, &msg, &n); err != nil {
			return nil, fmt.Errorf("audit: read pruning records: %w", err)
		}
		want := uint64(len(out)) + 1
		switch {
		case !seq.Valid:
			return nil, &BadPruneError{Seq: want, Reason: "seq is not an integer"}
		case n.Valid && msg == nil:
			return nil, &BadPruneError{Seq: want, Reason: fmt.Sprintf("note is %d bytes, at most %d", n.Int64, MaxNoteSize)}
		}
		r, err := openPruneRecord(msg, pub, origin)
		if err != nil {
			return nil, &BadPruneError{Seq: want, Reason: err.Error()}
		}
		if r.Seq != want || uint64(seq.Int64) != want {
			return nil, &BadPruneError{Seq: want, Reason: fmt.Sprintf("record %d found where %d belongs (a record was deleted)", r.Seq, want)}
		}
		if n := len(out); n > 0 && (r.Rows < out[n-1].Rows || r.Content < out[n-1].Content || r.Time.Before(out[n-1].Time)) {
			return nil, &BadPruneError{Seq: want, Reason: "undoes an earlier record"}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// BadPruneError names a pruning record that is not valid.
type BadPruneError struct {
	Seq    uint64
	Reason string
}

func (e *BadPruneError) Error() string {
	return fmt.Sprintf("audit: pruning record %d: %s", e.Seq, e.Reason)
}

func (e *BadPruneError) Unwrap() error { return ErrTampered }

// pruneChunk bounds one prune transaction, so appends are not held up long.
const pruneChunk = 10000

// Prune drops the stored content of entries logged before the given time and
// returns how many it dropped. Leaves keep the content digest, so proofs stay
// valid; each transaction writes a pruning record, so Verify tells dropped
// content from removed content. The file shrinks only after VACUUM, but new
// entries reuse the freed pages.
func (l *Log) Prune(ctx context.Context, before time.Time) (int, error) {
	return l.prune(ctx, before, false)
}

// PruneRows deletes the entries logged before the given time (and the
// checkpoints below them), with a pruning record per transaction that keeps
// the remaining log verifiable and provable; it returns how many it deleted.
// Inclusion proofs of deleted entries, and consistency proofs from sizes below
// the cut, can no longer be given (ErrPruned).
func (l *Log) PruneRows(ctx context.Context, before time.Time) (int, error) {
	return l.prune(ctx, before, true)
}

func (l *Log) prune(ctx context.Context, before time.Time, rows bool) (int, error) {
	ts, err := formatTime(before)
	if err != nil {
		return 0, err
	}
	l.pruneMu.Lock()
	defer l.pruneMu.Unlock()
	total := 0
	stop := int64(-1) // the log's size when this call began: its own records stay
	for {
		var n int
		var next *PruneRecord
		err := l.exec(ctx, func(ctx context.Context, t *txn) error {
			if stop < 0 {
				stop = int64(l.tr.size)
			}
			var err error
			next, n, err = l.pruneTx(ctx, t, ts, uint64(stop), rows)
			return err
		})
		if err != nil {
			return total, err
		}
		if next == nil {
			return total, nil
		}
		total += n
	}
}

// pruneTx moves the cut forward by at most pruneChunk entries in t and
// records it. It returns nil when there is nothing to do.
func (l *Log) pruneTx(ctx context.Context, t *txn, ts string, stop uint64, rows bool) (*PruneRecord, int, error) {
	// The state comes from the transaction, not from memory (a caller that
	// gave up waiting may still have had its record committed), and is
	// verified: signing on top of an edited record would launder it.
	cur, ok, err := latestPrune(ctx, t.tx, l.cfg.Identity.Public(), l.cfg.Origin)
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		cur = PruneRecord{Root: emptyRoot}
	}
	var first sql.NullInt64 // the first entry to keep
	if err := t.tx.QueryRowContext(ctx, `SELECT min(idx) FROM entries WHERE json_extract(leaf, '$.time') >= ?`, ts).Scan(&first); err != nil {
		return nil, 0, fmt.Errorf("audit: prune: %w", err)
	}
	cut := stop
	if first.Valid {
		cut = min(cut, uint64(first.Int64))
	}
	next := cur
	next.Seq++
	next.Time = l.cfg.Now()
	next.Note = nil
	var n int64
	if rows {
		cut = min(cut, cur.Rows+pruneChunk)
		if cut <= cur.Rows {
			return nil, 0, nil
		}
		tr, err := loadTree(ctx, t.tx, cut, &cur)
		if err != nil {
			return nil, 0, fmt.Errorf("audit: prune: tree at %d: %w", cut, err)
		}
		next.Rows, next.Content = cut, max(cur.Content, cut)
		next.Root = tr.root()
		next.Edge = next.Edge[:0:0]
		for lv := 63; lv >= 0; lv-- {
			if cut>>lv&1 == 1 {
				next.Edge = append(next.Edge, tr.edge[lv])
			}
		}
		res, err := t.tx.ExecContext(ctx, `DELETE FROM entries WHERE idx < ?`, int64(cut))
		if err != nil {
			return nil, 0, fmt.Errorf("audit: prune: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return nil, 0, err
		}
		if _, err := t.tx.ExecContext(ctx, `DELETE FROM checkpoints WHERE size < ?`, int64(cut)); err != nil {
			return nil, 0, fmt.Errorf("audit: prune checkpoints: %w", err)
		}
	} else {
		cut = min(cut, cur.Content+pruneChunk)
		if cut <= cur.Content {
			return nil, 0, nil
		}
		res, err := t.tx.ExecContext(ctx, `UPDATE entries SET content = NULL WHERE idx >= ? AND idx < ? AND content IS NOT NULL`, int64(cur.Content), int64(cut))
		if err != nil {
			return nil, 0, fmt.Errorf("audit: prune: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return nil, 0, err
		}
		next.Content = cut
	}
	msg, err := note.Sign(&note.Note{Text: next.text(l.cfg.Origin)}, l.signer)
	if err != nil {
		return nil, 0, fmt.Errorf("audit: sign pruning record: %w", err)
	}
	next.Note = msg
	ts2, _ := formatTime(next.Time)
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO prunes(seq, note, time) VALUES(?, ?, ?)`, int64(next.Seq), string(msg), ts2); err != nil {
		return nil, 0, fmt.Errorf("audit: write pruning record: %w", err)
	}
	ev, _ := json.Marshal(map[string]any{"seq": next.Seq, "rows": next.Rows, "content": next.Content, "record": string(msg)})
	p, err := prepare(Entry{Kind: KindPruned, Outcome: "pruned", Stage: "retention", Evidence: ev})
	if err != nil {
		return nil, 0, err
	}
	if _, err := t.append(ctx, p); err != nil {
		return nil, 0, err
	}
	l.cfg.Logger.Info("audit: pruned", "rows", rows, "entries", n, "rows_below", next.Rows, "content_below", next.Content, "record", next.Seq)
	return &next, int(n), nil
}

// PrunedError answers a consistency request from a size below the log's
// pruning cut, which no proof can start from any more. It carries what can
// be proven instead: the latest signed pruning record (the root of the first
// Rows entries) and a consistency proof from Rows to the requested new size.
// A witness checks both and records the interval it could not witness
// (Witness.Observe, ADR 23).
type PrunedError struct {
	OldSize uint64     // the size asked from
	Record  []byte     // the latest signed pruning record
	Proof   [][32]byte // consistency proof from the record's rows to the new size
}

func (e *PrunedError) Error() string {
	return fmt.Sprintf("%v: no consistency proof from size %d, below the pruning cut; the pruning record and a proof from the cut stand in", ErrPruned, e.OldSize)
}

func (e *PrunedError) Unwrap() error { return ErrPruned }

// prunedConsistency returns a *PrunedError when oldSize is below the cut
// and the cut is at most newSize, a plain ErrPruned when the cut is above
// newSize too, and nil when oldSize was not pruned.
func prunedConsistency(ctx context.Context, q querier, oldSize, newSize uint64) error {
	pr, ok, err := latestPrune(ctx, q, identity.PublicKey{}, "")
	if err != nil || !ok || oldSize >= pr.Rows {
		return err
	}
	if pr.Rows > newSize {
		return fmt.Errorf("%w: sizes %d and %d are below the pruning cut %d", ErrPruned, oldSize, newSize, pr.Rows)
	}
	pe := &PrunedError{OldSize: oldSize, Record: pr.Note}
	if pr.Rows == newSize {
		return pe
	}
	tp, err := tlog.ProveTree(int64(newSize), int64(pr.Rows), dbHashes{ctx: ctx, q: q, pr: &pr})
	if err != nil {
		return fmt.Errorf("audit: consistency proof %d..%d: %w", pr.Rows, newSize, err)
	}
	pe.Proof = make([][32]byte, len(tp))
	for i, h := range tp {
		pe.Proof[i] = h
	}
	return pe
}
