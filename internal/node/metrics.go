package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/metrics"
	"github.com/treaty-dev/treaty/internal/policy"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/screen"
	"github.com/treaty-dev/treaty/internal/wire"
)

// observer is the node's instrumentation. Its zero value (metrics.listen
// unset) records nothing and costs a nil check per call site.
type observer struct {
	m    atomic.Pointer[metrics.Metrics] // set by Start
	addr atomic.Pointer[net.TCPAddr]
}

// startMetrics serves /metrics at metrics.listen until ctx ends; nothing when
// it is unset. Other subsystems add their collectors with n.Metrics().Register.
func (n *Node) startMetrics(ctx context.Context) error {
	mc := n.state.Load().cfg.Metrics
	if mc.Listen == "" {
		return nil
	}
	m, err := metrics.New(metrics.Options{})
	if err != nil {
		return err
	}
	if err := m.Watch(n); err != nil {
		return err
	}
	if err := n.registerGroupMetrics(m); err != nil {
		return err
	}
	if err := n.registerMembershipMetrics(m); err != nil {
		return err
	}
	srv, err := metrics.Listen(mc.Listen, mc.AllowNonLoopback, m, n.log)
	if err != nil {
		return err
	}
	n.obs.m.Store(m)
	if a, ok := srv.Addr().(*net.TCPAddr); ok {
		n.obs.addr.Store(a)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(ctx); err != nil {
			n.log.Error("metrics server stopped", "event", "metrics.stopped", "err", err)
		}
	}()
	n.log.Info("metrics served", "addr", srv.Addr().String())
	return nil
}

// MetricsAddr is the bound address of /metrics, or nil when it is not served.
func (n *Node) MetricsAddr() net.Addr {
	if a := n.obs.addr.Load(); a != nil {
		return a
	}
	return nil
}

// Metrics is the node's metrics registry, or nil when metrics.listen is unset
// (its methods do nothing on nil).
func (n *Node) Metrics() *metrics.Metrics { return n.obs.m.Load() }

// peerLabel is a peer's metric label: its nickname, or its short key.
func (n *Node) peerLabel(k identity.PublicKey) string {
	if k.IsZero() {
		return "unknown"
	}
	if p, ok := n.state.Load().peers[k]; ok {
		return p.Name
	}
	return k.Short()
}

// Timed stages of the call path (metrics.Stage*).
const (
	stageSign     = metrics.StageSign
	stageVerify   = metrics.StageVerify
	stagePolicy   = metrics.StagePolicy
	stageGates    = metrics.StageGates
	stageSanitize = metrics.StageSanitize
	stageScreen   = metrics.StageScreen
	stageBackend  = metrics.StageBackend
	stageAudit    = metrics.StageAudit
)

func noop() {}

// timeStage starts timing a stage; the func it returns records it, as in
// defer n.timeStage(stageSanitize)().
func (n *Node) timeStage(stage string) func() {
	m := n.obs.m.Load()
	if m == nil {
		return noop
	}
	start := time.Now()
	return func() { m.Stage(stage, start) }
}

// countOutbound counts an outbound call that ended with err (nil: ok).
func (n *Node) countOutbound(p Peer, capName string, err error) {
	m := n.obs.m.Load()
	if m == nil {
		return
	}
	m.Call("out", n.peerLabel(p.ID), capName, callOutcome(err))
	if err != nil {
		m.Refusal("out", string(refusal.StageOf(err)), outboundReason(err))
	}
}

// countInbound counts a served call, or one refused at stage with the
// reason token sent to the peer.
func (n *Node) countInbound(peer identity.PublicKey, capName string, stage refusal.Stage, reason string) {
	m := n.obs.m.Load()
	if m == nil {
		return
	}
	outcome := "ok"
	switch stage {
	case "":
	case refusal.StageBackend:
		outcome = "failed"
	default:
		outcome = "refused"
	}
	m.Call("in", n.peerLabel(peer), n.capLabel(capName), outcome)
	if stage != "" {
		m.Refusal("in", string(stage), reason)
	}
}

// failureReason is the reason token of a failure envelope, "" for none.
func failureReason(f *wire.Failure) string {
	if f == nil {
		return ""
	}
	return f.Reason
}

func callOutcome(err error) string {
	switch refusal.StageOf(err) {
	case "":
		if err != nil {
			return "failed"
		}
		return "ok"
	case refusal.StageTransport, refusal.StageBackend:
		return "failed"
	}
	if errors.Is(err, context.Canceled) {
		return "cancelled"
	}
	return "refused"
}

