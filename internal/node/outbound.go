package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"time"
	"unicode"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/jsonsyntax"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/screen"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/trust"
	"github.com/treaty-dev/treaty/internal/wire"
)

// Result is the answer to one outbound call.
type Result struct {
	Peer    Peer
	Output  json.RawMessage
	Receipt wire.Receipt  // the callee's signed statement that it served exactly this request
	Elapsed time.Duration // from resolve to verified answer
	// AuditIndex is this node's call.completed entry; PeerAudit is the callee's
	// index and signed checkpoint of its call.served entry, when it sent them.
	AuditIndex uint64
	PeerAudit  *peerEvidence
	Screen     screen.Verdict // the screen's verdict on the result (marked results are wrapped)
}

// outcall is one outbound call's audit trail: call.sent handed to the log
// before the bytes leave, then exactly one call.completed (or call.refused
// when nothing left), committed with call.sent or after it and durable before
// anything of the answer reaches the agent; a stream makes call.sent durable
// before its first event. See docs/adr/0010-overlap-sent-durability.md and
// docs/adr/0019-call-sent-rides-with-completed.md.
type outcall struct {
	n        *Node
	st       *state
	peerRef  string
	p        Peer
	capName  string
	asStream bool           // call.sent's commit starts at once: the first event waits for it
	sent     *wire.Sent     // set once call.sent is handed to the log
	sentWait *audit.Pending // call.sent, held by the log for call.completed's commit
	sentErr  error          // why call.sent did not become durable, once known
	waited   bool           // sentDurable has waited
}

// refused audits a refusal that happened before anything was sent.
func (o *outcall) refused(ctx context.Context, err error) error {
	o.n.countOutbound(o.p, o.capName, err)
	capName, peerRef, reason := refusedFields(o.capName, o.peerRef, err) // auditrefused.go
	e := audit.Entry{Kind: audit.KindCallRefused, Direction: "out", Capability: capName, Outcome: "refused", Stage: string(refusal.StageOf(err))}
	if !o.p.ID.IsZero() {
		e.Peer = o.p.ID.String()
	}
	e.Report, _ = json.Marshal(map[string]string{"peer_ref": peerRef, "reason": reason})
	if _, aerr := o.n.audit.Append(context.WithoutCancel(ctx), e); aerr != nil {
		o.n.log.Error("audit append of a refusal failed", "event", "audit.append_failed", "err", aerr)
	}
	return err
}

// recordSent hands call.sent to the audit log; roundTrip calls it after
// signing and before sending. For a call the log holds the entry and commits
// it with call.completed (or DeferFor later, if the answer is slow); for a
// stream its commit runs while the request travels and sentDurable waits for
// it before the first event.
func (o *outcall) recordSent(ctx context.Context, clean sanitize.Clean, sent wire.Sent) error {
	defer o.n.timeStage(stageAudit)()
	e := audit.Entry{Kind: audit.KindCallSent, Peer: o.p.ID.String(), Direction: "out", Capability: o.capName,
		Outcome: "sent", RequestDigest: sent.Digest[:]}
	o.n.withContent(&e, o.st, o.capName, clean, nil)
	e.Evidence = requestEvidenceJSON(sent.Base, sent.Signature, o.n.self, o.p.ID, o.capName, e.ContentDigest)
	appendSent := o.n.audit.AppendDeferred
	if o.asStream {
		appendSent = o.n.audit.AppendAsync
	}
	pend, err := appendSent(ctx, e)
	if err != nil {
		return refusal.Wrap(refusal.StageAudit, err)
	}
	o.sent, o.sentWait = &sent, pend
	return nil
}

// sentDurable waits until call.sent is durable. Its error (an audit
// refusal) means the request may have left without a durable record: the
// answer must not reach the agent.
func (o *outcall) sentDurable(ctx context.Context) error {
	if o.sentWait == nil || o.waited {
		return o.sentErr
	}
	o.waited = true
	if _, err := o.sentWait.Wait(context.WithoutCancel(ctx)); err != nil {
		o.n.log.Error("audit: call.sent did not become durable; the answer is withheld", "peer", o.p.ID, "capability", o.capName, "err", err)
		o.sentErr = refusal.Wrap(refusal.StageAudit, err)
	}
	return o.sentErr
}

