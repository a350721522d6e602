package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/policy"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/screen"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/trust"
	"github.com/treaty-dev/treaty/internal/wire"
)

// inbound is one federation request being served: the steps below run in
// order on it, and every refusal goes through its refuse method, which signs
// the answer and audits it.
type inbound struct {
	n       *Node
	w       http.ResponseWriter
	r       *http.Request
	st      *state
	peer    identity.PublicKey // proven by the handshake
	req     wire.Request       // verified request (zero before step 8; see answerTo)
	capName string
	body    []byte
	verdict *screen.Verdict // the screen's verdict on the input, once screened
}

// serveFederation is the inbound call path (docs/architecture.md, "Inbound";
// the step comments below number on from the outbound path's six). Every answer,
// refusals included, is signed and bound to the request, so the caller holds
// evidence of what this node said; every answer is audited before it is sent.
func (n *Node) serveFederation(w http.ResponseWriter, r *http.Request) {
	in := &inbound{n: n, w: w, r: r, st: n.state.Load()}

	// 7. The handshake proved the caller's key and that it is admitted.
	peer, ok := transport.PeerFromRequest(r)
	if !ok {
		in.refuse(refusal.StageInternal, errors.New("no handshake identity"))
		return
	}
	in.peer = peer
	// A quarantined peer is refused before anything costs this node: no body
	// read, no signature checked, no nonce held. Witnessing is refused too.
	if n.trust.Standing(peer.String(), n.now()).Quarantined {
		in.refuse(refusal.StageTrust, refusal.New(refusal.StageTrust, "quarantined"))
		return
	}
	// So is a peer that spent its allowance of refused requests (ratelimit.go).
	if !n.refusals.budget.allow(peer, n.now()) {
		in.refuse(refusal.StageBudget, errTooManyRefused)
		return
	}
	if r.Method != http.MethodPost {
		in.refuse(refusal.StageWire, &wire.Error{Reason: wire.ReasonMalformed, Detail: "method must be POST"})
		return
	}
	release, err := n.peerLimiter().Acquire(peer)
	if err != nil {
		in.refuse(refusal.StageWire, err)
		return
	}
	defer release()
	// The body is part of the call: call_timeout bounds its arrival, so a
	// peer that announces a body and sends none holds nothing for long. A
	// timer closes the body; the stream's read deadline would cost a trip
	// through HTTP/2's serve loop on every call.
	late := time.AfterFunc(in.st.limits.CallTimeout, func() { r.Body.Close() })
	in.body, err = wire.ReadBodySized(r.Body, in.st.limits.MaxBodyBytes, r.ContentLength)
	timedOut := !late.Stop()
	if err != nil {
		var le *wire.LimitError
		switch {
		case timedOut || errors.Is(err, os.ErrDeadlineExceeded):
			err = &wire.LimitError{Limit: wire.LimitCallTimeout, Max: in.st.limits.CallTimeout.Milliseconds(), Got: -1}
		case !errors.As(err, &le):
			// The stream ended short of its Content-Length, or was reset:
			// the peer's request is malformed, not this node's failure.
			err = &wire.Error{Reason: wire.ReasonMalformed, Detail: err.Error()}
		}
		in.refuse(refusal.StageWire, err)
		return
	}

	// 8. The signature verifies with the handshake key; audience is me; the
	// request is fresh and its nonce unseen.
	req, err := n.verifyRequest(r, in.body, peer)
	if err != nil {
		if kind, ok := wireEvidence(err); ok {
			n.observe(peer, kind, err.Error())
		}
		in.refuse(refusal.StageWire, err)
		return
	}
	in.req = req
	kind, capName := route(r.URL.Path)
	in.capName = req.Capability
	if kind == "" || capName != req.Capability {
		in.refuse(refusal.StageWire, &wire.Error{Reason: wire.ReasonMalformed, Detail: "path does not match the signed capability"})
		return
	}
	if kind == "audit" {
		// Witnessing is open to every admitted peer that is not quarantined;
		// it costs the peer no budget, so witnessing never starves calls.
		in.serveAudit()
		return
	}

	// 9. Trust and budget gates, then authorization (default deny). An
	// ungranted capability and a missing one get the same answer, so a peer
	// cannot probe for names it was not given. A request these gates refuse
	// cost the peer nothing, so its nonce is given back: the window holds
	// only nonces of requests that were charged.
	if ref := n.checkDepth(in.st, req); ref != nil {
		n.verifier.Forget(req)
		in.refuse(ref.Stage, ref)
		return
	}
	pctx, ticket, ref := n.inboundGates(peer, capName, len(in.body))
	if ref != nil {
		n.verifier.Forget(req)
		in.refuse(ref.Stage, ref)
		return
	}
	pctx.Depth = len(req.Chain)
	replyBytes, cost := 0, 0.0
	defer func() { ticket.Release(cost, int64(replyBytes), n.now()) }()
	if kind == "caps" {
		replyBytes = in.serveCaps(pctx)
		return
	}
	cp := in.st.caps[capName]
	if !n.authorize(in.st, peer, capName, pctx) || cp == nil {
		n.observe(peer, trust.KindDenied, capName)
		in.refuse(refusal.StagePolicy, errNotGranted)
		return
	}
	if (kind == "stream") != cp.Info.Stream {
		in.refuse(refusal.StageWire, &wire.Error{Reason: wire.ReasonMalformed, Detail: "wrong endpoint for this capability"})
		return
	}
	if !screen.ValidJSON(in.body) {
		in.refuse(refusal.StageWire, &wire.Error{Reason: wire.ReasonMalformed, Detail: "input is not JSON"})
		return
	}
	if err := cp.checkInput(in.body); err != nil {
		in.refuse(refusal.StageOf(err), err)
		return
	}

	// 10. Screen the input: block it, or deliver it marked as untrusted.
	// The content gates' work is bounded like the call's: a peer cannot buy
	// more CPU than call_timeout with a large or finding-dense input.
	gateCtx, cancelGates := context.WithTimeout(r.Context(), in.st.limits.CallTimeout)
	defer cancelGates()
	n.noteFindings(gateCtx, peer, capName, in.body)
	input, verdict, err := n.screenInbound(gateCtx, in.st, peer, capName, in.body)
	in.verdict = &verdict
	if err != nil {
		in.refuse(refusal.StageScreen, err)
		return
	}
	token, done := n.serving(req)
	defer done()
	inv := backend.Invocation{Peer: peer, Capability: capName, Input: input, CallToken: token, Home: n.home}
	ctx := withServed(r.Context(), req)

	// 11. Run the backend and sanitize its result with the caller's data policy.
	if kind == "stream" {
		var failed bool
		if replyBytes, cost, failed = in.serveStream(ctx, cp, inv); failed {
			ticket.Failed()
		}
		return
	}
	// Tell the caller the call was accepted and is running: its
	// time_to_first_byte ends here, and call_timeout bounds the rest.
	settle := in.acceptCall()
	out, err := n.runBackend(ctx, cp, inv)
	settle()
	if err != nil {
		ticket.Failed() // the backend still worked: budget.Limit.FailedCost
		in.refuse(refusal.StageBackend, err)
		return
	}
	out, cost = takeUsage(out)
	if err := cp.checkOutput(out); err != nil {
		ticket.Failed()
		in.refuse(refusal.StageOf(err), err)
		return
	}
	clean, err := n.scrub(gateCtx, in.st, peer, capName, out)
	if err != nil {
		in.refuse(refusal.StageSanitize, err)
		return
	}
	// 12-13. Audit call.served durably, then sign the response bound to the
	// request (with our entry's index and checkpoint), and reply.
	n.observe(peer, trust.KindSuccess, capName)
	replyBytes = len(out)
	in.serve(clean)
}

