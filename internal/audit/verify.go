package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/treaty-dev/treaty/internal/identity"
)

// VerifyResult is the state of an intact log.
type VerifyResult struct {
	Entries     uint64   // entries ever logged (the head checkpoint's size), pruned ones included
	Root        [32]byte // RFC 6962 root of all entries
	Checkpoints int      // stored checkpoints checked (signature and root)
	Pruned      uint64   // entries present without content (dropped or never kept)
	// Prunes are the pruning records, oldest first; the last one says below
	// which entry rows are deleted and content dropped.
	Prunes []PruneRecord
	// Given are the outcomes for VerifyOptions.Checkpoints, in their order.
	Given []GivenResult
}

// GivenResult is how one checkpoint from elsewhere compared with the log.
type GivenResult struct {
	Size    uint64
	Root    [32]byte
	Checked bool // false: the checkpoint predates the pruned prefix, so its root cannot be recomputed
}

// String is what `treaty audit verify` prints. The first line is always
// "ok N entries root HEX"; then one line per pruning record,
//
//	pruned SEQ at TIME: entries below R deleted, content below C dropped
//
// and one per given checkpoint,
//
//	consistent with checkpoint SIZE root HEX
//	checkpoint SIZE predates the pruned prefix (entries below R): not checkable
func (r VerifyResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ok %d entries root %s", r.Entries, hex.EncodeToString(r.Root[:]))
	for _, p := range r.Prunes {
		fmt.Fprintf(&b, "\npruned %d at %s: entries below %d deleted, content below %d dropped", p.Seq, p.Time.UTC().Format(time.RFC3339), p.Rows, p.Content)
	}
	for _, g := range r.Given {
		if g.Checked {
			fmt.Fprintf(&b, "\nconsistent with checkpoint %d root %s", g.Size, hex.EncodeToString(g.Root[:]))
		} else {
			fmt.Fprintf(&b, "\ncheckpoint %d predates the pruned prefix (entries below %d): not checkable", g.Size, r.Prunes[len(r.Prunes)-1].Rows)
		}
	}
	return b.String()
}

// VerifyOptions adjusts VerifyWith.
type VerifyOptions struct {
	// Checkpoints are signed notes of this log obtained elsewhere (kept by a
	// peer, or in a receipt). Each must verify with the key and match the
	// recomputed tree; one larger than the stored log proves the tail was cut.
	Checkpoints [][]byte
	Workers     int // parallel readers; zero: GOMAXPROCS, at most 4
}

// Verify checks the whole log at path without modifying it; it may run while
// the node that owns the log is writing (and starts again if it pruned meanwhile). It
// recomputes every leaf hash and the Merkle tree from the leaf column alone,
// checks that stored tree hashes and present content match, that every stored
// checkpoint is signed by pub and matches the tree at its size, and that the
// head checkpoint covers exactly the stored entries.
//
// An error wrapping ErrTampered is a *BadEntryError naming the first entry
// (in log order) where the log stops matching, or a *BadCheckpointError.
// Residual risk: someone with write access who deletes the newest entries
// together with every checkpoint after the cut leaves a shorter log that
// verifies; only a checkpoint kept elsewhere (a peer's witness, a receipt,
// VerifyOptions.Checkpoints) exposes it.
func Verify(ctx context.Context, path string, pub identity.PublicKey) (VerifyResult, error) {
	return VerifyWith(ctx, path, pub, VerifyOptions{})
}

// verifyAttempts bounds how often VerifyWith starts again because the log
// was pruned while it read it.
const verifyAttempts = 3

// VerifyWith is Verify with options.
//
// The rows are read on other connections than the checkpoints and pruning
// records, each in its own snapshot: a pruning that commits meanwhile (the
// node's hourly retention) deletes rows or drops content the older pruning
// record does not explain. A failure when the latest pruning record has
// changed since is therefore not tampering: Verify starts again.
func VerifyWith(ctx context.Context, path string, pub identity.PublicKey, opts VerifyOptions) (VerifyResult, error) {
	for attempt := 1; ; attempt++ {
		res, seq, err := verifyOnce(ctx, path, pub, opts)
		if !errors.Is(err, ErrTampered) {
			return res, err
		}
		now, serr := latestPruneSeq(ctx, path)
		if serr != nil || now == seq {
			return res, err
		}
		if attempt == verifyAttempts {
			return VerifyResult{}, fmt.Errorf("audit: verify %s: the log was pruned while it was read, %d times: run it again", path, attempt)
		}
	}
}