// outboundReason is a token for an outbound refusal: the peer's, a budget's
// name, a wire reason, or "other".
func outboundReason(err error) string {
	if t, ok := remoteToken(err); ok {
		return t
	}
	var e *budget.Exceeded
	if errors.As(err, &e) {
		return e.Budget
	}
	var w *wire.Error
	if errors.As(err, &w) {
		return w.Reason.String()
	}
	switch refusal.StageOf(err) {
	case refusal.StagePolicy:
		return "not_granted"
	case refusal.StageSanitize, refusal.StageScreen:
		return "blocked"
	case refusal.StageTransport:
		return "unreachable"
	case refusal.StageResolve:
		return "not_found"
	}
	return metrics.Other
}

// noteSanitized counts the sanitizer's findings in content leaving the node.
func (n *Node) noteSanitized(clean sanitize.Clean, err error) {
	m := n.obs.m.Load()
	if m == nil {
		return
	}
	var b *sanitize.BlockedError
	if errors.As(err, &b) {
		for _, c := range b.Categories {
			m.Findings(string(c), 1)
		}
		return
	}
	for c, byAction := range clean.Report().Counts {
		total := 0
		for _, k := range byAction {
			total += k
		}
		m.Findings(string(c), total)
	}
}

// noteVerdict counts a verdict of the inbound screen.
func (n *Node) noteVerdict(v screen.Verdict) { n.obs.m.Load().Verdict(string(v.Action)) }

// verifyRequest is the verifier's check of an inbound request, timed.
func (n *Node) verifyRequest(r *http.Request, body []byte, peer identity.PublicKey) (wire.Request, error) {
	defer n.timeStage(stageVerify)()
	return n.verifier.VerifyRequest(r, body, peer, n.now())
}

// authorize is the policy decision on a call, timed.
func (n *Node) authorize(st *state, peer identity.PublicKey, capName string, pctx policy.Context) bool {
	defer n.timeStage(stagePolicy)()
	return st.pol.Authorize(peer, policy.ActionCall, capName, pctx).Allowed
}

// runBackend runs a capability's backend, timed.
func (n *Node) runBackend(ctx context.Context, cp *capability, inv backend.Invocation) ([]byte, error) {
	defer n.timeStage(stageBackend)()
	return cp.Backend.Call(ctx, inv)
}

// signRequest signs an outbound request, timed.
func (n *Node) signRequest(req *http.Request, body []byte, p wire.SignParams) (wire.Sent, error) {
	defer n.timeStage(stageSign)()
	return wire.SignRequest(req, body, p)
}

// appendServed makes an inbound call's call.served entry durable, timed.
func (in *inbound) appendServed(ctx context.Context, e audit.Entry) (uint64, audit.Checkpoint, error) {
	defer in.n.timeStage(stageAudit)()
	return in.n.audit.AppendCheckpoint(ctx, e)
}

// MetricsState implements metrics.Source: read at each scrape.
func (n *Node) MetricsState(ctx context.Context) metrics.State {
	now := n.now()
	st := n.state.Load()
	var s metrics.State
	byPeer := map[string]*metrics.Peer{}
	for k, p := range st.peers {
		sd := n.trust.Standing(k.String(), now)
		mp := &metrics.Peer{Name: p.Name, TrustScore: sd.Score, TrustLevel: sd.Level.String(),
			Breaker: n.budget.BreakerState(k.String(), now), Unwitnessed: n.Unwitnessed(k)}
		byPeer[k.String()] = mp
	}
	for _, b := range n.budget.Snapshot(now) {
		mp := byPeer[b.Key.Peer]
		if mp == nil || !b.Live {
			continue
		}
		mp.InFlight += b.InFlight
		mp.BytesIn += b.BytesIn
		mp.BytesOut += b.BytesOut
		mp.Cost += b.Cost
	}
	for _, mp := range byPeer {
		s.Peers = append(s.Peers, *mp)
	}
	ts := n.tr.Stats()
	s.Handshakes = metrics.Handshakes{Accepted: ts.Accepted, Dialed: ts.Dialed, Refused: map[string]uint64{}}
	for r, v := range ts.ByReason {
		s.Handshakes.Refused[strings.ReplaceAll(r.String(), " ", "_")] = v // a closed set: transport's reasons
	}
	if cp, err := n.audit.Checkpoint(ctx); err == nil {
		s.Audit.Entries = cp.Size
	}
	s.Audit.Appended = n.audit.Stats().Entries
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(filepath.Join(n.home, AuditFile+suffix)); err == nil {
			s.Audit.Bytes += uint64(fi.Size())
		}
	}
	cs := n.audit.CommitStats()
	s.Audit.Commits, s.Audit.BatchSum, s.Audit.Batches = cs.Commits, cs.BatchSum, cs.Batches
	s.Audit.CommitSum, s.Audit.CommitTimes = cs.DurationSum, cs.Durations
	return s
}

var _ metrics.Source = (*Node)(nil)
