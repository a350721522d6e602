package node

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/policy"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/trust"
	"github.com/treaty-dev/treaty/internal/wire"
)

// serveFederation is the inbound call path (DESIGN.md steps 7-13). Every answer,
// refusals included, is signed and bound to the request, so the caller holds
// evidence of what this node said.
func (n *Node) serveFederation(w http.ResponseWriter, r *http.Request) {
	st := n.state.Load()
	unverified := wire.UnverifiedRequest(r)

	// 7. The handshake proved the caller's key and that it is admitted.
	peer, ok := transport.PeerFromRequest(r)
	if !ok {
		n.refuse(w, unverified, refusal.StageInternal, errors.New("no handshake identity"))
		return
	}
	if r.Method != http.MethodPost {
		n.refuse(w, unverified, refusal.StageWire, &wire.Error{Reason: wire.ReasonMalformed, Detail: "method must be POST"})
		return
	}
	release, err := n.peerLimiter().Acquire(peer)
	if err != nil {
		n.refuse(w, unverified, refusal.StageWire, err)
		return
	}
	defer release()
	body, err := wire.ReadBody(r.Body, st.limits.MaxBodyBytes)
	if err != nil {
		n.refuse(w, unverified, refusal.StageWire, err)
		return
	}

	// 8. The signature verifies with the handshake key; audience is me; the
	// request is fresh and its nonce unseen.
	req, err := n.verifier.VerifyRequest(r, body, peer, n.now())
	if err != nil {
		n.log.Warn("request refused", "peer", peer, "stage", refusal.StageWire, "err", err)
		if kind, ok := wireEvidence(err); ok {
			n.observe(peer, kind, err.Error())
		}
		n.refuse(w, unverified, refusal.StageWire, err)
		return
	}
	kind, capName := route(r.URL.Path)
	if kind == "" || (kind == "caps") != (req.Capability == capsCapability) || (kind != "caps" && capName != req.Capability) {
		n.refuse(w, req, refusal.StageWire, &wire.Error{Reason: wire.ReasonMalformed, Detail: "path does not match the signed capability"})
		return
	}
	// 9. Trust and budget gates, then authorization (default deny). An
	// ungranted capability and a missing one get the same answer, so a peer
	// cannot probe for names it was not given.
	pctx, ticket, ref := n.inboundGates(peer, capName, len(body))
	if ref != nil {
		n.log.Info("call refused", "peer", peer, "capability", capName, "stage", ref.Stage, "reason", ref.Reason)
		n.refuse(w, req, ref.Stage, ref)
		return
	}
	replyBytes := 0
	defer func() { ticket.Release(0, int64(replyBytes), n.now()) }()
	if kind == "caps" {
		replyBytes = n.serveCaps(w, st, peer, req, pctx)
		return
	}
	cp := st.caps[capName]
	if !st.pol.Authorize(peer, policy.ActionCall, capName, pctx).Allowed || cp == nil {
		n.log.Info("call denied", "peer", peer, "capability", capName, "stage", refusal.StagePolicy)
		n.observe(peer, trust.KindDenied, capName)
		n.refuse(w, req, refusal.StagePolicy, errNotGranted)
		return
	}
	if (kind == "stream") != cp.Info.Stream {
		n.refuse(w, req, refusal.StageWire, &wire.Error{Reason: wire.ReasonMalformed, Detail: "wrong endpoint for this capability"})
		return
	}
	if !json.Valid(body) {
		n.refuse(w, req, refusal.StageWire, &wire.Error{Reason: wire.ReasonMalformed, Detail: "input is not JSON"})
		return
	}
	// 10. Screen the input: block it, or deliver it marked as untrusted.
	n.noteFindings(peer, capName, body)
	input, _, err := n.screenInbound(st, peer, capName, body)
	if err != nil {
		n.refuse(w, req, refusal.StageScreen, err)
		return
	}
	inv := backend.Invocation{Peer: peer, Capability: capName, Input: input}

	// 11. Run the backend; 12. sign the response bound to the request; 13. audit.
	if kind == "stream" {
		n.serveStream(w, r, st, req, cp, inv)
		return
	}
	out, err := cp.Backend.Call(r.Context(), inv)
	if err != nil {
		n.log.Info("backend failed", "peer", peer, "capability", capName, "err", err)
		n.refuse(w, req, refusal.StageBackend, err)
		return
	}
	// Sanitize the result with the caller's data policy before it leaves.
	clean, err := n.scrub(st, peer, capName, out)
	if err != nil {
		n.refuse(w, req, refusal.StageSanitize, err)
		return
	}
	n.observe(peer, trust.KindSuccess, capName)
	replyBytes = len(out)
	n.reply(w, req, http.StatusOK, clean)
}

