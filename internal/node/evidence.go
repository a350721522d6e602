package node

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/screen"
	"github.com/treaty-dev/treaty/internal/trust"
	"github.com/treaty-dev/treaty/internal/wire"
)

// AuditFile is the audit log inside a home directory.
const AuditFile = "audit.db"

// auditCapability is the protocol capability peers use to exchange checkpoints
// and consistency proofs (witnessing). Every admitted peer may use it.
const auditCapability = "treaty.audit"

// Response headers that carry the callee's evidence of its own audit entry.
// The checkpoint is a signed note, so it needs no other signature; the index
// is a hint that an inclusion proof (treaty audit prove) makes checkable.
const (
	headerAuditIndex      = "Treaty-Audit-Index"
	headerAuditCheckpoint = "Treaty-Audit-Checkpoint"
)

// reasonBeyondSize is the wire reason for a consistency request beyond our log.
const reasonBeyondSize = "beyond_size"

// maxAuditContent bounds the sanitized content kept in one entry; larger
// content is kept as its digest only.
const maxAuditContent = 64 << 10

func setAuditHeaders(h http.Header, idx uint64, cp audit.Checkpoint) {
	h.Set(headerAuditIndex, strconv.FormatUint(idx, 10))
	h.Set(headerAuditCheckpoint, base64.StdEncoding.EncodeToString(cp.Note))
}

// peerEvidence is what the caller learns of the callee's own audit entry.
type peerEvidence struct {
	Index      uint64 `json:"index"`
	Checkpoint string `json:"checkpoint"` // the callee's signed note
	note       []byte
}

// readPeerEvidence reads the callee's audit headers. The checkpoint is a
// signed note: the caller keeps it as presented, and the witness verifies its
// signature and consistency off the call path (a bad note is then logged and
// recorded against the peer). Only its size is bounded here.
func readPeerEvidence(h http.Header) (*peerEvidence, error) {
	is, cs := h.Get(headerAuditIndex), h.Get(headerAuditCheckpoint)
	if is == "" && cs == "" {
		return nil, nil
	}
	idx, err := strconv.ParseUint(is, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("bad %s header", headerAuditIndex)
	}
	if len(cs) > 2*audit.MaxNoteSize {
		return nil, fmt.Errorf("%s header larger than %d bytes", headerAuditCheckpoint, 2*audit.MaxNoteSize)
	}
	note, err := base64.StdEncoding.DecodeString(cs)
	if err != nil {
		return nil, fmt.Errorf("bad %s header", headerAuditCheckpoint)
	}
	return &peerEvidence{Index: idx, Checkpoint: string(note), note: note}, nil
}

// signedRequestEvidence is the caller's signed request as kept in the log.
func signedRequestEvidence(req wire.Request) json.RawMessage {
	b, _ := json.Marshal(map[string]string{
		"signature_input": req.SignatureInput,
		"signature":       req.Signature,
		"base":            req.Base,
	})
	return b
}

// withContent puts sanitized content (or only its digest, by configuration)
// and the sanitizer's report (and the screen's verdict on what the peer sent,
// when there is one) into e.
func (n *Node) withContent(e *audit.Entry, st *state, capName string, clean sanitize.Clean, verdict *screen.Verdict) {
	b := clean.Bytes()
	sum := sha256.Sum256(b)
	e.ContentDigest = sum[:]
	if st.cfg.AuditContent(capName) == "full" && len(b) <= maxAuditContent {
		e.Content = b
	}
	r := map[string]any{"sanitizer": clean.Report()}
	if verdict != nil {
		r["screen"] = verdict
	}
	e.Report, _ = json.Marshal(r)
}

// serveAudit answers a peer's witnessing request: our latest checkpoint, or a
// consistency proof between two sizes of our log.
func (in *inbound) serveAudit() {
	var q struct {
		Op  string `json:"op"`
		Old uint64 `json:"old"`
		New uint64 `json:"new"`
	}
	if err := json.Unmarshal(in.body, &q); err != nil {
		in.refuse(refusal.StageWire, &wire.Error{Reason: wire.ReasonMalformed, Detail: "audit request"})
		return
	}
	ctx := in.r.Context()
	var out any
	switch q.Op {
	case "checkpoint":
		cp, err := in.n.audit.Checkpoint(ctx)
		if err != nil {
			in.refuse(refusal.StageAudit, err)
			return
		}
		out = map[string]string{"checkpoint": string(cp.Note)}
	case "consistency":
		if q.Old > q.New {
			in.refuse(refusal.StageWire, &wire.Error{Reason: wire.ReasonMalformed, Detail: "consistency: old size above new size"})
			return
		}
		proof, err := in.n.audit.ConsistencyProof(ctx, q.Old, q.New)
		if err != nil {
			in.refuse(refusal.StageAudit, err)
			return
		}
		hs := make([]string, len(proof))
		for i, h := range proof {
			hs[i] = hex.EncodeToString(h[:])
		}
		out = map[string][]string{"proof": hs}
	default:
		in.refuse(refusal.StageWire, &wire.Error{Reason: wire.ReasonMalformed, Detail: "unknown audit op"})
		return
	}
	b, _ := json.Marshal(out)
	clean, err := in.n.scrub(ctx, in.st, in.peer, auditCapability, b)
	if err != nil {
		in.refuse(refusal.StageSanitize, err)
		return
	}
	in.reply(http.StatusOK, clean)
}

