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
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/internal/jsonenc"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/screen"
	"github.com/treaty-dev/treaty/internal/transport"
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

// requestEvidence is a signed request as call.sent and call.served keep it:
// the Signature header and the signature base. The Signature-Input header is
// never kept: it is "treaty=" and the base's @signature-params line, which is
// how a receipt's verifier reads it too. A base of the plain form is kept as
// the few values that are not already in the entry or the log (see
// plainRequestBase); a base of any other form (a delegated call's) is kept
// whole. Logs written before hold the whole base and "signature_input";
// receiptFromLog reads both.
type requestEvidence struct {
	Base      string `json:"base,omitempty"`
	Path      string `json:"path,omitempty"`
	Digest    string `json:"digest,omitempty"` // Content-Digest, when not the entry's content digest
	Created   int64  `json:"created,omitempty"`
	Expires   int64  `json:"expires,omitempty"`
	Nonce     string `json:"nonce,omitempty"`
	Signature string `json:"signature"`
}

// signedRequestEvidence is the caller's signed request as the callee keeps it.
func signedRequestEvidence(req wire.Request) json.RawMessage {
	return requestEvidenceJSON(req.Base, req.Signature, req.Peer, req.Audience, req.Capability, nil)
}

// requestEvidenceJSON is the evidence of a request caller signed for
// audience, kept in an entry for capName whose content digest is
// contentDigest (nil when none).
func requestEvidenceJSON(base, sig string, caller, audience identity.PublicKey, capName string, contentDigest []byte) json.RawMessage {
	re := requestEvidence{Base: base, Signature: sig}
	if c, ok := compactRequest(base, sig, caller, audience, capName, contentDigest); ok {
		re = c
	}
	return re.appendJSON(make([]byte, 0, 160+len(re.Base)+len(re.Path)+len(re.Digest)+len(re.Nonce)+len(re.Signature)))
}

// appendJSON appends what json.Marshal gives for re, without reflection:
// two of these are built on every call.
func (re *requestEvidence) appendJSON(b []byte) []byte {
	b = append(b, '{')
	field := func(name, v string) {
		if v != "" {
			b = append(b, `"`+name+`":`...)
			b = jsonenc.AppendString(b, v)
			b = append(b, ',')
		}
	}
	field("base", re.Base)
	field("path", re.Path)
	field("digest", re.Digest)
	if re.Created != 0 {
		b = strconv.AppendInt(append(b, `"created":`...), re.Created, 10)
		b = append(b, ',')
	}
	if re.Expires != 0 {
		b = strconv.AppendInt(append(b, `"expires":`...), re.Expires, 10)
		b = append(b, ',')
	}
	field("nonce", re.Nonce)
	b = append(b, `"signature":`...)
	b = jsonenc.AppendString(b, re.Signature)
	return append(b, '}')
}

// compactRequest reads the values of a plain-form base; ok is false unless
// plainRequestBase gives back exactly base from them.
func compactRequest(base, sig string, caller, audience identity.PublicKey, capName string, contentDigest []byte) (requestEvidence, bool) {
	var lines [8]string // strings.Split(base, "\n") when it has 8 parts, without the slice
	rest := base
	for i := range len(lines) - 1 {
		var ok bool
		if lines[i], rest, ok = strings.Cut(rest, "\n"); !ok {
			return requestEvidence{}, false
		}
	}
	if strings.Contains(rest, "\n") {
		return requestEvidence{}, false
	}
	lines[7] = rest
	path, ok1 := strings.CutPrefix(lines[2], `"@path": `)
	digest, ok2 := strings.CutPrefix(lines[4], `"content-digest": `)
	created, ok3 := paramValue(lines[7], ";created=")
	expires, ok4 := paramValue(lines[7], ";expires=")
	_, rest, ok5 := strings.Cut(lines[7], `;nonce="`)
	nonce, _, ok6 := strings.Cut(rest, `"`)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return requestEvidence{}, false
	}
	c, err1 := strconv.ParseInt(created, 10, 64)
	e, err2 := strconv.ParseInt(expires, 10, 64)
	if err1 != nil || err2 != nil {
		return requestEvidence{}, false
	}
	re := requestEvidence{Path: path, Digest: digest, Created: c, Expires: e, Nonce: nonce, Signature: sig}
	// Both comparisons build in buf, on the stack: two of these run per call.
	var buf [1024]byte
	if contentDigest != nil && digest == string(appendContentDigestHeader(buf[:0], contentDigest)) {
		re.Digest = ""
	}
	if plain, ok := appendPlainRequestBase(buf[:0], caller, audience, capName, contentDigest, re); !ok || string(plain) != base {
		return requestEvidence{}, false
	}
	return re, true
}

