package audit

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Witness keeps, in the log's database, the latest checkpoint seen from each
// peer, and judges every new one against it: a peer's log may only grow by
// appending. It moves nothing over the wire; the caller hands it notes and a
// way to ask the peer for consistency proofs. Safe for concurrent use; calls
// for one peer are serialised.
type Witness struct {
	l     *Log
	mu    sync.Mutex
	locks map[identity.PublicKey]*sync.Mutex
}

// ConsistencyFunc asks the peer for a proof that its tree of oldSize entries is
// a prefix of its tree of newSize entries (what the peer's
// Log.ConsistencyProof returns). A peer answering ErrBeyondSize (the caller
// maps the wire reply to it) says its log is smaller than newSize.
type ConsistencyFunc func(ctx context.Context, oldSize, newSize uint64) ([][32]byte, error)

// maxProofLen bounds a consistency proof: at most two hashes per tree level.
const maxProofLen = 128

// maxForksPerPeer bounds the forks kept per peer in any forkWindow. A peer
// can sign any number of conflicting checkpoints, and fork records go in over
// the high-water mark; past the bound a conflict is still reported (and
// alerted) but not stored: the kept ones already prove the misbehaviour. The
// window keeps evidence of a later incident (after a lifted quarantine) while
// bounding what a peer can add to about 1 MiB a day (64 KiB a fork at most).
const (
	maxForksPerPeer = 16
	forkWindow      = 24 * time.Hour
)

// Observe judges a checkpoint note that peer presented.
//
//   - The note must be signed by peer under origin OriginFor(peer); otherwise
//     the error wraps ErrBadNote or ErrBadSignature and nothing is recorded.
//   - The first note seen from a peer is kept as is.
//   - Same size: the root must be the same.
//   - Larger size: consistency is called for a proof from the kept size to the
//     new one; if it holds, the new note is kept.
//   - Smaller size: consistency is called for a proof from the new size to the
//     kept one; if it holds the note is merely stale (calls answered out of
//     order) and is ignored. If consistency is nil or the peer answers
//     ErrBeyondSize, the peer has rolled back.
//
// A conflict returns a *ForkError: both notes (and a failed proof) are stored
// in the forks table, an "audit.fork" entry is appended to this log, and an
// error is logged; at most maxForksPerPeer conflicts a day are stored per
// peer, later ones are only returned. The kept note does not change. Any other error from
// consistency (peer unreachable) is returned wrapped and decides nothing.
func (w *Witness) Observe(ctx context.Context, peer identity.PublicKey, note []byte, consistency ConsistencyFunc) error {
	cp, err := OpenCheckpoint(note, peer)
	if err != nil {
		return err
	}
	if want := OriginFor(peer); cp.Origin != want {
		return fmt.Errorf("%w: origin %q, want %q", ErrBadNote, cp.Origin, want)
	}
	unlock := w.lock(peer)
	defer unlock()

	old, ok, err := w.Latest(ctx, peer)
	if err != nil {
		return err
	}
	if !ok {
		return w.keep(ctx, peer, cp)
	}
	switch {
	case cp.Size == old.Size:
		if cp.Root != old.Root {
			return w.fork(ctx, peer, "same size, different root", old, cp, nil)
		}
		return nil
	case cp.Size > old.Size:
		if old.Size == 0 {
			return w.keep(ctx, peer, cp) // every log extends the empty log
		}
		if consistency == nil {
			return fmt.Errorf("audit: peer %s checkpoint %d is newer than %d and no consistency proof can be asked", peer.Short(), cp.Size, old.Size)
		}
		proof, err := consistency(ctx, old.Size, cp.Size)
		if err != nil {
			return fmt.Errorf("audit: consistency proof from peer %s (%d to %d): %w", peer.Short(), old.Size, cp.Size, err)
		}
		if !consistent(proof, old, cp) {
			return w.fork(ctx, peer, "inconsistent", old, cp, proof)
		}
		return w.keep(ctx, peer, cp)
	default: // cp.Size < old.Size
		if consistency == nil {
			return w.fork(ctx, peer, "rollback", old, cp, nil)
		}
		if cp.Size == 0 {
			return nil // the empty log is a prefix of every log
		}
		proof, err := consistency(ctx, cp.Size, old.Size)
		if errors.Is(err, ErrBeyondSize) {
			return w.fork(ctx, peer, "rollback", old, cp, nil)
		}
		if err != nil {
			return fmt.Errorf("audit: consistency proof from peer %s (%d to %d): %w", peer.Short(), cp.Size, old.Size, err)
		}
		if !consistent(proof, cp, old) {
			return w.fork(ctx, peer, "rollback", old, cp, proof)
		}
		return nil // stale
	}
}

// consistent checks an RFC 6962 consistency proof from small to big.
func consistent(proof [][32]byte, small, big Checkpoint) bool {
	if len(proof) > maxProofLen {
		return false
	}
	tp := make(tlog.TreeProof, len(proof))
	for i, h := range proof {
		tp[i] = h
	}
	return tlog.CheckTree(tp, int64(big.Size), big.Root, int64(small.Size), small.Root) == nil
}

func (w *Witness) lock(peer identity.PublicKey) func() {
	w.mu.Lock()
	m, ok := w.locks[peer]
	if !ok {
		m = &sync.Mutex{}
		w.locks[peer] = m
	}
	w.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// Latest returns the checkpoint kept for peer, if any.
func (w *Witness) Latest(ctx context.Context, peer identity.PublicKey) (Checkpoint, bool, error) {
	var msg []byte
	err := w.l.r.db.QueryRowContext(ctx, `SELECT note FROM witness WHERE peer = ?`, peer.String()).Scan(&msg)
	if errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("audit: witness state of %s: %w", peer.Short(), err)
	}
	cp, err := OpenCheckpoint(msg, peer)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("audit: witness state of %s: %w", peer.Short(), err)
	}
	return cp, true, nil
}

