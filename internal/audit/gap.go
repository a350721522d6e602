package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/treaty-dev/treaty/internal/identity"
)

// KindGap is the entry Witness.Observe appends when a peer's log moved past
// the kept checkpoint across its own pruning: the entries between the kept
// size and the peer's cut were not witnessed.
const KindGap = "audit.gap"

func witnessKinds() []string { return []string{KindGap} }

// gapEvidence is the Evidence of an "audit.gap" entry: entries [From, To) of
// the peer's log were deleted before this witness saw them. Old, Record and
// New are signed by the peer; Proof takes Record's root to New's.
type gapEvidence struct {
	From   uint64   `json:"from"`
	To     uint64   `json:"to"`
	Old    string   `json:"old"`
	Record string   `json:"record"`
	New    string   `json:"new"`
	Proof  []string `json:"proof,omitempty"`
}

// gap judges cp against the kept checkpoint old when the peer pruned old's
// size and answered with its pruning record pe (ADR 23). The record must be
// signed by peer under its log's origin and cut strictly above old.Size (a
// cut at or below it leaves old's proof possible, so the answer is no proof);
// pe.Proof must take the record's root to cp's. Then cp is kept and an
// "audit.gap" entry records [old.Size, cut) as not witnessed, in one
// transaction. Gaps are bounded per peer as forks are; past the bound the
// note is not judged, so no gap goes unrecorded.
func (w *Witness) gap(ctx context.Context, peer identity.PublicKey, old, cp Checkpoint, pe *PrunedError) error {
	if len(pe.Record) > MaxNoteSize {
		return w.unproven(ctx, peer, old, cp, fmt.Errorf("%w: pruning record of %d bytes, at most %d", ErrMalformedProof, len(pe.Record), MaxNoteSize))
	}
	pr, err := openPruneRecord(pe.Record, peer, OriginFor(peer))
	if err != nil {
		return w.unproven(ctx, peer, old, cp, fmt.Errorf("%w: %v", ErrMalformedProof, err))
	}
	if pr.Rows <= old.Size {
		return w.unproven(ctx, peer, old, cp, fmt.Errorf("%w: claims size %d pruned, but its pruning record cuts at %d", ErrMalformedProof, old.Size, pr.Rows))
	}
	if pr.Rows > cp.Size {
		return &NotJudgedError{Peer: peer, Err: fmt.Errorf("checkpoint %d is below the peer's pruning cut %d (a stale note)", cp.Size, pr.Rows)}
	}
	w.judged(peer)
	cut := Checkpoint{Origin: cp.Origin, Size: pr.Rows, Root: pr.Root, Note: pr.Note}
	if !consistent(pe.Proof, cut, cp) {
		return w.fork(ctx, peer, ReasonPruneInconsistent, cut, cp, pe.Proof)
	}
	since, _ := formatTime(w.l.cfg.Now().Add(-forkWindow))
	var kept int
	err = w.l.r.db.QueryRowContext(ctx, `SELECT count(*) FROM entries WHERE rare_kind = ?1
		AND peer_key = substr(?2, 13, 6) AND json_extract(leaf, '$.peer') = ?2 AND json_extract(leaf, '$.time') >= ?3`,
		KindGap, peer.String(), since).Scan(&kept)
	if err != nil {
		return fmt.Errorf("audit: record gap of %s: %w", peer.Short(), err)
	}
	if kept >= maxForksPerPeer {
		w.l.cfg.Logger.Warn("audit: peer pruned past the witnessed size again; not judged", "event", "audit.gap_bound", "peer", peer, "kept_in_window", kept, "window", forkWindow)
		return &NotJudgedError{Peer: peer, Err: fmt.Errorf("%d gaps in %v, at most %d are recorded", kept, forkWindow, maxForksPerPeer)}
	}
	ev := gapEvidence{From: old.Size, To: pr.Rows, Old: string(old.Note), Record: string(pr.Note), New: string(cp.Note)}
	for _, h := range pe.Proof {
		ev.Proof = append(ev.Proof, hex.EncodeToString(h[:]))
	}
	evJSON, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	p, err := prepare(Entry{Kind: KindGap, Peer: peer.String(), Outcome: "not_witnessed", Stage: "witness", Evidence: evJSON})
	if err != nil {
		return err
	}
	err = w.l.exec(ctx, func(ctx context.Context, t *txn) error {
		if _, err := t.append(ctx, p); err != nil {
			return err
		}
		return w.keepTx(ctx, t, peer, cp)
	})
	if err != nil {
		return fmt.Errorf("audit: record gap of %s: %w", peer.Short(), err)
	}
	w.l.cfg.Logger.Warn("audit: peer pruned entries before they were witnessed", "event", "audit.gap", "peer", peer, "from", old.Size, "to", pr.Rows, "new_size", cp.Size)
	return nil
}