// completed makes call.completed durable with the receipt and the callee's
// evidence, in call.sent's commit or after it (never without it); the local
// agent hears of the answer only after it returns.
func (o *outcall) completed(ctx context.Context, callErr error, receipt *wire.Receipt, pe *peerEvidence, verdict *screen.Verdict) (uint64, error) {
	if o.sent == nil {
		if callErr != nil {
			return 0, o.refused(ctx, callErr)
		}
		return 0, nil
	}
	if o.sentErr != nil { // a stream learned it before its first event
		return 0, o.sentErr
	}
	o.n.countOutbound(o.p, o.capName, callErr)
	e := audit.Entry{Kind: audit.KindCallCompleted, Peer: o.p.ID.String(), Direction: "out", Capability: o.capName,
		Outcome: "ok", RequestDigest: o.sent.Digest[:]}
	if callErr != nil {
		e.Outcome, e.Stage = "refused", string(refusal.StageOf(callErr))
		if e.Stage == string(refusal.StageTransport) || e.Stage == string(refusal.StageBackend) {
			e.Outcome = "failed"
		}
	}
	if callErr == nil && verdict != nil {
		e.Report = screenReport(verdict) // every call that succeeds
	} else if callErr != nil {
		r := map[string]any{}
		if callErr != nil {
			r["reason"] = callErr.Error()
		}
		if verdict != nil {
			r["screen"] = verdict // the screen's verdict on the result
		}
		e.Report, _ = json.Marshal(r)
	}
	var ev completedEvidence
	if receipt != nil {
		d := sha256.Sum256([]byte(receipt.Signature))
		e.ResponseDigest = d[:]
		ev.Response = compactResponse(*receipt)
	}
	ev.PeerAudit = compactPeerAudit(e.Peer, pe)
	if ev.Response != nil || ev.PeerAudit != nil {
		e.Evidence = ev.marshal()
	}
	idx, err := o.n.audit.AppendAfter(context.WithoutCancel(ctx), e, o.sentWait)
	if errors.Is(err, audit.ErrDependency) {
		o.n.log.Error("audit: call.sent did not become durable; the answer is withheld", "peer", o.p.ID, "capability", o.capName, "err", err)
	}
	if err != nil {
		return 0, refusal.Wrap(refusal.StageAudit, err)
	}
	return idx, nil
}

// Call asks peer (nickname or did:key) to run capability with input (JSON).
// The steps follow the outbound call path of docs/architecture.md; a refusal at any step is a
// *refusal.Error naming the stage (Remote set when the peer refused), and every
// call leaves call.sent and call.completed (or call.refused) in the audit log.
func (n *Node) Call(ctx context.Context, peerRef, capName string, input []byte) (*Result, error) {
	start := time.Now()
	o := &outcall{n: n, st: n.state.Load(), peerRef: peerRef, capName: capName}

	// 1. Resolve the peer: it must be in the peer book.
	p, err := n.Resolve(peerRef)
	if err != nil {
		return nil, o.refused(ctx, err)
	}
	o.p = p
	if !wire.ValidCapabilityName(capName) {
		return nil, o.refused(ctx, refusal.New(refusal.StageUsage, "invalid capability name %q", capName))
	}
	if err := checkBodySize(o.st, "input", len(input)); err != nil {
		return nil, o.refused(ctx, err)
	}
	// 2. Budgets: the breaker and the outbound limits toward p.
	finish, err := n.outboundGates(p, capName, len(input))
	if err != nil {
		return nil, o.refused(ctx, err)
	}
	res, receipt, pe, err := o.call(ctx, input)
	replyBytes := 0
	var verdict *screen.Verdict
	if res != nil {
		replyBytes, verdict = len(res.Output), &res.Screen
	}
	finish(outcome(ctx, err), replyBytes)
	idx, aerr := o.completed(ctx, err, receipt, pe, verdict)
	if err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, aerr
	}
	res.AuditIndex, res.Elapsed = idx, time.Since(start)
	return res, nil
}