// latestPruneSeq is the seq of the latest pruning record (0: none), as stored.
func latestPruneSeq(ctx context.Context, path string) (int64, error) {
	db, err := openReadDB(path, 1)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var seq int64
	if err := db.QueryRowContext(ctx, `SELECT CAST(coalesce(max(seq), 0) AS INTEGER) FROM prunes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("audit: verify %s: %w", path, err)
	}
	return seq, nil
}

// verifyOnce is one attempt of VerifyWith; seq is the latest pruning
// record's (latestPruneSeq) in the snapshot it checked against.
func verifyOnce(ctx context.Context, path string, pub identity.PublicKey, opts VerifyOptions) (VerifyResult, int64, error) {
	if pub.IsZero() {
		return VerifyResult{}, 0, errors.New("audit: Verify needs the log's public key")
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), 4)
	}
	db, err := openReadDB(path, 1)
	if err != nil {
		return VerifyResult{}, 0, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return VerifyResult{}, 0, fmt.Errorf("audit: verify %s: %w", path, err)
	}
	defer tx.Rollback()
	if _, err := readMeta(ctx, tx); err != nil {
		return VerifyResult{}, 0, err
	}
	var seq int64
	if err := tx.QueryRowContext(ctx, `SELECT CAST(coalesce(max(seq), 0) AS INTEGER) FROM prunes`).Scan(&seq); err != nil {
		return VerifyResult{}, 0, fmt.Errorf("audit: verify %s: %w", path, err)
	}
	res, err := verifyTx(ctx, tx, path, pub, opts, workers)
	return res, seq, err
}

// verifyTx checks the log against what tx reads (meta, pruning records,
// checkpoints), scanning the rows on workers connections of their own.
func verifyTx(ctx context.Context, tx *sql.Tx, path string, pub identity.PublicKey, opts VerifyOptions, workers int) (VerifyResult, error) {
	meta, err := readMeta(ctx, tx)
	if err != nil {
		return VerifyResult{}, err
	}
	if meta["key"] != pub.String() {
		return VerifyResult{}, fmt.Errorf("audit: %s belongs to %s, not %s", path, meta["key"], pub)
	}
	cols, err := hasIndexColumns(ctx, tx)
	if err != nil {
		return VerifyResult{}, err
	}
	from, err := indexFrom(meta, cols)
	if err != nil {
		return VerifyResult{}, err
	}
	prunes, err := allPrunes(ctx, tx, pub, meta["origin"])
	if err != nil {
		return VerifyResult{}, err
	}
	var pr PruneRecord
	if len(prunes) > 0 {
		pr = prunes[len(prunes)-1]
	}
	cps, head, err := loadCheckpoints(ctx, tx, pub, meta["origin"], pr.Rows)
	if err != nil {
		return VerifyResult{}, err
	}
	if head < pr.Rows {
		return VerifyResult{}, &BadPruneError{Seq: pr.Seq, Reason: fmt.Sprintf("deletes entries below %d but the head checkpoint covers %d", pr.Rows, head)}
	}
	stored := len(cps)
	var given []GivenResult
	for k, msg := range opts.Checkpoints {
		cp, err := OpenCheckpoint(msg, pub)
		if err != nil {
			return VerifyResult{}, fmt.Errorf("audit: given checkpoint %d: %w", k, err)
		}
		if cp.Origin != meta["origin"] {
			return VerifyResult{}, fmt.Errorf("audit: given checkpoint %d has origin %q, the log %q", k, cp.Origin, meta["origin"])
		}
		given = append(given, GivenResult{Size: cp.Size, Root: cp.Root, Checked: cp.Size >= pr.Rows})
		if cp.Size >= pr.Rows {
			cps = append(cps, cpCheck{size: cp.Size, root: cp.Root, given: true})
		}
	}
	sort.SliceStable(cps, func(i, j int) bool { return cps[i].size < cps[j].size })

	var minIdx, maxIdx sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT min(idx), max(idx) FROM entries`).Scan(&minIdx, &maxIdx); err != nil {
		return VerifyResult{}, fmt.Errorf("audit: verify %s: %w", path, err)
	}
	if minIdx.Valid && minIdx.Int64 < int64(pr.Rows) {
		what := "entry 0"
		if pr.Rows > 0 {
			what = fmt.Sprintf("the pruned prefix (pruning record %d deletes entries below %d)", pr.Seq, pr.Rows)
		}
		return VerifyResult{}, &BadEntryError{Index: pr.Rows, Reason: fmt.Sprintf("a row with index %d was inserted before %s", minIdx.Int64, what)}
	}

	v := &verifier{cps: cps, tr: pr.tree(), lastGood: pr.Rows}
	if err := v.checkpoints(); err != nil {
		return VerifyResult{}, err
	}
	if err := scanParallel(ctx, path, cols, from, pr.Rows, head, pr.Content, workers, verifyChunk, v); err != nil {
		return VerifyResult{}, err
	}
	if maxIdx.Valid && uint64(maxIdx.Int64) >= head {
		first := head
		if err := tx.QueryRowContext(ctx, `SELECT min(idx) FROM entries WHERE idx >= ?`, int64(head)).Scan(&first); err != nil {
			return VerifyResult{}, fmt.Errorf("audit: verify %s: %w", path, err)
		}
		return VerifyResult{}, &BadEntryError{Index: first, Reason: fmt.Sprintf(
			"not covered by any signed checkpoint (the head checkpoint covers %d entries): inserted or appended without the key", head)}
	}
	if err := v.finish(head); err != nil {
		return VerifyResult{}, err
	}
	return VerifyResult{Entries: head, Root: v.tr.root(), Checkpoints: stored, Pruned: v.noContent, Prunes: prunes, Given: given}, nil
}