func paramValue(params, key string) (string, bool) {
	_, rest, ok := strings.Cut(params, key)
	if !ok {
		return "", false
	}
	v, _, _ := strings.Cut(rest, ";")
	return v, v != ""
}

func contentDigestHeader(sum []byte) string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum) + ":"
}

func appendContentDigestHeader(b, sum []byte) []byte {
	b = append(b, "sha-256=:"...)
	b = base64.StdEncoding.AppendEncode(b, sum)
	return append(b, ':')
}

// plainRequestBase rebuilds the RFC 9421 signature base of an undelegated
// request from caller to audience (wire.SignRequest's form). compactRequest
// keeps the short form only when this gives back the exact base that was
// signed, and receiptFromLog checks the result against the request digest.
func plainRequestBase(caller, audience identity.PublicKey, capName string, contentDigest []byte, re requestEvidence) string {
	b, ok := appendPlainRequestBase(make([]byte, 0, 640), caller, audience, capName, contentDigest, re)
	if !ok {
		return ""
	}
	return string(b)
}

// appendPlainRequestBase appends plainRequestBase's base to b; ok is false
// when there is none (the path's URL does not parse).
func appendPlainRequestBase(b []byte, caller, audience identity.PublicKey, capName string, contentDigest []byte, re requestEvidence) (_ []byte, ok bool) {
	b = append(b, `"@method": POST`+"\n"+`"@authority": `...)
	if b, ok = appendPeerHost(b, audience, re.Path); !ok {
		return b, false
	}
	b = append(b, "\n"+`"@path": `...)
	b = append(b, re.Path...)
	b = append(b, "\n"+`"@query": ?`+"\n"+`"content-digest": `...)
	if re.Digest == "" {
		b = appendContentDigestHeader(b, contentDigest)
	} else {
		b = append(b, re.Digest...)
	}
	b = append(b, "\n"+`"treaty-audience": `...)
	b = append(b, audience.String()...)
	b = append(b, "\n"+`"treaty-capability": `...)
	b = append(b, capName...)
	b = append(b, "\n"+`"@signature-params": ("@method" "@authority" "@path" "@query" "content-digest" "treaty-audience" "treaty-capability");created=`...)
	b = strconv.AppendInt(b, re.Created, 10)
	b = append(b, ";expires="...)
	b = strconv.AppendInt(b, re.Expires, 10)
	b = append(b, `;nonce="`...)
	b = append(b, re.Nonce...)
	b = append(b, `";alg="ed25519";keyid="`...)
	b = append(b, caller.String()...)
	b = append(b, `";tag="`+wire.Tag+`"`...)
	return b, true
}

// appendPeerHost appends, lower-cased, the host url.Parse reads from
// transport.PeerURL(audience, path); ok is false when that URL does not
// parse. A path of plain bytes (a route's: /v1/call/NAME) can neither fail
// to parse nor end the host early, so its host is the key's label.
func appendPeerHost(b []byte, audience identity.PublicKey, path string) (_ []byte, ok bool) {
	for i := 0; i < len(path); i++ {
		if !plainPathByte[path[i]] {
			u, err := url.Parse(transport.PeerURL(audience, path))
			if err != nil {
				return b, false
			}
			return append(b, strings.ToLower(u.Host)...), true
		}
	}
	return transport.AppendPeerHost(b, audience), true // lower case already
}

