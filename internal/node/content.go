package node

import (
	"context"
	"encoding/json"
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
	v, err := n.screenContent(ctx, st, peer, capName, data)
	return n.admitScreened(peer, capName, data, v, err)
}

// screenContent is the screen's verdict on data, with no side effect, so it
// may run while other checks of the same message do.
func (n *Node) screenContent(ctx context.Context, st *state, peer identity.PublicKey, capName string, data []byte) (screen.Verdict, error) {
	defer n.timeStage(stageScreen)()
	return n.screener.ScreenContext(ctx, st.cfg.ScreenPolicyFor(peer.String(), capName), data)
}

// admitScreened acts on the screen's verdict v (or its error) on data:
// counts it, records it as trust evidence, and blocks, marks or passes data.
func (n *Node) admitScreened(peer identity.PublicKey, capName string, data []byte, v screen.Verdict, err error) ([]byte, screen.Verdict, error) {
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
	n.noteFound(peer, capName, n.scanFindings(ctx, data))
}

// scanFindings counts the sanitizer's findings in data, with no side effect;
// -1 when the scan was cut short by ctx.
func (n *Node) scanFindings(ctx context.Context, data []byte) int {
	f, err := n.sanitizer.ScanContext(ctx, data)
	if err != nil {
		return -1
	}
	return len(f)
}

func (n *Node) noteFound(peer identity.PublicKey, capName string, findings int) {
	if findings > 0 {
		n.observe(peer, trust.KindSanitizer, fmt.Sprintf("%s: %d findings", capName, findings))
	}
}

// pendingScan is scanFindings running on its own goroutine: the trust
// evidence scan and the screen read the same bytes, and on a machine with
// more than one core the one no longer waits for the other. The data must
// not change until wait returns.
type pendingScan struct {
	done     chan struct{}
	findings int
}

func (n *Node) scanAsync(ctx context.Context, data []byte) *pendingScan {
	p := &pendingScan{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.findings = n.scanFindings(ctx, data)
	}()
	return p
}

// wait returns the scan's result once it is done.
func (p *pendingScan) wait() int {
	<-p.done
	return p.findings
}

// inspection is the inbound content gates' work on a result a peer sent (the
// trust evidence scan, the pseudonyms restored and the screen), done on its
// own goroutines while the caller checks the answer's signature. Nothing of
// it takes effect, and nothing reaches the agent, until accept: a result
// whose signature fails is dropped with its inspection unused.
type inspection struct {
	n       *Node
	peer    identity.PublicKey
	capName string
	done    chan struct{}
	scan    *pendingScan
	data    []byte // the result with our pseudonyms restored
	verdict screen.Verdict
	err     error
}

func (n *Node) inspectAsync(ctx context.Context, st *state, peer identity.PublicKey, capName string, body []byte) *inspection {
	in := &inspection{n: n, peer: peer, capName: capName, done: make(chan struct{}), scan: n.scanAsync(ctx, body)}
	go func() {
		defer close(in.done)
		in.data = n.sanitizer.Restore(peer.String(), body)
		in.verdict, in.err = n.screenContent(ctx, st, peer, capName, in.data)
	}()
	return in
}

// wait returns once every goroutine of the inspection has finished.
func (in *inspection) wait() {
	<-in.done
	in.scan.wait()
}

// accept waits for the inspection and acts on it as acceptResult would have:
// findings first, then the screen's verdict.
func (in *inspection) accept() ([]byte, screen.Verdict, error) {
	in.wait()
	in.n.noteFound(in.peer, in.capName, in.scan.wait())
	return in.n.admitScreened(in.peer, in.capName, in.data, in.verdict, in.err)
}

// headerSanitizerReport carries the sanitizer's report (counts per category and
// action, never values) with every request and response, so the receiving
// side sees what was scrubbed from what it got. It is informational and not
// covered by the signature.
const headerSanitizerReport = "Treaty-Sanitizer-Report"

func setReportHeader(h http.Header, clean sanitize.Clean) {
	r := clean.Report()
	if r.Strongest == "" || r.Strongest == sanitize.ActionPass {
		return
	}
	if b, err := json.Marshal(r); err == nil {
		h.Set(headerSanitizerReport, string(b))
	}
}