// loadCheckpoints reads and opens every stored checkpoint. Malformed ones are
// returned as checks that fail when the scan reaches their size, so the first
// problem in log order is the one reported.
func loadCheckpoints(ctx context.Context, q querier, pub identity.PublicKey, origin string, from uint64) ([]cpCheck, uint64, error) {
	// A value of the wrong type, or a note too large to be one, is reported
	// as such without being copied out of SQLite.
	rows, err := q.QueryContext(ctx, `SELECT CASE WHEN typeof(size) = 'integer' THEN size END,
		CASE WHEN octet_length(note) <= ?2 THEN note END, octet_length(note)
		FROM checkpoints WHERE size >= ?1 ORDER BY size`, int64(from), MaxNoteSize)
	if err != nil {
		return nil, 0, fmt.Errorf("audit: read checkpoints: %w", err)
	}
	defer rows.Close()
	var cps []cpCheck
	var notes [][]byte
	var head uint64
	for rows.Next() {
		var size, n sql.NullInt64
		var msg []byte
		if err := rows.Scan(&size, &msg, &n); err != nil {
			return nil, 0, fmt.Errorf("audit: read checkpoints: %w", err)
		}
		if !size.Valid {
			return nil, 0, &BadCheckpointError{Size: 0, Reason: "a row's size is not an integer"}
		}
		if size.Int64 < 0 {
			return nil, 0, &BadCheckpointError{Size: 0, Reason: fmt.Sprintf("negative size %d", size.Int64)}
		}
		c := cpCheck{size: uint64(size.Int64)}
		switch {
		case !n.Valid:
			c.bad = "no note"
		case msg == nil && n.Int64 > MaxNoteSize:
			c.bad = fmt.Sprintf("note is %d bytes, at most %d", n.Int64, MaxNoteSize)
		}
		cps = append(cps, c)
		notes = append(notes, msg)
		head = max(head, c.size)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("audit: read checkpoints: %w", err)
	}
	// One signature check per retained checkpoint (hundreds in a large log):
	// spread over the cores.
	workers := min(runtime.GOMAXPROCS(0), max(1, len(cps)/64))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(cps); i += workers {
				c := &cps[i]
				if c.bad != "" {
					continue
				}
				cp, err := OpenCheckpoint(notes[i], pub)
				switch {
				case err != nil:
					c.bad = err.Error()
				case cp.Size != c.size:
					c.bad = fmt.Sprintf("note says size %d", cp.Size)
				case cp.Origin != origin:
					c.bad = fmt.Sprintf("note has origin %q, the log %q", cp.Origin, origin)
				default:
					c.root = cp.Root
				}
			}
		})
	}
	wg.Wait()
	return cps, head, nil
}

// cpCheck is a checkpoint the recomputed tree must match at its size.
type cpCheck struct {
	size  uint64
	root  tlog.Hash
	bad   string // non-empty: the stored note itself is invalid
	given bool   // from VerifyOptions, not from the log
}