// plainPathByte marks the path bytes that url.Parse takes as they are:
// unreserved characters and '/'.
var plainPathByte = func() (t [256]bool) {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/") {
		t[c] = true
	}
	return t
}()

// responseEvidence is the callee's half of a receipt as call.completed keeps
// it. The request's half is in the call.sent entry with the same request
// digest, the caller is the log's owner and the callee the entry's peer:
// storing the whole receipt again would keep the signature base twice (see
// receiptFromLog). Created stands for the Signature-Input header when that
// is the plain form responseSignatureInput rebuilds.
type responseEvidence struct {
	Status         int    `json:"status"`
	ContentDigest  string `json:"content_digest"`
	SignatureInput string `json:"signature_input,omitempty"`
	Created        int64  `json:"created,omitempty"`
	Signature      string `json:"signature"`
}

// responseSignatureInput is the Signature-Input header of a callee's answer in
// wire's plain form.
func responseSignatureInput(callee string, created int64) string {
	return wire.Label + `=("@status" "content-digest" "signature";req;key="` + wire.Label + `");created=` +
		strconv.FormatInt(created, 10) + `;alg="ed25519";keyid="` + callee + `";tag="` + wire.Tag + `"`
}

// compactResponse keeps the response half of r, with the plain
// Signature-Input header as its created time.
func compactResponse(r wire.Receipt) *responseEvidence {
	re := &responseEvidence{Status: r.Status, ContentDigest: r.ContentDigest, SignatureInput: r.SignatureInput, Signature: r.Signature}
	const key = ");created="
	if i := strings.Index(r.SignatureInput, key); i >= 0 {
		rest := r.SignatureInput[i+len(key):]
		if j := strings.IndexByte(rest, ';'); j > 0 {
			if c, err := strconv.ParseInt(rest[:j], 10, 64); err == nil && c > 0 && responseSignatureInput(r.Callee, c) == r.SignatureInput {
				re.SignatureInput, re.Created = "", c
			}
		}
	}
	return re
}

// peerAuditEvidence is the callee's audit evidence as call.completed keeps
// it: the index of its entry and its signed checkpoint, as the size, root
// and signature when the note has the plain form (one signature by the
// peer's own origin, see plainNote), else as the whole note.
type peerAuditEvidence struct {
	Index      uint64 `json:"index"`
	Checkpoint string `json:"checkpoint,omitempty"`
	Size       uint64 `json:"size,omitempty"`
	Root       string `json:"root,omitempty"`
	Sig        string `json:"sig,omitempty"`
}

// plainNote is the signed checkpoint note of peer's log of size entries.
func plainNote(peer string, size uint64, root, sig string) string {
	origin := "treaty/" + peer
	return origin + "\n" + strconv.FormatUint(size, 10) + "\n" + root + "\n\n\u2014 " + origin + " " + sig + "\n"
}