// call runs steps 3-6 and the caller's checks of the answer.
func (o *outcall) call(ctx context.Context, input []byte) (*Result, *wire.Receipt, *peerEvidence, error) {
	n, st, p := o.n, o.st, o.p
	// 3. Sanitize the input with p's data policy: block, redact, pseudonymize.
	clean, err := n.scrub(ctx, st, p.ID, o.capName, input)
	if err != nil {
		return nil, nil, nil, err
	}
	// 4-6. Sign, audit call.sent, send over the pooled mTLS connection pinned to p's key.
	resp, body, sent, err := n.roundTrip(ctx, st, p, "/v1/call/"+o.capName, o.capName, clean, true, o.recordSent)
	if err != nil {
		return nil, nil, nil, err
	}
	// Back at the caller: verify the callee's signature; it is the receipt.
	receipt, err := n.verifier.VerifyResponse(resp, body, sent, p.ID)
	if err != nil {
		return nil, nil, nil, refusal.Wrap(refusal.StageWire, fmt.Errorf("response from %s: %w", p.label(), err))
	}
	pe, perr := readPeerEvidence(resp.Header)
	if perr != nil {
		n.log.Warn("callee's audit evidence rejected", "event", "evidence.rejected", "peer", p.ID, "err", perr)
	} else if pe != nil {
		n.witness(p.ID, pe.note)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &receipt, pe, o.kindMismatch(ctx, false, remoteRefusal(resp.StatusCode, body))
	}
	if !jsonsyntax.Valid(body) {
		return nil, &receipt, pe, refusal.New(refusal.StageWire, "response from %s is not JSON", p.label())
	}
	out, verdict, err := n.acceptResult(ctx, st, p, o.capName, body)
	if err != nil {
		return nil, &receipt, pe, err
	}
	return &Result{Peer: p, Output: out, Receipt: receipt, PeerAudit: pe, Screen: verdict}, &receipt, pe, nil
}

// acceptResult screens what p returned and restores the pseudonyms this node
// issued to p, so the local agent sees its own values and never a token.
func (n *Node) acceptResult(ctx context.Context, st *state, p Peer, capName string, body []byte) ([]byte, screen.Verdict, error) {
	n.noteFindings(ctx, p.ID, capName, body)
	return n.screenInbound(ctx, st, p.ID, capName, n.sanitizer.Restore(p.ID.String(), body))
}

// Caps asks peer which capabilities it exposes to this node.
func (n *Node) Caps(ctx context.Context, peerRef string) ([]CapabilityInfo, error) {
	o := &outcall{n: n, st: n.state.Load(), peerRef: peerRef, capName: capsCapability}
	p, err := n.Resolve(peerRef)
	if err != nil {
		return nil, o.refused(ctx, err)
	}
	o.p = p
	caps, receipt, err := o.caps(ctx)
	if _, aerr := o.completed(ctx, err, receipt, nil, nil); err == nil && aerr != nil {
		return nil, aerr
	}
	return caps, err
}

func (o *outcall) caps(ctx context.Context) ([]CapabilityInfo, *wire.Receipt, error) {
	n, st, p := o.n, o.st, o.p
	empty, err := n.scrub(ctx, st, p.ID, capsCapability, []byte("{}"))
	if err != nil {
		return nil, nil, err
	}
	resp, body, sent, err := n.roundTrip(ctx, st, p, "/v1/caps", capsCapability, empty, true, o.recordSent)
	if err != nil {
		return nil, nil, err
	}
	receipt, err := n.verifier.VerifyResponse(resp, body, sent, p.ID)
	if err != nil {
		return nil, nil, refusal.Wrap(refusal.StageWire, fmt.Errorf("response from %s: %w", p.label(), err))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &receipt, remoteRefusal(resp.StatusCode, body)
	}
	caps, err := decodeCaps(body)
	if err != nil {
		return nil, &receipt, refusal.Wrap(refusal.StageWire, fmt.Errorf("capability list from %s: %w", p.label(), err))
	}
	return n.acceptCaps(st, p, caps), &receipt, nil
}

// acceptCaps treats a peer's capability list as untrusted content: names must
// be valid capability names, descriptions lose control characters and are
// withheld when the screen finds them hostile (they reach agents and
// terminals).
func (n *Node) acceptCaps(st *state, p Peer, caps []CapabilityInfo) []CapabilityInfo {
	out := caps[:0]
	for _, c := range caps {
		if !wire.ValidCapabilityName(c.Name) {
			n.log.Warn("peer listed an invalid capability name; dropped", "peer", p.ID)
			continue
		}
		c.Description = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				return -1
			}
			return r
		}, c.Description)
		if v := n.screener.Screen(st.cfg.ScreenPolicyFor(p.ID.String(), capsCapability), []byte(c.Description)); v.Action != screen.ActionPass {
			n.observe(p.ID, trust.KindScreenMark, capsCapability)
			c.Description = fmt.Sprintf("[withheld by treaty: screen score %.2f, %s]", v.Score, strings.Join(v.Reasons, ", "))
		}
		c.InputSchema = n.acceptSchema(st, p, c.InputSchema) // capschema.go
		c.OutputSchema = n.acceptSchema(st, p, c.OutputSchema)
		out = append(out, c)
	}
	return out
}