// verifier rebuilds the tree in log order from chunk results.
type verifier struct {
	tr       tree
	cps      []cpCheck // sorted by size
	next     int       // first unchecked in cps
	lastGood uint64    // size of the last checkpoint that matched
	buf      []byte

	noContent uint64 // rows without content (pruned or digest only)
}

// checkpoints checks every checkpoint whose size the tree has reached.
func (v *verifier) checkpoints() error {
	for v.next < len(v.cps) && v.cps[v.next].size <= v.tr.size {
		c := v.cps[v.next]
		v.next++
		if c.size < v.tr.size {
			continue // before the part this verifier rebuilt (tail check)
		}
		if c.bad != "" {
			return &BadCheckpointError{Size: c.size, Reason: c.bad}
		}
		if c.root != v.tr.root() {
			what := "signed checkpoint"
			if c.given {
				what = "given checkpoint"
			}
			return &BadEntryError{Index: v.lastGood, Reason: fmt.Sprintf(
				"entries %d to %d do not match the %s of size %d (rewritten)", v.lastGood, int64(c.size)-1, what, c.size)}
		}
		v.lastGood = c.size
	}
	return nil
}

// feed adds the rows of one chunk, in order, then reports the chunk's error.
func (v *verifier) feed(res chunkResult) error {
	off := 0
	for _, lh := range res.leaves {
		i := v.tr.size
		n := storedLen(i)
		want := res.stored[off : off+n]
		off += n
		v.buf = v.tr.add(lh, v.buf[:0])
		if !bytes.Equal(v.buf, want) {
			level := 0
			for ; level*32 < n && bytes.Equal(v.buf[level*32:level*32+32], want[level*32:level*32+32]); level++ {
			}
			return &BadEntryError{Index: i, Reason: fmt.Sprintf(
				"stored tree hash at level %d differs from the recomputed tree (an entry in %d to %d, or its stored hashes, was rewritten)",
				level, i+1-(1<<level), i)}
		}
		if err := v.checkpoints(); err != nil {
			return err
		}
	}
	v.noContent += res.noContent
	return res.err
}

// finish reports checkpoints beyond the end of the log: the tail was cut.
func (v *verifier) finish(n uint64) error {
	if err := v.checkpoints(); err != nil {
		return err
	}
	if v.next < len(v.cps) {
		c := v.cps[v.next]
		if c.given {
			return &BadEntryError{Index: n, Reason: fmt.Sprintf("missing: the log ends at %d but a given checkpoint (one a peer witnessed) covers %d entries: the log was cut back (deleted)", n, c.size)}
		}
		return &BadEntryError{Index: n, Reason: fmt.Sprintf("missing: a checkpoint covers %d entries but the log ends at %d (deleted)", c.size, n)}
	}
	return nil
}

// chunkResult is what one scan of rows [from, to) found: the leaf hashes and
// stored hashes of the rows that passed the per-row checks, then the first
// failure, if any.
type chunkResult struct {
	leaves    []tlog.Hash
	stored    []byte
	noContent uint64
	err       error
}

// chunkScan checks rows [from, to) one at a time, each on its own: the index
// is the next one, the leaf names that index, present content matches the
// leaf's digest, content the leaf says was kept is there unless the entry is
// below contentFrom (a recorded pruning dropped it), and the stored leaf hash
// matches the leaf.
type chunkScan struct {
	res                   chunkResult
	next, to, contentFrom uint64
	h                     *leafHasher
	prefix                []byte
	// indexFrom is the first entry whose index columns must match its leaf;
	// those below it must hold the defaults.
	indexFrom uint64
}

// newChunkScan starts a scan; spare is a consumed result whose buffers it
// may reuse (zero: allocate).
func newChunkScan(from, to, contentFrom uint64, h *leafHasher, indexFrom uint64, spare chunkResult) *chunkScan {
	s := &chunkScan{next: from, to: to, contentFrom: contentFrom, h: h, indexFrom: indexFrom}
	if from < to {
		s.res.leaves, s.res.stored = spare.leaves[:0], spare.stored[:0]
		if uint64(cap(s.res.leaves)) < to-from || uint64(cap(s.res.stored)) < (to-from)*2*tlog.HashSize {
			s.res.leaves = make([]tlog.Hash, 0, to-from)
			s.res.stored = make([]byte, 0, (to-from)*2*tlog.HashSize)
		}
	}
	return s
}