func compactPeerAudit(peer string, pe *peerEvidence) *peerAuditEvidence {
	if pe == nil {
		return nil
	}
	out := &peerAuditEvidence{Index: pe.Index, Checkpoint: pe.Checkpoint}
	lines := strings.Split(pe.Checkpoint, "\n")
	if len(lines) != 6 {
		return out
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	sig, ok := strings.CutPrefix(lines[4], "\u2014 treaty/"+peer+" ")
	if err != nil || !ok || plainNote(peer, size, lines[2], sig) != pe.Checkpoint {
		return out
	}
	return &peerAuditEvidence{Index: pe.Index, Size: size, Root: lines[2], Sig: sig}
}

// completedEvidence is call.completed's evidence: the response half of the
// receipt and the callee's audit evidence.
type completedEvidence struct {
	Response  *responseEvidence  `json:"response,omitempty"`
	Receipt   *wire.Receipt      `json:"receipt,omitempty"` // logs written before kept the whole receipt
	PeerAudit *peerAuditEvidence `json:"peer_audit,omitempty"`
}

// receiptFromLog rebuilds the callee's whole signed receipt, and its signed
// checkpoint note when it sent one, from a call's call.sent and
// call.completed entries in the log of owner (the caller). It checks that
// the entries are one call: same peer, and the request digest is SHA-256 of
// the base. The receipt verifies offline with wire.Receipt.Verify.
func receiptFromLog(owner identity.PublicKey, sent, completed audit.Entry) (wire.Receipt, []byte, error) {
	if sent.Kind != audit.KindCallSent || completed.Kind != audit.KindCallCompleted {
		return wire.Receipt{}, nil, fmt.Errorf("entries %d and %d are %s and %s, want call.sent and call.completed", sent.Index, completed.Index, sent.Kind, completed.Kind)
	}
	if sent.Peer != completed.Peer || string(sent.RequestDigest) != string(completed.RequestDigest) {
		return wire.Receipt{}, nil, fmt.Errorf("entries %d and %d are not the same call", sent.Index, completed.Index)
	}
	var ce completedEvidence
	if err := json.Unmarshal(completed.Evidence, &ce); err != nil {
		return wire.Receipt{}, nil, fmt.Errorf("entry %d evidence: %w", completed.Index, err)
	}
	var note []byte
	if pa := ce.PeerAudit; pa != nil {
		note = []byte(pa.Checkpoint)
		if pa.Checkpoint == "" {
			note = []byte(plainNote(completed.Peer, pa.Size, pa.Root, pa.Sig))
		}
	}
	if ce.Receipt != nil {
		return *ce.Receipt, note, nil
	}
	if ce.Response == nil {
		return wire.Receipt{}, nil, fmt.Errorf("entry %d holds no receipt", completed.Index)
	}
	var re requestEvidence
	if err := json.Unmarshal(sent.Evidence, &re); err != nil {
		return wire.Receipt{}, nil, fmt.Errorf("entry %d evidence: %w", sent.Index, err)
	}
	base := re.Base
	if base == "" {
		peer, err := identity.ParseDID(sent.Peer)
		if err != nil {
			return wire.Receipt{}, nil, fmt.Errorf("entry %d peer: %w", sent.Index, err)
		}
		base = plainRequestBase(owner, peer, sent.Capability, sent.ContentDigest, re)
	}
	if d := sha256.Sum256([]byte(base)); string(d[:]) != string(sent.RequestDigest) {
		return wire.Receipt{}, nil, fmt.Errorf("entry %d: the kept signature base does not match its request digest", sent.Index)
	}
	si := ce.Response.SignatureInput
	if si == "" {
		si = responseSignatureInput(sent.Peer, ce.Response.Created)
	}
	return wire.Receipt{
		Version: wire.Tag, Caller: owner.String(), Callee: sent.Peer,
		RequestBase: base, RequestSignature: re.Signature,
		Status: ce.Response.Status, ContentDigest: ce.Response.ContentDigest,
		SignatureInput: si, Signature: ce.Response.Signature,
	}, note, nil
}

// withContent puts sanitized content (or only its digest, by configuration)
// and the sanitizer's report (and the screen's verdict on what the peer sent,
// when there is one) into e.
func (n *Node) withContent(e *audit.Entry, st *state, capName string, clean sanitize.Clean, verdict *screen.Verdict) {
	var sum [sha256.Size]byte
	clean.Peek(func(b []byte) { sum = sha256.Sum256(b) })
	e.ContentDigest = sum[:]
	if st.cfg.AuditContent(capName) == "full" && clean.Len() <= maxAuditContent {
		e.Content = clean.Bytes() // the log keeps it (audit.Entry.Content)
	}
	e.Report = contentReport(clean, verdict)
}

// contentReport is an entry's report of the content gates: the sanitizer's
// counts and, when screened, the screen's verdict. It is the JSON of
//
//	struct {
//		Sanitizer sanitize.Report `json:"sanitizer"`
//		Screen    *screen.Verdict `json:"screen,omitempty"`
//	}
//
// written without reflection and without building the report's maps.
func contentReport(clean sanitize.Clean, v *screen.Verdict) json.RawMessage {
	b := make([]byte, 0, 128)
	b = clean.AppendReportJSON(append(b, `{"sanitizer":`...))
	if v != nil {
		var ok bool
		if b, ok = appendVerdictJSON(append(b, `,"screen":`...), v); !ok {
			return nil // json.Marshal refuses NaN and infinities
		}
	}
	return append(b, '}')
}

// appendVerdictJSON appends what json.Marshal gives for *v; ok is false
// where json.Marshal fails (a score that is not finite).
func appendVerdictJSON(b []byte, v *screen.Verdict) (_ []byte, ok bool) {
	b = append(b, `{"action":`...)
	b = jsonenc.AppendString(b, string(v.Action))
	b = append(b, `,"score":`...)
	if b, ok = jsonenc.AppendFloat64(b, v.Score); !ok {
		return b, false
	}
	b = append(b, `,"reasons":`...)
	if v.Reasons == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range v.Reasons {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.AppendString(b, r)
		}
		b = append(b, ']')
	}
	return append(b, '}'), true
}