// Stream asks peer to run a stream capability and calls emit for each event's
// data, in order. A gap, reorder, truncation or bad final signature is a wire
// refusal. Cancelling ctx stops the remote backend.
func (n *Node) Stream(ctx context.Context, peerRef, capName string, input []byte, emit func(json.RawMessage) error) error {
	o := &outcall{n: n, st: n.state.Load(), peerRef: peerRef, capName: capName, asStream: true}
	p, err := n.Resolve(peerRef)
	if err != nil {
		return o.refused(ctx, err)
	}
	o.p = p
	if !wire.ValidCapabilityName(capName) {
		return o.refused(ctx, refusal.New(refusal.StageUsage, "invalid capability name %q", capName))
	}
	if err := checkBodySize(o.st, "input", len(input)); err != nil {
		return o.refused(ctx, err)
	}
	finish, err := n.outboundGates(p, capName, len(input))
	if err != nil {
		return o.refused(ctx, err)
	}
	received := 0
	err = o.stream(ctx, input, func(d json.RawMessage) error {
		received += len(d)
		if err := emit(d); err != nil {
			return fmt.Errorf("%w: %w", errCallerGaveUp, err) // the local consumer failed, not the peer
		}
		return nil
	})
	finish(outcome(ctx, err), received)
	if _, aerr := o.completed(ctx, err, nil, nil, nil); err == nil && aerr != nil {
		return aerr
	}
	return err
}

// outcome is err, unless the local caller gave up (cancelled ctx or let its
// deadline pass): then the call's end says nothing about the peer.
func outcome(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return errCallerGaveUp
	}
	return err
}

func (o *outcall) stream(ctx context.Context, input []byte, emit func(json.RawMessage) error) error {
	n, st, p, capName := o.n, o.st, o.p, o.capName
	clean, err := n.scrub(ctx, st, p.ID, capName, input)
	if err != nil {
		return err
	}
	resp, _, sent, err := n.roundTrip(ctx, st, p, "/v1/stream/"+capName, capName, clean, false, o.recordSent)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := o.sentDurable(ctx); err != nil { // before the first event reaches the agent
		return err
	}
	if resp.StatusCode != http.StatusOK {
		body, err := wire.ReadBody(resp.Body, st.limits.MaxBodyBytes)
		if err != nil {
			return refusal.Wrap(refusal.StageWire, err)
		}
		if _, err := n.verifier.VerifyResponse(resp, body, sent, p.ID); err != nil {
			return refusal.Wrap(refusal.StageWire, fmt.Errorf("response from %s: %w", p.label(), err))
		}
		return o.kindMismatch(ctx, true, remoteRefusal(resp.StatusCode, body))
	}
	sr := n.verifier.NewStreamReader(resp.Body, sent, p.ID, st.limits)
	for {
		ev, err := sr.Next()
		if err != nil {
			if ctx.Err() != nil {
				return refusal.Wrap(refusal.StageTransport, fmt.Errorf("stream from %s: %w", p.label(), ctx.Err()))
			}
			return refusal.Wrap(refusal.StageWire, fmt.Errorf("stream from %s: %w", p.label(), err))
		}
		if ev.End {
			if ev.Failure != nil {
				return &refusal.Error{Stage: knownStage(ev.Failure.Stage), Reason: ev.Failure.Reason, Remote: true}
			}
			return nil
		}
		data, _, err := n.acceptResult(ctx, st, p, capName, ev.Data)
		if err != nil {
			return err
		}
		if err := emit(data); err != nil {
			return err
		}
	}
}

const capsCapability = "treaty.caps"

// checkBodySize refuses, before anything is signed or sent, a body the peer
// would refuse for exceeding limits.max_body_bytes (peers run with the same
// default; a peer with a smaller limit still refuses on its side).
func checkBodySize(st *state, what string, n int) error {
	if max := st.limits.MaxBodyBytes; int64(n) > max {
		return refusal.New(refusal.StageUsage, "%s is %d bytes, over limits.max_body_bytes (%d bytes); nothing was sent", what, n, max)
	}
	return nil
}