func (w *Witness) keep(ctx context.Context, peer identity.PublicKey, cp Checkpoint) error {
	return w.l.exec(ctx, func(ctx context.Context, t *txn) error {
		_, err := t.tx.ExecContext(ctx, `INSERT INTO witness(peer, size, root, note, time) VALUES(?, ?, ?, ?, ?)
			ON CONFLICT(peer) DO UPDATE SET size = excluded.size, root = excluded.root, note = excluded.note, time = excluded.time`,
			peer.String(), int64(cp.Size), cp.Root[:], string(cp.Note), t.ts)
		if err != nil {
			return fmt.Errorf("audit: keep checkpoint of %s: %w", peer.Short(), err)
		}
		return nil
	})
}

// forkEvidence is the Evidence of an "audit.fork" entry.
type forkEvidence struct {
	Reason string   `json:"reason"`
	Old    string   `json:"old"`
	New    string   `json:"new"`
	Proof  []string `json:"proof,omitempty"`
}

func (w *Witness) fork(ctx context.Context, peer identity.PublicKey, reason string, old, cp Checkpoint, proof [][32]byte) error {
	ferr := &ForkError{Peer: peer, Reason: reason, Old: old.Note, New: cp.Note}
	since, _ := formatTime(w.l.cfg.Now().Add(-forkWindow)) // "" (all of them) before 1970
	var seen, kept int
	err := w.l.r.db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE old_note = ?2 AND new_note = ?3),
		count(*) FILTER (WHERE time >= ?4) FROM forks WHERE peer = ?1`,
		peer.String(), string(old.Note), string(cp.Note), since).Scan(&seen, &kept)
	if err != nil {
		return fmt.Errorf("audit: record fork of %s: %w", peer.Short(), err)
	}
	if seen > 0 {
		return ferr // already recorded and alerted
	}
	if kept >= maxForksPerPeer {
		w.l.cfg.Logger.Warn("audit: peer's log forked again; not recorded", "peer", peer, "reason", reason, "kept_in_window", kept, "window", forkWindow)
		return ferr
	}
	ev := forkEvidence{Reason: reason, Old: string(old.Note), New: string(cp.Note)}
	var proofBlob []byte
	for _, h := range proof {
		ev.Proof = append(ev.Proof, hex.EncodeToString(h[:]))
		proofBlob = append(proofBlob, h[:]...)
	}
	evJSON, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	p, err := prepare(Entry{Kind: KindFork, Peer: peer.String(), Outcome: "fork", Stage: "witness", Evidence: evJSON})
	if err != nil {
		return err
	}
	err = w.l.exec(ctx, func(ctx context.Context, t *txn) error {
		idx, err := t.append(ctx, p)
		if err != nil {
			return err
		}
		_, err = t.tx.ExecContext(ctx, `INSERT INTO forks(peer, reason, old_note, new_note, proof, time, entry) VALUES(?, ?, ?, ?, ?, ?, ?)`,
			peer.String(), reason, string(old.Note), string(cp.Note), proofBlob, t.ts, int64(idx))
		if err != nil {
			return fmt.Errorf("audit: record fork of %s: %w", peer.Short(), err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: record fork of %s: %w", peer.Short(), err)
	}
	w.l.cfg.Logger.Error("audit: peer's log forked", "peer", peer, "reason", reason, "old_size", old.Size, "new_size", cp.Size)
	return ferr
}

// Fork is one recorded conflict.
type Fork struct {
	Peer   string // did:key
	Reason string
	Old    []byte // signed note kept before
	New    []byte // conflicting signed note
	Proof  [][32]byte
	Time   time.Time
	Entry  uint64 // index of the "audit.fork" entry in this log
}

// Forks returns the recorded conflicts of peer, or of every peer when peer is
// the zero key, oldest first.
func (w *Witness) Forks(ctx context.Context, peer identity.PublicKey) ([]Fork, error) {
	q := `SELECT peer, reason, old_note, new_note, proof, time, entry FROM forks`
	var args []any
	if !peer.IsZero() {
		q += ` WHERE peer = ?`
		args = append(args, peer.String())
	}
	rows, err := w.l.r.db.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: forks: %w", err)
	}
	defer rows.Close()
	var out []Fork
	for rows.Next() {
		var f Fork
		var proof []byte
		var ts string
		var entry int64
		if err := rows.Scan(&f.Peer, &f.Reason, &f.Old, &f.New, &proof, &ts, &entry); err != nil {
			return nil, fmt.Errorf("audit: forks: %w", err)
		}
		for len(proof) >= 32 {
			f.Proof = append(f.Proof, [32]byte(proof[:32]))
			proof = proof[32:]
		}
		f.Time, _ = time.Parse(timeLayout, ts)
		f.Entry = uint64(entry)
		out = append(out, f)
	}
	return out, rows.Err()
}

// WitnessedCheckpoint returns the checkpoint of pub's log that the log at path
// keeps as a witness: given a peer's audit.db, what that peer last saw of
// pub's log (for VerifyOptions.Checkpoints). ok is false when it has none.
func WitnessedCheckpoint(ctx context.Context, path string, pub identity.PublicKey) (note []byte, ok bool, err error) {
	db, err := openReadDB(path, 1)
	if err != nil {
		return nil, false, err
	}
	defer db.Close()
	if _, err := readMeta(ctx, db); err != nil {
		return nil, false, err
	}
	err = db.QueryRowContext(ctx, `SELECT note FROM witness WHERE peer = ?`, pub.String()).Scan(&note)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("audit: witness row in %s: %w", path, err)
	}
	return note, true, nil
}
