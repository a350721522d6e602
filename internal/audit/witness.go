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
	// streaks counts, per peer, the notes not judged in a row for want of a
	// proof (in memory: a restart begins a new streak).
	streaks map[identity.PublicKey]*streak
}

type streak struct {
	failures int // proofs not had, in a row
}

// ConsistencyFunc asks the peer for a proof that its tree of oldSize entries is
// a prefix of its tree of newSize entries (what the peer's
// Log.ConsistencyProof returns). The caller maps the peer's answer onto the
// error: ErrBeyondSize (its log is smaller than newSize), *PrunedError (it
// pruned oldSize; the record and a proof from its cut), ErrProofRefused (it
// refused at its audit stage: counted as not judged, like an unreachable
// peer), ErrMalformedProof (it answered, but not with a proof). Any other
// error means the peer could not be asked.
type ConsistencyFunc func(ctx context.Context, oldSize, newSize uint64) ([][32]byte, error)

// Errors a ConsistencyFunc wraps for a peer that answered without a proof.
var (
	// ErrProofRefused: the peer refused the request at its audit stage. An
	// honest peer does so on a passing fault of its store, and one running
	// an earlier version for a size below its pruning cut (with no signed
	// record to show), so it is not evidence: it counts toward
	// maxUnwitnessed.
	ErrProofRefused = errors.New("audit: peer refused to give a consistency proof")
	// ErrMalformedProof: the peer's answer is not a proof (not hex, a hash
	// not 32 bytes, not the answer's shape).
	ErrMalformedProof = errors.New("audit: peer's consistency proof is malformed")
)

// maxProofLen bounds a consistency proof: at most two hashes per tree level.
const maxProofLen = 128

// maxForksPerPeer bounds the forks kept per peer in any forkWindow. A peer
// can sign any number of conflicting checkpoints, and fork records go in over
// the high-water mark; past the bound a conflict is still reported (and
// alerted) but not stored: the kept ones already prove the misbehaviour. The
// window keeps evidence of a later incident (after a lifted quarantine) while
// bounding what a peer can add to about 1 MiB a day (64 KiB a fork at most).
// Gaps (see Observe) have the same bound of their own.
const (
	maxForksPerPeer = 16
	forkWindow      = 24 * time.Hour
)

// maxUnwitnessed is how many notes in a row a peer may leave unjudged (it
// cannot be asked for proofs, or refuses them) before NotJudgedError.Alert
// names it.
const maxUnwitnessed = 10

// Reasons of forks Observe records besides conflicting checkpoints.
const (
	// ReasonUnproven: the peer signed both checkpoints but answered the
	// request for a proof between them with something that is no proof.
	ReasonUnproven = "unproven"
	// ReasonPruneInconsistent: the peer's signed pruning record does not
	// lead to its new checkpoint (Fork.Old is then the record).
	ReasonPruneInconsistent = "pruning record inconsistent"
)