// row checks one row; false means it failed (s.res.err says why) and the
// scan ends. The slices are only read during the call.
func (s *chunkScan) row(idx int64, leaf, content, hashes, peerKey, rareKind, over []byte) bool {
	next := s.next
	if idx < 0 || uint64(idx) != next {
		s.res.err = &BadEntryError{Index: next, Reason: "missing (deleted without a pruning record)"}
		return false
	}
	if len(over) > 0 {
		s.res.err = &BadEntryError{Index: next, Reason: fmt.Sprintf("%s is larger than any entry's can be (edited)", over)}
		return false
	}
	s.prefix = strconv.AppendUint(append(s.prefix[:0], `,"index":`...), next, 10)
	s.prefix = append(s.prefix, `,"time":"`...)
	reason, dropped := checkRow(leaf, s.prefix, content)
	if reason == "" && dropped && next >= s.contentFrom {
		reason = "content removed without a pruning record (edited)"
	}
	if reason == "" {
		if next >= s.indexFrom {
			reason = checkIndexColumns(leaf, peerKey, rareKind)
		} else if len(peerKey) != 0 || rareKind != nil {
			reason = "index columns set on an entry from before them (edited)"
		}
	}
	if reason != "" {
		s.res.err = &BadEntryError{Index: next, Reason: reason}
		return false
	}
	if len(hashes) != storedLen(next) {
		s.res.err = &BadEntryError{Index: next, Reason: fmt.Sprintf("stored tree hashes are %d bytes, want %d", len(hashes), storedLen(next))}
		return false
	}
	lh := s.h.sum(leaf)
	if !bytes.Equal(lh[:], hashes[:tlog.HashSize]) {
		s.res.err = &BadEntryError{Index: next, Reason: "leaf does not match its stored hash (edited)"}
		return false
	}
	if content == nil {
		s.res.noContent++
	}
	s.res.leaves = append(s.res.leaves, lh)
	s.res.stored = append(s.res.stored, hashes...)
	s.next++
	return true
}

// end returns the result once the rows have been read (err: the read's).
func (s *chunkScan) end(err error) chunkResult {
	switch {
	case s.res.err != nil:
	case err != nil:
		s.res.err = err
	case s.next != s.to:
		s.res.err = &BadEntryError{Index: s.next, Reason: "missing (deleted without a pruning record)"}
	}
	return s.res
}

// scanChunk checks rows [from, to) read through q (see chunkScan).
func scanChunk(ctx context.Context, q querier, from, to, contentFrom uint64, h *leafHasher, cols bool, indexFrom uint64) chunkResult {
	s := newChunkScan(from, to, contentFrom, h, indexFrom, chunkResult{})
	if from >= to {
		return s.res
	}
	rows, err := q.QueryContext(ctx, rowSelect(cols), int64(from), int64(to))
	if err != nil {
		return s.end(fmt.Errorf("audit: read entries: %w", err))
	}
	defer rows.Close()
	var idx int64
	var leaf, content, hashes, peerKey, rareKind, over sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&idx, &leaf, &content, &hashes, &peerKey, &rareKind, &over); err != nil {
			return s.end(fmt.Errorf("audit: read entry %d: %w", s.next, err))
		}
		if !s.row(idx, leaf, content, hashes, peerKey, rareKind, over) {
			return s.end(nil)
		}
	}
	if err := rows.Err(); err != nil {
		return s.end(fmt.Errorf("audit: read entries: %w", err))
	}
	return s.end(nil)
}

// scanChunkRaw is scanChunk reading through a rowReader.
func scanChunkRaw(ctx context.Context, r *rowReader, from, to, contentFrom uint64, h *leafHasher, indexFrom uint64, spare chunkResult) chunkResult {
	s := newChunkScan(from, to, contentFrom, h, indexFrom, spare)
	if from >= to {
		return s.res
	}
	return s.end(r.scan(ctx, from, to, s.row))
}

// Bounds of a stored row's values. No entry's can be larger (see prepare), so
// a larger one was edited in; readers report it without reading it:
// octet_length reads only the record header, not the value.
const (
	maxLeafBytes   = 2*maxRaw + 64<<10  // report and evidence, six escaped short fields, digests
	maxHashesBytes = 65 * tlog.HashSize // storedLen's largest
	maxIndexBytes  = 4 * maxShort       // peer_key (six characters) and rare_kind (a kind)
)

