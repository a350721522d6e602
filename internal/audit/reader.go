package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/treaty-dev/treaty/internal/identity"
)

// ErrNotFound is returned by Get for an index the log does not hold.
var ErrNotFound = errors.New("audit: no such entry")

// Reader reads a log without writing it: the `treaty audit ls|show|prove`
// commands use one on audit.db while the node runs. Its results are what is
// stored; only Verify says whether the store is intact. Safe for concurrent use.
type Reader struct {
	db  *sql.DB
	pub identity.PublicKey
	old bool // the log predates the index columns (no node has opened it since)
	// indexFrom is the first entry with its index columns filled (store.go).
	indexFrom uint64
}

// OpenReader opens the log at path read-only.
func OpenReader(ctx context.Context, path string) (*Reader, error) {
	db, err := openReadDB(path, 4)
	if err != nil {
		return nil, err
	}
	meta, err := readMeta(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	pub, err := identity.ParseDID(meta["key"])
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("audit: %s: owner key: %w", path, err)
	}
	cols, err := hasIndexColumns(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	from, err := indexFrom(meta, cols)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Reader{db: db, pub: pub, old: !cols, indexFrom: from}, nil
}

// Key is the public key of the log's owner, as recorded in the log.
func (r *Reader) Key() identity.PublicKey { return r.pub }

// Close closes the database.
func (r *Reader) Close() error { return r.db.Close() }

// Checkpoint returns the latest stored checkpoint.
func (r *Reader) Checkpoint(ctx context.Context) (Checkpoint, error) {
	return r.head(ctx, r.db)
}

func (r *Reader) head(ctx context.Context, q querier) (Checkpoint, error) {
	size, msg, err := readHead(ctx, q)
	if err != nil {
		return Checkpoint{}, err
	}
	cp, err := OpenCheckpoint(msg, r.pub)
	if err != nil {
		return Checkpoint{}, &BadCheckpointError{Size: size, Reason: err.Error()}
	}
	if cp.Size != size {
		return Checkpoint{}, &BadCheckpointError{Size: size, Reason: "note does not match its row"}
	}
	return cp, nil
}

// Get returns entry index with its stored content.
func (r *Reader) Get(ctx context.Context, index uint64) (Entry, error) {
	var leaf, over sql.NullString
	var content []byte
	err := r.db.QueryRowContext(ctx, `SELECT `+entryCols()+` FROM entries WHERE idx = ?`, int64(index)).Scan(&leaf, &content, &over)
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("%w: %d", ErrNotFound, index)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("audit: get %d: %w", index, err)
	}
	return rowEntry(index, leaf, content, over)
}

// entryCols selects a row's leaf and content for rowEntry, bounded as
// rowSelect's: a value over its bound reads as NULL, and the third column
// names it (NULL: none).
func entryCols() string {
	return fmt.Sprintf(`CASE WHEN octet_length(leaf) <= %[1]d THEN leaf END, CASE WHEN octet_length(content) <= %[2]d THEN content END, `+
		`CASE WHEN octet_length(leaf) > %[1]d THEN 'leaf' WHEN octet_length(content) > %[2]d THEN 'content' END`, maxLeafBytes, maxContent)
}

// rowEntry decodes a row read with entryCols.
func rowEntry(index uint64, leaf sql.NullString, content []byte, over sql.NullString) (Entry, error) {
	if over.Valid {
		return Entry{}, &BadEntryError{Index: index, Reason: over.String + " is larger than any entry's can be (edited)"}
	}
	if !leaf.Valid {
		return Entry{}, &BadEntryError{Index: index, Reason: "no leaf (edited)"}
	}
	e, err := ParseLeaf([]byte(leaf.String))
	if err != nil {
		return Entry{}, &BadEntryError{Index: index, Reason: err.Error()}
	}
	if e.Index != index {
		return Entry{}, &BadEntryError{Index: index, Reason: fmt.Sprintf("leaf carries index %d", e.Index)}
	}
	e.Content = content
	return e, nil
}

// Filter selects entries for List. Zero fields do not filter.
type Filter struct {
	Peer    string    // did:key
	Kind    string    // KindCallSent, ...
	Since   time.Time // entries at or after this time
	Limit   int       // at most this many; zero: no limit
	Reverse bool      // newest first
}

// List returns the entries that match f, oldest first unless f.Reverse.
func (r *Reader) List(ctx context.Context, f Filter) ([]Entry, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("audit: Filter.Limit %d is negative", f.Limit)
	}
	var where []string
	var args []any
	// Entries below r.indexFrom (from before the index columns) are found
	// by their leaves.
	from := int64(r.indexFrom)
	if f.Peer != "" {
		key := string(peerKey([]byte(f.Peer)))
		switch {
		case r.old:
			where, args = append(where, "json_extract(leaf, '$.peer') = ?"), append(args, f.Peer)
		case from == 0:
			where, args = append(where, "peer_key = ? AND json_extract(leaf, '$.peer') = ?"), append(args, key, f.Peer)
		default:
			where = append(where, "((idx >= ? AND peer_key = ?) OR idx < ?) AND json_extract(leaf, '$.peer') = ?")
			args = append(args, from, key, from, f.Peer)
		}
	}
	if f.Kind != "" {
		switch {
		case r.old || !isRareKind(f.Kind):
			where, args = append(where, "json_extract(leaf, '$.kind') = ?"), append(args, f.Kind)
		case from == 0:
			where, args = append(where, "rare_kind = ?"), append(args, f.Kind)
		default:
			where = append(where, "((idx >= ? AND rare_kind = ?) OR (idx < ? AND json_extract(leaf, '$.kind') = ?))")
			args = append(args, from, f.Kind, from, f.Kind)
		}
	}
	if !f.Since.IsZero() {
		ts, err := formatTime(f.Since)
		if err != nil {
			return nil, err
		}
		where, args = append(where, "json_extract(leaf, '$.time') >= ?"), append(args, ts)
	}
	q := `SELECT idx, ` + entryCols() + ` FROM entries`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY idx"
	if f.Reverse {
		q += " DESC"
	}
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var idx int64
		var leaf, over sql.NullString
		var content []byte
		if err := rows.Scan(&idx, &leaf, &content, &over); err != nil {
			return nil, fmt.Errorf("audit: list: %w", err)
		}
		e, err := rowEntry(uint64(idx), leaf, content, over)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	return out, nil
}