var errNotGranted = errors.New("not_granted")

func (n *Node) serveCaps(w http.ResponseWriter, st *state, peer identity.PublicKey, req wire.Request, pctx policy.Context) int {
	infos := []CapabilityInfo{}
	for _, name := range st.pol.Visible(peer, st.capNames(), pctx) {
		infos = append(infos, st.caps[name].Info)
	}
	b, err := json.Marshal(map[string]any{"capabilities": infos})
	if err != nil {
		n.refuse(w, req, refusal.StageInternal, err)
		return 0
	}
	clean, err := n.scrub(st, peer, capsCapability, b)
	if err != nil {
		n.refuse(w, req, refusal.StageSanitize, err)
		return 0
	}
	n.reply(w, req, http.StatusOK, clean)
	return len(b)
}

func (n *Node) serveStream(w http.ResponseWriter, r *http.Request, st *state, req wire.Request, cp *capability, inv backend.Invocation) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", wire.StreamContentType)
	w.WriteHeader(http.StatusOK)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	sw := wire.NewStreamWriter(w, flush, req, n.key)
	var blocked error
	err := cp.Streamer.Stream(r.Context(), inv, func(b []byte) error {
		clean, err := n.scrub(st, inv.Peer, inv.Capability, b)
		if err != nil {
			blocked = err
			return err // stops the backend: nothing more leaves
		}
		return sw.Write(clean.Bytes())
	})
	var f *wire.Failure
	switch {
	case blocked != nil:
		f = &wire.Failure{Stage: string(refusal.StageSanitize), Reason: "blocked"}
		n.log.Info("stream event blocked by the sanitizer", "peer", inv.Peer, "capability", inv.Capability, "err", blocked)
	case err != nil:
		f = &wire.Failure{Stage: string(refusal.StageBackend), Reason: backendReason(err)}
		n.log.Info("stream ended with failure", "peer", inv.Peer, "capability", inv.Capability, "err", err)
	}
	if r.Context().Err() != nil {
		return // the caller went away; nobody reads the end event
	}
	if err := sw.Close(f); err != nil {
		n.log.Warn("stream close", "err", err)
	}
}

func (n *Node) peerLimiter() *wire.PeerLimiter {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.peerLim
}

// route splits /v1/{call,stream}/CAP and /v1/caps.
func route(path string) (kind, capName string) {
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		return "", ""
	}
	if rest == "caps" {
		return "caps", ""
	}
	kind, capName, ok = strings.Cut(rest, "/")
	if !ok || (kind != "call" && kind != "stream") || !wire.ValidCapabilityName(capName) {
		return "", ""
	}
	return kind, capName
}

// reply signs and writes a response. It takes only sanitized bytes.
func (n *Node) reply(w http.ResponseWriter, req wire.Request, status int, clean sanitize.Clean) {
	body := clean.Bytes()
	if err := wire.SignResponse(w.Header(), status, body, req, n.key, n.now()); err != nil {
		n.log.Error("sign response", "err", err)
		http.Error(w, "", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// refuse answers with a signed failure envelope naming the stage. Only a short
// token of the reason is sent; local detail stays in our logs.
func (n *Node) refuse(w http.ResponseWriter, req wire.Request, stage refusal.Stage, err error) {
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
	default:
		f = wire.FailureOf(string(stage), err)
	}
	// Failure envelopes are short tokens we wrote, but they leave the node too.
	clean, serr := n.scrub(n.state.Load(), req.Peer, "", wire.EncodeFailure(f))
	if serr != nil {
		n.log.Error("failure envelope refused by the sanitizer", "err", serr)
		http.Error(w, "", http.StatusInternalServerError)
		return
	}
	n.reply(w, req, statusFor(stage, err), clean)
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