// kindMismatch explains a callee's "malformed" refusal of a call made as a
// stream (or a stream made as a call): the callee says only that the request
// was malformed, so its capability list tells whether the kind was wrong.
func (o *outcall) kindMismatch(ctx context.Context, asStream bool, err error) error {
	var r *refusal.Error
	if !errors.As(err, &r) || !r.Remote || r.Stage != refusal.StageWire {
		return err
	}
	if tok, _ := remoteToken(err); tok != wire.ReasonMalformed.String() {
		return err
	}
	caps, cerr := o.n.Caps(ctx, o.p.ID.String()) // audited like any caps call
	if cerr != nil {
		return err
	}
	for _, c := range caps {
		switch {
		case c.Name != o.capName:
		case asStream && !c.Stream:
			return refusal.New(refusal.StageUsage, "capability %s is not a stream capability; call it without --stream", o.capName)
		case !asStream && c.Stream:
			return refusal.New(refusal.StageUsage, "capability %s is a stream capability; call it with --stream", o.capName)
		}
	}
	return err
}

var errTimeToFirstByte = errors.New("no response headers within time_to_first_byte")

// roundTrip signs and sends one request to p and returns the response. With
// readBody, the body is read within MaxBodyBytes and the CallTimeout covers it;
// otherwise the caller owns resp.Body (streams are bounded per event instead).
//
// onSigned, when set, runs after signing and before anything is sent (the
// audit hook: call.sent is handed to the log before the bytes go); its error
// stops the call.
func (n *Node) roundTrip(ctx context.Context, st *state, p Peer, path, capName string, clean sanitize.Clean, readBody bool,
	onSigned func(context.Context, sanitize.Clean, wire.Sent) error) (*http.Response, []byte, wire.Sent, error) {
	lim := st.limits
	body := clean.Bytes()
	if err := checkBodySize(st, "sanitized input", len(body)); err != nil {
		return nil, nil, wire.Sent{}, err
	}
	parent := ctx
	var cancelCall context.CancelFunc = func() {}
	if readBody {
		ctx, cancelCall = context.WithTimeout(ctx, lim.CallTimeout)
	}
	ctx, cancelTTFB := context.WithCancelCause(ctx)
	done := func() { cancelTTFB(nil); cancelCall() }
	// time_to_first_byte bounds the wait for the peer's first answer: the
	// callee sends 103 Early Hints once it has accepted the call and starts
	// the backend, so a slow capability is bounded by call_timeout instead.
	var ttfb *time.Timer
	trace := &httptrace.ClientTrace{Got1xxResponse: func(int, textproto.MIMEHeader) error { ttfb.Stop(); return nil }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, transport.PeerURL(p.ID, path), bytes.NewReader(body))
	if err != nil {
		done()
		return nil, nil, wire.Sent{}, refusal.Wrap(refusal.StageInternal, err)
	}
	req.Header.Set("Content-Type", "application/json")
	wire.SetFirstByteWithin(req.Header, lim.TimeToFirstByte)
	setReportHeader(req.Header, clean)
	sent, err := n.signRequest(req, body, wire.SignParams{Key: n.key, Audience: p.ID, Capability: capName, Now: n.now(), Chain: chainFor(ctx)})
	if err != nil {
		done()
		return nil, nil, wire.Sent{}, signError(err)
	}
	if onSigned != nil {
		if err := onSigned(ctx, clean, sent); err != nil {
			done()
			return nil, nil, wire.Sent{}, err
		}
	}
	ttfb = time.AfterFunc(lim.TimeToFirstByte, func() { cancelTTFB(errTimeToFirstByte) })
	resp, err := n.client.Do(req)
	ttfb.Stop()
	if err != nil {
		err = n.transportError(parent, ctx, p, lim, err) // before cancelling: it reads ctx
		done()
		return nil, nil, sent, err
	}
	if !readBody {
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: done}
		return resp, nil, sent, nil
	}
	defer done()
	defer resp.Body.Close()
	out, err := wire.ReadBodySized(resp.Body, lim.MaxBodyBytes, resp.ContentLength)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, sent, n.transportError(parent, ctx, p, lim, err)
		}
		return nil, nil, sent, refusal.Wrap(refusal.StageWire, fmt.Errorf("response from %s: %w", p.label(), err))
	}
	return resp, out, sent, nil
}