// Prove returns an inclusion proof of entry index in the latest checkpoint.
// It returns ErrBeyondSize when no checkpoint covers index yet.
func (r *Reader) Prove(ctx context.Context, index uint64) (Proof, error) {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return Proof{}, fmt.Errorf("audit: prove: %w", err)
	}
	defer tx.Rollback()
	cp, err := r.head(ctx, tx)
	if err != nil {
		return Proof{}, err
	}
	return prove(ctx, tx, index, cp)
}

// ProveAt returns an inclusion proof of entry index in an earlier checkpoint
// of this log, such as the one a receipt carried. cp must be a checkpoint this
// log signed (OpenCheckpoint with the log's key); ProveAt checks that the
// stored tree has cp's root at cp's size.
func (r *Reader) ProveAt(ctx context.Context, index uint64, cp Checkpoint) (Proof, error) {
	if _, err := OpenCheckpoint(cp.Note, r.pub); err != nil {
		return Proof{}, err
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return Proof{}, fmt.Errorf("audit: prove: %w", err)
	}
	defer tx.Rollback()
	head, err := r.head(ctx, tx)
	if err != nil {
		return Proof{}, err
	}
	if cp.Size > head.Size {
		return Proof{}, fmt.Errorf("%w: checkpoint size %d, log has %d", ErrBeyondSize, cp.Size, head.Size)
	}
	return prove(ctx, tx, index, cp)
}

func prove(ctx context.Context, tx *sql.Tx, index uint64, cp Checkpoint) (Proof, error) {
	if index >= cp.Size {
		return Proof{}, fmt.Errorf("%w: entry %d, checkpoint size %d", ErrBeyondSize, index, cp.Size)
	}
	var leaf, over sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT `+entryCols()+` FROM entries WHERE idx = ?`, int64(index)).Scan(&leaf, new([]byte), &over); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			if pr, ok, _ := latestPrune(ctx, tx, identity.PublicKey{}, ""); ok && index < pr.Rows {
				return Proof{}, fmt.Errorf("%w: entry %d (pruning record %d deleted entries below %d)", ErrPruned, index, pr.Seq, pr.Rows)
			}
			return Proof{}, &BadEntryError{Index: index, Reason: "missing (deleted)"}
		}
		return Proof{}, fmt.Errorf("audit: prove %d: %w", index, err)
	}
	if over.Valid || !leaf.Valid {
		return Proof{}, &BadEntryError{Index: index, Reason: "leaf is larger than any entry's can be, or missing (edited)"}
	}
	rp, err := tlog.ProveRecord(int64(cp.Size), int64(index), dbHashes{ctx: ctx, q: tx})
	if err != nil {
		return Proof{}, fmt.Errorf("audit: prove %d: %w", index, err)
	}
	// A proof built from rewritten stored hashes would not check; say so here
	// rather than hand it out.
	if err := tlog.CheckRecord(rp, int64(cp.Size), cp.Root, int64(index), tlog.RecordHash([]byte(leaf.String))); err != nil {
		return Proof{}, &BadEntryError{Index: index, Reason: fmt.Sprintf("inclusion proof does not match the signed checkpoint of size %d (rewritten)", cp.Size)}
	}
	p := Proof{Index: index, Size: cp.Size, Leaf: []byte(leaf.String), Root: cp.Root, Checkpoint: cp.Note, Hashes: make([][32]byte, len(rp))}
	for i, h := range rp {
		p.Hashes[i] = h
	}
	return p, nil
}

// ConsistencyProof proves that the tree of oldSize entries is a prefix of the
// tree of newSize entries, in the order tlog.CheckTree expects.
func (r *Reader) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([][32]byte, error) {
	if oldSize > newSize {
		return nil, fmt.Errorf("audit: consistency proof from %d to smaller %d", oldSize, newSize)
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("audit: consistency proof: %w", err)
	}
	defer tx.Rollback()
	size, _, err := readHead(ctx, tx)
	if err != nil {
		return nil, err
	}
	if newSize > size {
		return nil, fmt.Errorf("%w: size %d, log has %d", ErrBeyondSize, newSize, size)
	}
	if oldSize == 0 || oldSize == newSize {
		return [][32]byte{}, nil
	}
	if err := prunedConsistency(ctx, tx, oldSize, newSize); err != nil {
		return nil, err
	}
	tp, err := tlog.ProveTree(int64(newSize), int64(oldSize), dbHashes{ctx: ctx, q: tx})
	if err != nil {
		return nil, fmt.Errorf("audit: consistency proof %d..%d: %w", oldSize, newSize, err)
	}
	out := make([][32]byte, len(tp))
	for i, h := range tp {
		out[i] = h
	}
	return out, nil
}