// rowSelect reads rows [?1, ?2) in index order: idx, the leaf as the bytes
// of its text (what the leaf hash covers), content, hashes, the index
// columns (constants for a log from before them), then the name of the
// first of those columns whose value is over its bound (NULL: none; the
// value itself then reads as NULL). List compares the index
// columns as TEXT, so one of another type (a BLOB of the same bytes, in a
// table rebuilt without STRICT) hides its entry: it reads as x'ff', which no
// leaf's peer or kind (valid UTF-8) matches.
func rowSelect(cols bool) string {
	bound := func(col string, max int, expr string) string {
		return fmt.Sprintf(`CASE WHEN octet_length(%s) <= %d THEN %s END`, col, max, expr)
	}
	c := `'', NULL`
	if cols {
		c = bound("peer_key", maxIndexBytes, peerKeyExpr) + `, ` + bound("rare_kind", maxIndexBytes, rareKindExpr)
	}
	return `SELECT idx, ` + bound("leaf", maxLeafBytes, "CAST(leaf AS BLOB)") + `, ` + bound("content", maxContent, "content") + `, ` +
		bound("hashes", maxHashesBytes, "hashes") + `, ` + c + `, ` + overExpr(cols) + ` FROM entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx`
}

// The index columns as List compares them (see rowSelect).
const (
	peerKeyExpr  = `CASE WHEN typeof(peer_key) = 'text' THEN peer_key ELSE x'ff' END`
	rareKindExpr = `CASE WHEN rare_kind IS NULL OR typeof(rare_kind) = 'text' THEN rare_kind ELSE x'ff' END`
)

// overExpr names the first column of a row whose value is over its bound,
// or is NULL; it reads no value.
func overExpr(cols bool) string {
	over := fmt.Sprintf(`CASE WHEN octet_length(leaf) > %d THEN 'leaf' WHEN octet_length(content) > %d THEN 'content' `+
		`WHEN octet_length(hashes) > %d THEN 'hashes' `, maxLeafBytes, maxContent, maxHashesBytes)
	if cols {
		over += fmt.Sprintf(`WHEN octet_length(peer_key) > %d THEN 'peer_key' WHEN octet_length(rare_kind) > %d THEN 'rare_kind' `,
			maxIndexBytes, maxIndexBytes)
	}
	return over + `END`
}

// rawRowSelect is rowSelect for a rowReader, without the per-value checks,
// which cost Verify a tenth of its time: the reader's connection refuses to
// load a value over maxContent (SQLITE_LIMIT_LENGTH), and overBound checks
// the loaded ones.
func rawRowSelect(cols bool) string {
	c := `'', NULL`
	if cols {
		c = peerKeyExpr + `, ` + rareKindExpr
	}
	return `SELECT idx, CAST(leaf AS BLOB), content, hashes, ` + c + ` FROM entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx`
}

// rowSelectOver reads idx and overExpr of every row.
func rowSelectOver(cols bool) string {
	return `SELECT idx, ` + overExpr(cols) + ` AS over FROM entries`
}

// overBound is overExpr for values already loaded, by their lengths.
func overBound(leaf, content, hashes, peerKey, rareKind int) string {
	switch {
	case leaf > maxLeafBytes:
		return "leaf"
	case content > maxContent:
		return "content"
	case hashes > maxHashesBytes:
		return "hashes"
	case peerKey > maxIndexBytes:
		return "peer_key"
	case rareKind > maxIndexBytes:
		return "rare_kind"
	}
	return ""
}

// checkIndexColumns checks a row's peer_key and rare_kind against its leaf
// (an edited index column would hide the entry from List).
func checkIndexColumns(leaf, peer, rare []byte) string {
	k, p, ok := leafKindPeer(leaf)
	if !ok {
		return "leaf is malformed"
	}
	if !bytes.Equal(peer, peerKey(p)) {
		return "peer_key column does not match the leaf (edited)"
	}
	want := k
	if !isRareKind(string(k)) {
		want = nil
	}
	if !bytes.Equal(rare, want) || (rare == nil) != (want == nil) {
		return "rare_kind column does not match the leaf (edited)"
	}
	return ""
}

