package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/screen"
	"github.com/treaty-dev/treaty/internal/trust"
)

// scrub runs the outbound sanitizer on data bound for peer under the data
// policy for (peer, capability). It is the only way to get the sanitize.Clean
// that the edge (edge.go, roundTrip) requires, so no path can send unscrubbed
// bytes. ctx bounds the work: content that cannot be scanned before it ends is
// refused at stage sanitize, not sent.
func (n *Node) scrub(ctx context.Context, st *state, peer identity.PublicKey, capName string, data []byte) (sanitize.Clean, error) {
	defer n.timeStage(stageSanitize)()
	clean, err := n.sanitizer.ApplyContext(ctx, peer.String(), st.cfg.SanitizePolicy(peer.String(), capName), data)
	n.noteSanitized(clean, err)
	if err != nil {
		var b *sanitize.BlockedError
		if errors.As(err, &b) {
			cats := make([]string, len(b.Categories))
			for i, c := range b.Categories {
				cats[i] = string(c)
			}
			return sanitize.Clean{}, &refusal.Error{Stage: refusal.StageSanitize, Err: err,
				Reason: fmt.Sprintf("blocked: content for %s holds %s (policy: block)", peer.Short(), strings.Join(cats, ", "))}
		}
		return sanitize.Clean{}, refusal.Wrap(refusal.StageSanitize, err)
	}
	return clean, nil
}

// screenInbound screens content that peer sent us (a call's input at the
// callee, a result at the caller). It returns the content to deliver: as is,
// or wrapped by screen.Mark so a local agent can tell it from instructions.
// A block verdict is a screen refusal. Verdicts are trust evidence. ctx bounds
// the work: content that cannot be screened before it ends is refused.
func (n *Node) screenInbound(ctx context.Context, st *state, peer identity.PublicKey, capName string, data []byte) ([]byte, screen.Verdict, error) {
	defer n.timeStage(stageScreen)()
	v, err := n.screener.ScreenContext(ctx, st.cfg.ScreenPolicyFor(peer.String(), capName), data)
	if err != nil {
		return nil, v, refusal.Wrap(refusal.StageScreen, err)
	}
	n.noteVerdict(v)
	switch v.Action {
	case screen.ActionBlock:
		n.observe(peer, trust.KindScreenBlock, capName)
		return nil, v, &refusal.Error{Stage: refusal.StageScreen,
			Reason: fmt.Sprintf("content from %s blocked (score %.2f: %s)", peer.Short(), v.Score, strings.Join(v.Reasons, ", "))}
	case screen.ActionMark:
		n.observe(peer, trust.KindScreenMark, capName)
		return screen.Mark(peer.String(), v, data), v, nil
	}
	return data, v, nil
}

// noteFindings records as trust evidence that a peer sent us secrets or PII:
// its own sanitizer should have stopped them. Evidence is best effort: a scan
// cut short by ctx records nothing.
func (n *Node) noteFindings(ctx context.Context, peer identity.PublicKey, capName string, data []byte) {
	if f, err := n.sanitizer.ScanContext(ctx, data); err == nil && len(f) > 0 {
		n.observe(peer, trust.KindSanitizer, fmt.Sprintf("%s: %d findings", capName, len(f)))
	}
}

// headerSanitizerReport carries the sanitizer's report (counts per category and
// action, never values) with every request and response, so the receiving
// side sees what was scrubbed from what it got. It is informational and not
// covered by the signature.
const headerSanitizerReport = "Treaty-Sanitizer-Report"

func setReportHeader(h http.Header, clean sanitize.Clean) {
	if a := clean.Strongest(); a == "" || a == sanitize.ActionPass {
		return
	}
	h.Set(headerSanitizerReport, string(clean.AppendReportJSON(nil)))
}