// screenReport is call.completed's report for a call that succeeded: what
// json.Marshal gives for map[string]any{"screen": v}, without reflection.
func screenReport(v *screen.Verdict) json.RawMessage {
	b, ok := appendVerdictJSON(append(make([]byte, 0, 96), `{"screen":`...), v)
	if !ok {
		return nil
	}
	return append(b, '}')
}

// marshal is json.Marshal(ce) without reflection for the form every call
// writes (no whole receipt, which only old logs hold).
func (ce *completedEvidence) marshal() json.RawMessage {
	if ce.Receipt != nil {
		b, _ := json.Marshal(ce)
		return b
	}
	b := make([]byte, 0, 512)
	b = append(b, '{')
	if r := ce.Response; r != nil {
		b = append(b, `"response":{"status":`...)
		b = strconv.AppendInt(b, int64(r.Status), 10)
		b = append(b, `,"content_digest":`...)
		b = jsonenc.AppendString(b, r.ContentDigest)
		if r.SignatureInput != "" {
			b = append(b, `,"signature_input":`...)
			b = jsonenc.AppendString(b, r.SignatureInput)
		}
		if r.Created != 0 {
			b = strconv.AppendInt(append(b, `,"created":`...), r.Created, 10)
		}
		b = append(b, `,"signature":`...)
		b = jsonenc.AppendString(b, r.Signature)
		b = append(b, '}')
	}
	if pa := ce.PeerAudit; pa != nil {
		if ce.Response != nil {
			b = append(b, ',')
		}
		b = strconv.AppendUint(append(b, `"peer_audit":{"index":`...), pa.Index, 10)
		if pa.Checkpoint != "" {
			b = jsonenc.AppendString(append(b, `,"checkpoint":`...), pa.Checkpoint)
		}
		if pa.Size != 0 {
			b = strconv.AppendUint(append(b, `,"size":`...), pa.Size, 10)
		}
		if pa.Root != "" {
			b = jsonenc.AppendString(append(b, `,"root":`...), pa.Root)
		}
		if pa.Sig != "" {
			b = jsonenc.AppendString(append(b, `,"sig":`...), pa.Sig)
		}
		b = append(b, '}')
	}
	return append(b, '}')
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
		var pe *audit.PrunedError
		switch {
		case errors.As(err, &pe):
			// Our cut is above their size: the signed pruning record and a
			// proof from the cut stand in (ADR 23).
			out = consistencyReply{Proof: hexHashes(pe.Proof), Pruned: string(pe.Record)}
		case err != nil:
			in.refuse(refusal.StageAudit, err)
			return
		default:
			out = consistencyReply{Proof: hexHashes(proof)}
		}
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
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w: %v", errMalformedAnswer, err)
	}
	return nil
}