var errNotGranted = errors.New("not_granted")

// usageKey is the top-level field in which a backend may report what a call
// cost (e.g. {"treaty_usage":{"cost":12.5}} for model tokens or cents). The node
// charges it to the caller's cost budget and removes it from the result.
const usageKey = "treaty_usage"

// takeUsage strips a backend's usage report from its JSON result.
func takeUsage(out []byte) ([]byte, float64) {
	if !bytes.Contains(out, []byte(`"`+usageKey+`"`)) {
		return out, 0
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(out, &obj) != nil {
		return out, 0
	}
	var u struct {
		Cost float64 `json:"cost"`
	}
	raw, ok := obj[usageKey]
	if !ok || json.Unmarshal(raw, &u) != nil || u.Cost < 0 {
		return out, 0
	}
	delete(obj, usageKey)
	stripped, err := json.Marshal(obj)
	if err != nil {
		return out, 0
	}
	return stripped, u.Cost
}

// serve audits a successful answer and sends it.
func (in *inbound) serve(clean sanitize.Clean) {
	e := in.entry(audit.KindCallServed, "ok", "")
	in.n.withContent(&e, in.st, in.capName, clean, in.verdict)
	// The caller going away must not erase the record of what was done for it.
	idx, cp, err := in.appendServed(context.WithoutCancel(in.r.Context()), e)
	if err != nil {
		in.n.log.Error("audit append failed; refusing to answer", "event", "audit.append_failed", "err", err)
		in.refuse(refusal.StageAudit, err)
		return
	}
	in.setEvidence(idx, cp)
	in.n.countInbound(in.peer, in.capName, "", "")
	in.reply(http.StatusOK, clean)
}

// answerTo is the request an answer is bound to: the verified one, or, for a
// refusal before or at verification, its raw signature only, when the
// handshake peer made it. The raw header is checked only when such a refusal
// needs it, not on every call.
func (in *inbound) answerTo() wire.Request {
	if in.req.Signature != "" {
		return in.req
	}
	return in.n.verifier.UnverifiedRequest(in.r, in.peer)
}

// entry starts an audit entry for this request.
func (in *inbound) entry(kind, outcome string, stage refusal.Stage) audit.Entry {
	e := audit.Entry{Kind: kind, Direction: "in", Capability: in.capName, Outcome: outcome, Stage: string(stage)}
	if !in.peer.IsZero() {
		e.Peer = in.peer.String()
	}
	if in.req.Signature != "" && in.req.Base != "" {
		e.RequestDigest = in.req.Digest[:]
		e.Evidence = signedRequestEvidence(in.req)
	}
	return e
}

func (in *inbound) serveCaps(pctx policy.Context) int {
	infos := []CapabilityInfo{}
	for _, name := range in.st.pol.Visible(in.peer, in.st.capNames(), pctx) {
		infos = append(infos, in.st.caps[name].Info)
	}
	clean, size, err := in.scrubCaps(infos) // capsscrub.go
	if err != nil {
		stage := refusal.StageSanitize
		if size == 0 {
			stage = refusal.StageInternal
		}
		in.refuse(stage, err)
		return 0
	}
	in.serve(clean)
	return size
}

// serveStream runs a stream capability and returns the bytes sent, the
// cost its events reported, and whether the backend ended without its
// result (failed, invalid or cancelled), for the caller's budgets.
func (in *inbound) serveStream(ctx context.Context, cp *capability, inv backend.Invocation) (sentBytes int, cost float64, failed bool) {
	n := in.n
	// The stream's start is audited before the first event leaves; its end
	// (and the signed end event) is audited when it finishes.
	if _, err := n.audit.Append(context.WithoutCancel(in.r.Context()), in.entry(audit.KindCallServed, "started", "")); err != nil {
		in.refuse(refusal.StageAudit, err)
		return 0, 0, false
	}
	sw := in.openStream()
	var blocked, invalid error
	events := 0
	err := cp.Streamer.Stream(ctx, inv, func(b []byte) error {
		b, c := takeUsage(b)
		cost += c
		if err := cp.checkOutput(b); err != nil {
			invalid = err
			return err // stops the backend: this event and the rest never leave
		}
		clean, err := n.scrub(ctx, in.st, inv.Peer, inv.Capability, b)
		if err != nil {
			blocked = err
			return err // stops the backend: nothing more leaves
		}
		if err := sw.Write(clean); err != nil {
			if errors.As(err, new(*wire.LimitError)) {
				invalid = err // over what a caller accepts: the backend's output failed
			}
			return err
		}
		events++
		sentBytes += clean.Len()
		return nil
	})
	var f *wire.Failure
	outcome, stage := "ok", refusal.Stage("")
	switch {
	case blocked != nil:
		f = &wire.Failure{Stage: string(refusal.StageSanitize), Reason: "blocked"}
		outcome, stage = "refused", refusal.StageSanitize
	case invalid != nil:
		f = &wire.Failure{Stage: string(refusal.StageBackend), Reason: backendReason(invalid)}
		if le := (*wire.LimitError)(nil); errors.As(invalid, &le) {
			f.Reason = le.Limit
		}
		outcome, stage = "failed", refusal.StageBackend
	case in.r.Context().Err() != nil:
		outcome = "cancelled"
	case err != nil:
		f = &wire.Failure{Stage: string(refusal.StageBackend), Reason: backendReason(err)}
		outcome, stage = "failed", refusal.StageBackend
	}
	failed = outcome == "failed" || outcome == "cancelled"
	e := in.entry(audit.KindCallServed, outcome, stage)
	n.countInbound(in.peer, in.capName, stage, failureReason(f))
	e.Report, _ = json.Marshal(map[string]int{"events": events})
	if _, aerr := n.audit.Append(context.WithoutCancel(in.r.Context()), e); aerr != nil {
		n.log.Error("audit append failed at the end of a stream", "event", "audit.append_failed", "err", aerr)
		f = &wire.Failure{Stage: string(refusal.StageAudit), Reason: "internal"}
	}
	if in.r.Context().Err() != nil {
		return sentBytes, cost, failed // the caller went away; nobody reads the end event
	}
	if f != nil {
		// The end event's failure leaves the node too: scrub its tokens.
		clean, err := n.scrub(context.Background(), in.st, in.peer, in.capName, wire.EncodeFailure(*f))
		if err != nil {
			f = &wire.Failure{Stage: string(refusal.StageSanitize), Reason: "blocked"}
		} else if g, err := wire.DecodeFailure(clean.Bytes()); err == nil {
			f = &g
		}
	}
	if err := sw.Close(f); err != nil {
		n.log.Warn("stream close", "err", err)
	}
	return sentBytes, cost, failed
}

// reasonHighWater is the wire reason when our audit log is at its disk
// high-water mark: the caller learns why, not our numbers.
const reasonHighWater = "disk_high_water"

// refuse audits the refusal, then answers with a signed failure envelope naming
// the stage. Only a short token of the reason is sent; local detail stays in
// our logs.
func (in *inbound) refuse(stage refusal.Stage, err error) {
	n := in.n
	var f wire.Failure
	switch stage {
	case refusal.StageBackend:
		f = wire.Failure{Stage: string(stage), Reason: backendReason(err)}
	case refusal.StagePolicy:
		f = wire.Failure{Stage: string(stage), Reason: "not_granted"}
	case refusal.StageTrust, refusal.StageBudget, refusal.StageSanitize, refusal.StageScreen:
		var r *refusal.Error
		if errors.As(err, &r) {
			f = wire.Failure{Stage: string(stage), Reason: token(r.Reason)}
		}
	case refusal.StageAudit:
		f = wire.Failure{Stage: string(stage), Reason: "internal"}
		if errors.Is(err, audit.ErrBeyondSize) {
			f.Reason = reasonBeyondSize
		}
		if errors.Is(err, audit.ErrHighWater) {
			f.Reason = reasonHighWater
		}
	default:
		f = wire.FailureOf(string(stage), err)
	}
	n.countInbound(in.peer, in.capName, stage, refusalKind(f, err))
	if !in.peer.IsZero() && spendsRefusal(stage, err) {
		n.refusals.budget.spend(in.peer, n.now())
	}
	// Refusals a peer can cause at will, before it is served, are aggregated
	// (refusals.go); the answer below is sent and signed every time.
	recorded := !aggregated(stage) ||
		n.refusalAdmitted(refusalKey{source: in.source(), kind: audit.KindCallRefused, direction: "in", stage: string(stage)}, refusalKind(f, err))
	if recorded {
		var detail any = err
		if stage == refusal.StageBackend { // it holds what the local tool or agent said
			detail = n.logSafe(err)
		}
		n.log.Info("inbound call refused", "event", "call.refused", "peer", in.peer, "capability", in.capName, "stage", stage, "err", detail)
	}
	if stage != refusal.StageAudit && recorded {
		e := in.entry(audit.KindCallRefused, "refused", stage)
		if stage == refusal.StageBackend {
			e.Outcome = "failed"
		}
		r := map[string]any{"reason": f.Reason}
		if in.verdict != nil {
			r["screen"] = in.verdict
		}
		e.Report, _ = json.Marshal(r)
		if _, aerr := n.audit.Append(context.WithoutCancel(in.r.Context()), e); aerr != nil {
			n.log.Error("audit append of a refusal failed", "event", "audit.append_failed", "err", aerr)
			f = wire.Failure{Stage: string(refusal.StageAudit), Reason: "internal"}
			if errors.Is(aerr, audit.ErrHighWater) {
				f.Reason = reasonHighWater
			}
			stage = refusal.StageAudit
		}
	}
	// Failure envelopes are short tokens we wrote, but they leave the node too.
	clean, serr := n.scrub(context.Background(), in.st, in.peer, "", wire.EncodeFailure(f))
	if serr != nil {
		n.log.Error("failure envelope refused by the sanitizer", "event", "sanitize.envelope_blocked", "err", serr)
		in.replyEmpty(http.StatusInternalServerError)
		return
	}
	in.reply(statusFor(stage, err), clean)
}

// aggregated reports whether refusals at stage are aggregated: those a peer
// can cause before it is served. Screening, sanitizing, backend and audit
// refusals are records of a call that was charged and run: each keeps its
// own entry.
func aggregated(stage refusal.Stage) bool {
	switch stage {
	case refusal.StageInternal, refusal.StageWire, refusal.StageTrust, refusal.StageBudget, refusal.StagePolicy:
		return true
	}
	return false
}

// refusalKind is the reason a refusal is counted under in an aggregated entry:
// the wire reason, or the budget's name (its reason text varies with time).
func refusalKind(f wire.Failure, err error) string {
	var e *budget.Exceeded
	if errors.As(err, &e) {
		return e.Budget
	}
	return f.Reason
}

// source is the aggregation source of this request: the peer the handshake
// proved, or the remote address when there is none.
func (in *inbound) source() string {
	if !in.peer.IsZero() {
		return in.peer.String()
	}
	return strangerSource(in.r.RemoteAddr)
}

func (n *Node) peerLimiter() *wire.PeerLimiter {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.peerLim
}

// route splits /v1/{call,stream}/CAP, /v1/caps and /v1/audit.
func route(path string) (kind, capName string) {
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		return "", ""
	}
	switch rest {
	case "caps":
		return "caps", capsCapability
	case "audit":
		return "audit", auditCapability
	}
	kind, capName, ok = strings.Cut(rest, "/")
	if !ok || (kind != "call" && kind != "stream") || !wire.ValidCapabilityName(capName) {
		return "", ""
	}
	return kind, capName
}

func statusFor(stage refusal.Stage, err error) int {
	switch stage {
	case refusal.StagePolicy, refusal.StageTrust:
		return http.StatusForbidden
	case refusal.StageBudget:
		return http.StatusTooManyRequests
	case refusal.StageSanitize, refusal.StageScreen:
		return http.StatusUnprocessableEntity
	case refusal.StageBackend:
		return http.StatusBadGateway
	case refusal.StageAudit:
		return http.StatusServiceUnavailable
	case refusal.StageWire:
		return wire.StatusFor(err)
	}
	return http.StatusInternalServerError
}

// backendReason turns a backend failure into a wire-safe token, e.g.
// "exited with status 3" -> exited_with_status_3; never the backend's stderr.
func backendReason(err error) string {
	var f *backend.Failure
	if errors.As(err, &f) {
		return token(f.Reason)
	}
	return "failed"
}

// token maps s onto the wire's reason alphabet [a-z0-9._-], at most 64 bytes.
func token(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < 64; i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			b = append(b, c)
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		default:
			if len(b) > 0 && b[len(b)-1] != '_' {
				b = append(b, '_')
			}
		}
	}
	if len(b) == 0 {
		return "failed"
	}
	return strings.TrimRight(string(b), "_")
}