// askAudit sends a witnessing request to p and decodes the answer into out.
func (n *Node) askAudit(ctx context.Context, p Peer, q any, out any) error {
	st := n.state.Load()
	b, _ := json.Marshal(q)
	clean, err := n.scrub(ctx, st, p.ID, auditCapability, b)
	if err != nil {
		return err
	}
	resp, body, sent, err := n.roundTrip(ctx, st, p, "/v1/audit", auditCapability, clean, true, nil)
	if err != nil {
		return err
	}
	if _, err := wire.VerifyResponse(resp, body, sent, p.ID); err != nil {
		return refusal.Wrap(refusal.StageWire, err)
	}
	if resp.StatusCode != http.StatusOK {
		return remoteRefusal(resp.StatusCode, body)
	}
	return json.Unmarshal(body, out)
}

// witnessed is one checkpoint a peer showed us, queued for judgement.
type witnessed struct {
	peer identity.PublicKey
	note []byte
}

// witnessPause is the least time between two judgements of one peer's
// checkpoints: every call brings a newer one, and each judgement may cost a
// consistency-proof round trip, so only the latest is kept and judged.
const witnessPause = time.Second

// witness keeps a peer's latest checkpoint for judgement off the call path.
func (n *Node) witness(peer identity.PublicKey, note []byte) {
	n.witnessMu.Lock()
	n.witnessPending[peer] = note
	n.witnessMu.Unlock()
	select {
	case n.witnessWake <- struct{}{}:
	default:
	}
}

// runWitness judges the latest checkpoint each peer showed (at most once per
// witnessPause) and, every interval, asks each peer for its latest one. A fork
// is kept as evidence by audit.Witness, raised as an alert, and quarantines the
// peer through trust.
func (n *Node) runWitness(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.witnessWake:
			n.witnessMu.Lock()
			pending := n.witnessPending
			n.witnessPending = map[identity.PublicKey][]byte{}
			n.witnessMu.Unlock()
			for peer, note := range pending {
				n.judge(ctx, witnessed{peer, note})
			}
			select { // let the next checkpoints coalesce
			case <-ctx.Done():
				return
			case <-time.After(witnessPause):
			}
		case <-t.C:
			for _, p := range n.Peers() {
				var out struct {
					Checkpoint string `json:"checkpoint"`
				}
				if err := n.askAudit(ctx, p, map[string]string{"op": "checkpoint"}, &out); err != nil {
					n.log.Debug("witness: no checkpoint", "peer", p.ID, "err", err)
					continue
				}
				n.judge(ctx, witnessed{p.ID, []byte(out.Checkpoint)})
			}
		}
	}
}

func (n *Node) judge(ctx context.Context, w witnessed) {
	p, err := n.Resolve(w.peer.String())
	if err != nil {
		return
	}
	consistency := func(ctx context.Context, oldSize, newSize uint64) ([][32]byte, error) {
		var out struct {
			Proof []string `json:"proof"`
		}
		if err := n.askAudit(ctx, p, map[string]any{"op": "consistency", "old": oldSize, "new": newSize}, &out); err != nil {
			var r *refusal.Error
			if errors.As(err, &r) && r.Remote && r.Reason == reasonBeyondSize {
				return nil, audit.ErrBeyondSize
			}
			return nil, err
		}
		proof := make([][32]byte, len(out.Proof))
		for i, h := range out.Proof {
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != 32 {
				return nil, errors.New("malformed consistency proof")
			}
			copy(proof[i][:], b)
		}
		return proof, nil
	}
	err = n.audit.Witness().Observe(ctx, w.peer, w.note, consistency)
	var fork *audit.ForkError
	switch {
	case errors.As(err, &fork):
		n.log.Error("ALERT: peer's audit log forked; evidence kept", "event", "alert.audit_fork", "peer", w.peer, "reason", fork.Reason)
		n.observe(w.peer, trust.KindAuditFork, fork.Reason)
	case err != nil:
		n.log.Warn("witness: checkpoint not judged", "event", "witness.not_judged", "peer", w.peer, "err", err)
	}
}

func (n *Node) witnessInterval() time.Duration {
	if d := n.state.Load().cfg.Audit.WitnessInterval.D(); d > 0 {
		return d
	}
	return 30 * time.Second
}

// runRetention applies audit.retention (drop content) and audit.row_retention
// (delete entries) once an hour; each pruning writes a signed pruning record.
func (n *Node) runRetention(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		ac := n.state.Load().cfg.Audit
		if keep := ac.RowRetention.D(); keep > 0 {
			if k, err := n.audit.PruneRows(ctx, n.now().Add(-keep)); err != nil {
				n.log.Warn("audit: prune rows", "err", err)
			} else if k > 0 {
				n.log.Info("audit: deleted old entries; a signed pruning record keeps the rest verifiable", "entries", k)
			}
		}
		if keep := ac.Retention.D(); keep > 0 {
			if k, err := n.audit.Prune(ctx, n.now().Add(-keep)); err != nil {
				n.log.Warn("audit: prune", "err", err)
			} else if k > 0 {
				n.log.Info("audit: pruned old content; leaf hashes kept", "entries", k)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// auditLevelChange records every trust level change with its cause.
func (n *Node) auditLevelChange(peer string, c trust.LevelChange) {
	e := audit.Entry{Kind: audit.KindTrustLevel, Peer: peer, Outcome: c.To.String(), Stage: "trust"}
	e.Report, _ = json.Marshal(map[string]any{"from": c.From.String(), "to": c.To.String(), "cause": c.Cause.Kind, "detail": c.Cause.Detail})
	if _, err := n.audit.Append(context.Background(), e); err != nil {
		n.log.Error("audit append of a trust level change failed", "event", "audit.append_failed", "err", err)
	}
}