// errMalformedAnswer is wrapped by askAudit for a verified 200 answer that
// is not the shape asked for: the peer answered, with garbage.
var errMalformedAnswer = errors.New("malformed audit answer")

// consistencyReply is the answer to a consistency request: the proof, and
// for a size below the answering log's pruning cut, its signed pruning record
// (the proof then starts at the record's rows).
type consistencyReply struct {
	Proof  []string `json:"proof"`
	Pruned string   `json:"pruned,omitempty"`
}

func hexHashes(hs [][32]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h[:])
	}
	return out
}

// maxProofHashes bounds the hashes read from a consistency reply; the
// witness refuses longer proofs anyway (two per tree level).
const maxProofHashes = 128

// proofAnswer maps a peer's answer to a consistency request onto what
// audit.Witness.Observe judges: a proof, ErrBeyondSize, a *PrunedError,
// ErrProofRefused (a refusal at its audit stage), ErrMalformedProof (a 200
// that is no proof), or, for anything else (unreachable, timed out, refused
// before its audit stage), the error as it is: no judgement.
func proofAnswer(out consistencyReply, err error) ([][32]byte, error) {
	var r *refusal.Error
	switch {
	case err == nil:
	case errors.Is(err, errMalformedAnswer):
		return nil, fmt.Errorf("%w: %v", audit.ErrMalformedProof, err)
	case errors.As(err, &r) && r.Remote && r.Reason == reasonBeyondSize:
		return nil, audit.ErrBeyondSize
	case errors.As(err, &r) && r.Remote && r.Stage == refusal.StageAudit:
		return nil, fmt.Errorf("%w: %v", audit.ErrProofRefused, err)
	default:
		return nil, err
	}
	if len(out.Proof) > maxProofHashes {
		return nil, fmt.Errorf("%w: %d hashes, at most %d", audit.ErrMalformedProof, len(out.Proof), maxProofHashes)
	}
	proof := make([][32]byte, len(out.Proof))
	for i, h := range out.Proof {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("%w: hash %d is not 32 bytes of hex", audit.ErrMalformedProof, i)
		}
		copy(proof[i][:], b)
	}
	if out.Pruned != "" {
		return nil, &audit.PrunedError{Record: []byte(out.Pruned), Proof: proof}
	}
	return proof, nil
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
		var out consistencyReply
		err := n.askAudit(ctx, p, map[string]any{"op": "consistency", "old": oldSize, "new": newSize}, &out)
		return proofAnswer(out, err)
	}
	err = n.audit.Witness().Observe(ctx, w.peer, w.note, consistency)
	var fork *audit.ForkError
	var nj *audit.NotJudgedError
	switch {
	case errors.As(err, &fork):
		n.log.Error("ALERT: peer's audit log forked; evidence kept", "event", "alert.audit_fork", "peer", w.peer, "reason", fork.Reason)
		n.observe(w.peer, trust.KindAuditFork, fork.Reason)
	case errors.As(err, &nj) && nj.Alert:
		// Its calls bring new checkpoints, yet none can be judged: whatever
		// the cause, its log is not being witnessed.
		n.log.Error("ALERT: peer's checkpoints cannot be judged; its log is not being witnessed", "event", "alert.audit_unwitnessed",
			"peer", w.peer, "in_a_row", nj.Failures, "err", nj.Err)
		n.observe(w.peer, trust.KindFailure, "audit: no consistency proof for its checkpoints")
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