// leafKindPeer returns the kind and peer of a leaf: the two JSON strings
// after `,"kind":` (whose first occurrence is the key: nothing before it is
// free text) and `,"peer":`.
func leafKindPeer(leaf []byte) (kind, peer []byte, ok bool) {
	i := bytes.Index(leaf, []byte(`,"kind":`))
	if i < 0 {
		return nil, nil, false
	}
	kind, rest, ok := cutJSONString(leaf[i+len(`,"kind":`):])
	if !ok {
		return nil, nil, false
	}
	rest, ok = bytes.CutPrefix(rest, []byte(`,"peer":`))
	if !ok {
		return nil, nil, false
	}
	peer, _, ok = cutJSONString(rest)
	return kind, peer, ok
}

// cutJSONString decodes the JSON string b starts with and returns the rest.
func cutJSONString(b []byte) (s, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	escaped := false
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			if !escaped {
				return b[1:i], b[i+1:], true
			}
			var str string
			if err := json.Unmarshal(b[:i+1], &str); err != nil {
				return nil, nil, false
			}
			return []byte(str), b[i+1:], true
		}
	}
	return nil, nil, false
}

// checkRow checks what can be checked of one row without the tree. idxPart
// is the leaf's expected text after the version, up to the time value. It
// reports whether the leaf says content was kept while the row has none.
func checkRow(leaf, idxPart, content []byte) (reason string, dropped bool) {
	var v2 bool
	switch {
	case bytes.HasPrefix(leaf, []byte(`{"v":2`)):
		v2 = true
	case bytes.HasPrefix(leaf, []byte(`{"v":1`)):
	default:
		return "leaf is malformed", false
	}
	rest, ok := bytes.CutPrefix(leaf[len(`{"v":2`):], idxPart)
	if !ok {
		return "leaf does not carry this index (moved, reordered or not a leaf)", false
	}
	if len(rest) < timeLen {
		return "leaf is malformed", false
	}
	rest, ok = bytes.CutPrefix(rest[timeLen:], []byte(`","content_digest":"`))
	if !ok {
		return "leaf is malformed", false
	}
	end := bytes.IndexByte(rest, '"')
	if end != 0 && end != 2*sha256.Size {
		return "leaf is malformed", false
	}
	kept := end != 0 // version 1: unknown, assume the digest-only case
	if v2 {
		after := rest[end:]
		switch {
		case bytes.HasPrefix(after, []byte(`","content_kept":true,`)):
			kept = true
		case bytes.HasPrefix(after, []byte(`","content_kept":false,`)):
			kept = false
		default:
			return "leaf is malformed", false
		}
	}
	if content == nil {
		return "", v2 && kept
	}
	if end == 0 {
		return "content present but the leaf has no content digest (edited)", false
	}
	if !kept {
		return "content present but the leaf says none was kept (edited)", false
	}
	sum := sha256.Sum256(content)
	var want [sha256.Size]byte
	if _, err := hex.Decode(want[:], rest[:end]); err != nil || want != sum {
		return "content does not match the leaf's digest (edited)", false
	}
	return "", false
}

// verifyChunk is the number of rows one worker reads at a time.
const verifyChunk = 8192

// scanParallel feeds rows [start, n) of the log at path to v in order,
// reading and checking chunks of chunk rows with workers connections in
// parallel.
func scanParallel(ctx context.Context, path string, cols bool, indexFrom, start, n, contentFrom uint64, workers int, chunk uint64, v *verifier) error {
	ctx, cancel := context.WithCancel(ctx)
	type job struct {
		from, to uint64
		out      chan chunkResult
	}
	jobs := make(chan job)
	order := make(chan job, 2*workers)
	// Results the verifier has consumed go back to the workers: their
	// buffers are most of what Verify allocates.
	spares := make(chan chunkResult, 3*workers)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		defer close(order)
		for from := start; from < n; from += chunk {
			j := job{from: from, to: min(from+chunk, n), out: make(chan chunkResult, 1)}
			select {
			case order <- j:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := openRowReader(path, cols)
			if err == nil {
				defer r.close()
			}
			h := newLeafHasher()
			for j := range jobs {
				if err != nil {
					j.out <- chunkResult{err: err}
					continue
				}
				var spare chunkResult
				select {
				case spare = <-spares:
				default:
				}
				j.out <- scanChunkRaw(ctx, r, j.from, j.to, contentFrom, h, indexFrom, spare)
			}
		}()
	}
	for j := range order {
		var res chunkResult
		select {
		case res = <-j.out:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := v.feed(res); err != nil {
			return err
		}
		select {
		case spares <- res:
		default:
		}
	}
	return ctx.Err()
}