// signError classifies a refusal to sign: a delegation chain too deep or looping
// back to the audience is a budget refusal (ours, not the peer's fault);
// anything else is an internal error.
func signError(err error) error {
	if r, ok := wire.ReasonOf(err); ok && (r == wire.ReasonChainLoop || r == wire.ReasonChainTooDeep) {
		return &refusal.Error{Stage: refusal.StageBudget, Reason: "delegation " + r.String(), Err: err}
	}
	return refusal.Wrap(refusal.StageInternal, err)
}

type cancelOnClose struct {
	io.ReadCloser
	cancel func()
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// transportError turns a failed round trip into a transport refusal that says
// why: refused handshake, a relay's refusal, unreachable address, or a timeout.
func (n *Node) transportError(parent, ctx context.Context, p Peer, lim wire.Limits, err error) error {
	var he *transport.HandshakeError
	var re *transport.RelayError
	switch {
	case parent.Err() != nil:
		return &refusal.Error{Stage: refusal.StageTransport, Reason: "cancelled by the caller", Err: errors.Join(errCallerGaveUp, err)}
	case errors.As(err, &he):
		return &refusal.Error{Stage: refusal.StageTransport, Reason: fmt.Sprintf("handshake with %s at %s refused: %s", p.label(), p.Addr, he.Reason), Err: err}
	case errors.As(err, &re):
		return &refusal.Error{Stage: refusal.StageTransport, Reason: fmt.Sprintf("relay %s refused the circuit to %s: %s", re.Relay.Short(), p.label(), re.Reason), Err: err}
	case errors.Is(err, transport.ErrUnreachable):
		return &refusal.Error{Stage: refusal.StageTransport, Reason: fmt.Sprintf("peer %s unreachable at %s", p.label(), p.Addr), Err: err}
	case errors.Is(context.Cause(ctx), errTimeToFirstByte):
		return &refusal.Error{Stage: refusal.StageTransport, Reason: fmt.Sprintf("no answer from %s within time_to_first_byte=%v", p.label(), lim.TimeToFirstByte), Err: err}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &refusal.Error{Stage: refusal.StageTransport, Reason: fmt.Sprintf("call to %s exceeded call_timeout=%v", p.label(), lim.CallTimeout), Err: err}
	case ctx.Err() != nil:
		return &refusal.Error{Stage: refusal.StageTransport, Reason: "cancelled", Err: err}
	}
	return &refusal.Error{Stage: refusal.StageTransport, Reason: fmt.Sprintf("connection to %s at %s lost", p.label(), p.Addr), Err: err}
}

// remoteRefusal decodes the signed failure envelope of a non-200 answer.
func remoteRefusal(status int, body []byte) error {
	f, err := wire.DecodeFailure(body)
	if err != nil {
		return &refusal.Error{Stage: refusal.StageWire, Reason: fmt.Sprintf("peer answered HTTP %d with a malformed failure", status), Remote: true, Err: err}
	}
	reason := f.Reason
	switch {
	case f.Limit != nil:
		reason = f.Limit.Error()
	case f.Stage == string(refusal.StageBudget):
		reason = budget.ReasonSentence(reason)
	default:
		reason = remoteSentence(reason)
	}
	return &refusal.Error{Stage: knownStage(f.Stage), Reason: reason, Remote: true, Err: peerToken(f.Reason)}
}

// knownStage maps a peer-supplied stage name onto ours; anything else is internal.
func knownStage(s string) refusal.Stage {
	switch st := refusal.Stage(s); st {
	case refusal.StageResolve, refusal.StageBudget, refusal.StageSanitize, refusal.StageTransport,
		refusal.StageWire, refusal.StageTrust, refusal.StagePolicy, refusal.StageScreen,
		refusal.StageBackend, refusal.StageAudit:
		return st
	}
	return refusal.StageInternal
}

// label names p in messages: its nickname with the short key, as "globex
// (Ab3dE9xQ)", or only the short key outside the peer book.
func (p Peer) label() string {
	if p.Name == "" {
		return p.ID.Short()
	}
	return p.Name + " (" + p.ID.Short() + ")"
}