// Observe judges a checkpoint note that peer presented.
//
//   - The note must be signed by peer under origin OriginFor(peer); otherwise
//     the error wraps ErrBadNote or ErrBadSignature and nothing is recorded.
//   - The first note seen from a peer is kept as is.
//   - Same size: the root must be the same.
//   - Larger size: consistency is called for a proof from the kept size to the
//     new one; if it holds, the new note is kept. If the peer pruned the kept
//     size, its signed pruning record and a proof from the cut stand in: the
//     new note is kept and an "audit.gap" entry records the interval that was
//     not witnessed (see gap).
//   - Smaller size: consistency is called for a proof from the new size to the
//     kept one; if it holds the note is merely stale (calls answered out of
//     order) and is ignored. If consistency is nil or the peer answers
//     ErrBeyondSize, the peer has rolled back.
//
// A conflict returns a *ForkError: both notes (and a failed proof) are stored
// in the forks table, an "audit.fork" entry is appended to this log, and an
// error is logged; at most maxForksPerPeer conflicts a day are stored per
// peer, later ones are only returned. The kept note does not change. A peer
// that answers with a malformed proof, or refuses maxProofRefusals times in a
// row, is judged the same way (reason ReasonUnproven): it signed both sizes
// and cannot show that one extends the other. A peer that cannot be asked
// decides nothing: the error is a *NotJudgedError counting the streak.
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
		var pe *PrunedError
		if errors.As(err, &pe) {
			return w.gap(ctx, peer, old, cp, pe)
		}
		if err != nil {
			return w.unproven(ctx, peer, old, cp, err)
		}
		w.judged(peer)
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
			w.judged(peer)
			return w.fork(ctx, peer, "rollback", old, cp, nil)
		}
		if errors.Is(err, ErrPruned) {
			// A stale note below the peer's cut: nothing left to judge it by.
			return fmt.Errorf("audit: peer %s checkpoint %d is older than the kept %d and below its pruning cut: %w", peer.Short(), cp.Size, old.Size, err)
		}
		if err != nil {
			return w.unproven(ctx, peer, old, cp, err)
		}
		w.judged(peer)
		if !consistent(proof, cp, old) {
			return w.fork(ctx, peer, "rollback", old, cp, proof)
		}
		return nil // stale
	}
}

// NotJudgedError reports a note Observe could not judge because no proof
// could be had from the peer. Failures counts such notes in a row for the
// peer; Alert is set on the one that reaches maxUnwitnessed (once a streak):
// a peer whose calls bring new checkpoints while it gives no proofs is not
// being witnessed.
type NotJudgedError struct {
	Peer     identity.PublicKey
	Failures int
	Alert    bool
	Err      error
}

func (e *NotJudgedError) Error() string {
	return fmt.Sprintf("audit: peer %s checkpoint not judged (%d in a row): %v", e.Peer.Short(), e.Failures, e.Err)
}

func (e *NotJudgedError) Unwrap() error { return e.Err }

// unproven handles a consistency call that gave no proof between the kept
// checkpoint old and cp: evidence if the peer answered with no proof,
// otherwise one more failure of the streak.
func (w *Witness) unproven(ctx context.Context, peer identity.PublicKey, old, cp Checkpoint, err error) error {
	err = fmt.Errorf("consistency proof from peer %s (%d to %d): %w", peer.Short(), min(old.Size, cp.Size), max(old.Size, cp.Size), err)
	w.mu.Lock()
	s := w.streaks[peer]
	if s == nil {
		s = &streak{}
		w.streaks[peer] = s
	}
	s.failures++
	st := *s
	w.mu.Unlock()
	if errors.Is(err, ErrMalformedProof) {
		w.judged(peer)
		w.l.cfg.Logger.Warn("audit: peer gives no proof between two checkpoints it signed", "peer", peer, "err", err)
		return w.fork(ctx, peer, ReasonUnproven, old, cp, nil)
	}
	return &NotJudgedError{Peer: peer, Failures: st.failures, Alert: st.failures == maxUnwitnessed, Err: err}
}

// judged ends peer's streak: a proof (or evidence) was had.
func (w *Witness) judged(peer identity.PublicKey) {
	w.mu.Lock()
	delete(w.streaks, peer)
	w.mu.Unlock()
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
	return w.l.exec(ctx, func(ctx context.Context, t *txn) error { return w.keepTx(ctx, t, peer, cp) })
}

func (w *Witness) keepTx(ctx context.Context, t *txn, peer identity.PublicKey, cp Checkpoint) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO witness(peer, size, root, note, time) VALUES(?, ?, ?, ?, ?)
		ON CONFLICT(peer) DO UPDATE SET size = excluded.size, root = excluded.root, note = excluded.note, time = excluded.time`,
		peer.String(), int64(cp.Size), cp.Root[:], string(cp.Note), t.ts)
	if err != nil {
		return fmt.Errorf("audit: keep checkpoint of %s: %w", peer.Short(), err)
	}
	return nil
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
	Old    []byte // signed note kept before (ReasonPruneInconsistent: the peer's pruning record)
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
