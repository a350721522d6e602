package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/trust"
	"github.com/treaty-dev/treaty/internal/wire"
)

// These tests attack a real node over real mTLS on loopback, with an
// admitted peer's key (or a stranger's), while a legitimate peer (another
// real node) keeps calling; each measures the legitimate calls before and
// during the attack and bounds what the attack costs the node's audit log.

// lines counts log records by message, across every logger derived from it.
type lines struct {
	mu sync.Mutex
	n  map[string]int
}

type countHandler struct{ l *lines }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	who := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "peer" || a.Key == "source" {
			who = a.Value.Resolve().String()
			return false
		}
		return true
	})
	h.l.mu.Lock()
	h.l.n[r.Message+"|"+who]++
	h.l.mu.Unlock()
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// get returns the records with message msg about who (a did:key or source).
func (l *lines) get(msg, who string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg+"|"+who]
}

// refusalLines counts the refusal log lines about peer.
func (l *lines) refusalLines(peer identity.PublicKey) int {
	return l.get("inbound call refused", peer.String()) + l.get("refusals aggregated", peer.String())
}

type rig struct {
	server, legit *node.Node
	serverLog     *lines
	mallories     int
}

// The rig's server aggregates refusals per rigInterval and keeps a small
// replay window, so that the bounds below are reached within seconds.
const (
	rigInterval   = time.Second
	rigReplayCap  = 4096
	rigReplayPeer = 128
)

func startNode(t *testing.T, name string, logger *slog.Logger, setup func(*node.Node)) *node.Node {
	t.Helper()
	dir := t.TempDir() + "/" + name
	if _, err := home.Init(dir, name, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(node.Options{Home: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); n.Close() })
	return n
}

// newRig starts the server and the legitimate peer (two real nodes; opening
// one takes seconds under -race, so the attacks share them).
func newRig(t *testing.T) *rig {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &rig{serverLog: &lines{n: map[string]int{}}}
	r.server = startNode(t, "server", slog.New(countHandler{r.serverLog}), func(n *node.Node) {
		node.SetRefusalInterval(n, rigInterval)
		node.SetReplayWindow(t, n, rigReplayCap, rigReplayPeer)
	})
	r.legit = startNode(t, "legit", quiet, nil)
	echo := backend.Func(func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })
	if err := r.server.Register(node.Handler{Info: node.CapabilityInfo{Name: "echo"}, Backend: echo}); err != nil {
		t.Fatal(err)
	}
	must(t, home.AddPeer(r.server.Home(), "legit", r.legit.Addr().String(), r.legit.ID().String()))
	must(t, home.AddPeer(r.legit.Home(), "server", r.server.Addr().String(), r.server.ID().String()))
	_, err := home.Grant(r.server.Home(), "legit", "echo")
	must(t, err)
	must(t, r.server.Reload())
	must(t, r.legit.Reload())
	eventually(t, 5*time.Second, func() error { return r.call() })
	return r
}

// newAttacker admits a new key on the server, grants it echo, and waits
// until it is served.
func (r *rig) newAttacker(t *testing.T) *attacker {
	t.Helper()
	key, err := identity.Generate(nil)
	must(t, err)
	r.mallories++
	name := fmt.Sprintf("mallory%d", r.mallories)
	must(t, home.AddPeer(r.server.Home(), name, "127.0.0.1:1", key.Public().String()))
	_, err = home.Grant(r.server.Home(), name, "echo")
	must(t, err)
	must(t, r.server.Reload())
	a := newClient(t, key, r.server)
	eventually(t, 5*time.Second, func() error {
		if st, _ := a.send(a.signed(t)); st != http.StatusOK {
			return fmt.Errorf("attacker's signed call: status %d", st)
		}
		return nil
	})
	return a
}

func (r *rig) call() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.legit.Call(ctx, "server", "echo", []byte(`{"hello":1}`))
	return err
}

// measure makes n legitimate calls and returns their latencies; every call
// must succeed.
func (r *rig) measure(t *testing.T, n int) []time.Duration {
	t.Helper()
	d := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if err := r.call(); err != nil {
			t.Errorf("legitimate call %d failed: %v", i, err)
			return d
		}
		d = append(d, time.Since(start))
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[len(d)/2]
}

// attacker holds a key the server admitted and granted echo, and speaks to
// the server over the real mTLS transport, signing only when it chooses to.
type attacker struct {
	key    identity.PrivateKey
	target identity.PublicKey
	client *http.Client
}

type admitAll struct{}

func (admitAll) Admitted(identity.PublicKey) bool { return true }

func newClient(t *testing.T, key identity.PrivateKey, server *node.Node) *attacker {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := transport.New(transport.Config{Identity: key, Peers: admitAll{}, Listen: "127.0.0.1:0", Logger: quiet})
	must(t, err)
	t.Cleanup(func() { tr.Close() })
	addr := server.Addr().String()
	return &attacker{key: key, target: server.ID(), client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: tr.RoundTripper(func(context.Context, identity.PublicKey) (string, error) { return addr, nil }),
	}}
}

type request struct {
	header http.Header
	body   []byte
}

func (a *attacker) unsigned() request {
	return request{header: http.Header{"Content-Type": {"application/json"}}, body: []byte(`{}`)}
}

func (a *attacker) signed(t testing.TB) request {
	body := []byte(`{"n":1}`)
	req, _ := http.NewRequest(http.MethodPost, transport.PeerURL(a.target, "/v1/call/echo"), bytes.NewReader(body))
	if _, err := wire.SignRequest(req, body, wire.SignParams{Key: a.key, Audience: a.target, Capability: "echo", Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return request{header: req.Header, body: body}
}

// send posts r and returns the status and the response (body read).
func (a *attacker) send(r request) (int, *response) {
	req, _ := http.NewRequest(http.MethodPost, transport.PeerURL(a.target, "/v1/call/echo"), bytes.NewReader(r.body))
	req.Header = r.header.Clone()
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, &response{resp: resp, body: b}
}

type response struct {
	resp *http.Response
	body []byte
}

func (r *response) failure() wire.Failure {
	f, _ := wire.DecodeFailure(r.body)
	return f
}

// flood sends make() from workers goroutines until count requests were sent
// or d passed, and returns how many were sent; check sees every answer.
func (a *attacker) flood(t *testing.T, workers, count int, d time.Duration, make func() request, check func(int, *response) error) int {
	t.Helper()
	var sent atomic.Int64
	var failed atomic.Pointer[error]
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && sent.Add(1) <= int64(count) {
				st, resp := a.send(make())
				if err := check(st, resp); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := failed.Load(); e != nil {
		t.Fatalf("flood: %v", *e)
	}
	return int(min(sent.Load(), int64(count)))
}

// peerEntries returns the audit entries about peer, by kind.
func peerEntries(t *testing.T, n *node.Node, peer identity.PublicKey) (all []audit.Entry, byKind map[string]int) {
	byKind = map[string]int{}
	for _, e := range node.AuditEntries(t, n) {
		if e.Peer == peer.String() {
			all = append(all, e)
			byKind[e.Kind]++
		}
	}
	return all, byKind
}

// aggregatedCount sums the counts of the aggregated call.refused entries
// about peer at stage, and checks each names its first and last occurrence.
func aggregatedCount(t *testing.T, es []audit.Entry, stage string) (total, entries int) {
	t.Helper()
	for _, e := range es {
		if e.Kind != audit.KindCallRefused || e.Stage != stage {
			continue
		}
		var rep struct {
			Aggregated int            `json:"aggregated"`
			First      string         `json:"first"`
			Last       string         `json:"last"`
			Reasons    map[string]int `json:"reasons"`
		}
		if err := json.Unmarshal(e.Report, &rep); err != nil {
			t.Fatalf("report %s: %v", e.Report, err)
		}
		if rep.Aggregated == 0 {
			total++ // an entry of its own
			entries++
			continue
		}
		if rep.First == "" || rep.Last == "" || len(rep.Reasons) == 0 {
			t.Fatalf("aggregated entry without first, last or reasons: %s", e.Report)
		}
		total += rep.Aggregated
		entries++
	}
	return total, entries
}

// signedRefusal checks that a refusal is signed by the server and bound to
// NoRequestSignature (the request carried no usable signature).
func signedRefusal(server identity.PublicKey, caller identity.PublicKey, st int, r *response) error {
	if r == nil {
		return fmt.Errorf("no answer")
	}
	if st < 400 || st == http.StatusInternalServerError {
		return fmt.Errorf("status %d", st)
	}
	sent := wire.Sent{Signature: wire.NoRequestSignature, Caller: caller}
	if _, err := wire.VerifyResponse(r.resp, r.body, sent, server); err != nil {
		return fmt.Errorf("refusal (status %d) not signed by the server: %v", st, err)
	}
	return nil
}

// TestAttacks runs each attack of issue 8 against one server while the
// legitimate peer calls it; each attack uses a fresh admitted key.
func TestAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	r := newRig(t)
	t.Run("unsigned flood is aggregated", r.unsignedFlood)
	t.Run("quarantined peer costs few entries", r.quarantinedFlood)
	t.Run("over-budget peer keeps its nonces", r.overBudget)
	t.Run("replay share is per peer", r.replayShare)
	t.Run("no or two Signature headers get a signed refusal", r.noSignature)
	t.Run("a refusal at verification is bound to the request", r.staleBound)
	t.Run("unsigned requests lower trust", r.unsignedTrust)
	t.Run("stranger handshakes are aggregated", r.strangerHandshakes)
}

// entryBound is the most entries (and log lines) one aggregation key may
// cost over elapsed: one of its own, one summary per interval (windows last
// up to 7/6 of an interval), and the final flush.
func entryBound(elapsed time.Duration) int { return 2 + int(elapsed/rigInterval) }

// unsignedFlood (finding 3): an admitted peer floods unsigned POSTs. Every
// one gets a signed refusal; the audit log and the log gain a bounded number
// of entries about it, and together they account for every refusal with
// its first and last occurrence; the legitimate peer's calls keep succeeding.
func (r *rig) unsignedFlood(t *testing.T) {
	a := r.newAttacker(t)
	before := r.measure(t, 10)
	_, kinds0 := peerEntries(t, r.server, a.key.Public())
	logs0 := r.serverLog.refusalLines(a.key.Public())
	var during []time.Duration
	done := make(chan struct{})
	go func() { defer close(done); during = r.measure(t, 10) }()
	start := time.Now()
	var wireRefused, tooMany atomic.Int64
	sent := a.flood(t, 8, 300, 10*time.Second, a.unsigned, func(st int, resp *response) error {
		switch {
		case st == http.StatusBadRequest || st == http.StatusUnauthorized:
			wireRefused.Add(1)
		case st == http.StatusTooManyRequests && strings.HasPrefix(resp.failure().Reason, "too_many_refused_requests"):
			tooMany.Add(1)
		default:
			return fmt.Errorf("unsigned request answered %d", st)
		}
		return signedRefusal(r.server.ID(), a.key.Public(), st, resp)
	})
	elapsed := time.Since(start)
	<-done
	// The peer's allowance of refused requests: a burst of 100, then one a
	// second (each of which up to 8 requests in flight may share).
	if sent <= 200 {
		t.Fatalf("only %d unsigned requests sent in %v; the allowance was not reached", sent, elapsed)
	}
	if tooMany.Load() == 0 {
		t.Fatalf("%d unsigned requests and none refused for the spent allowance", sent)
	}
	if got, limit := wireRefused.Load(), int64(100+8*(elapsed.Seconds()+1)); got > limit {
		t.Fatalf("%d of %d unsigned requests reached the wire checks in %v; want at most %d", got, sent, elapsed, limit)
	}
	t.Logf("%d unsigned requests in %v; legitimate call median %v before, %v during", sent, elapsed, median(before), median(during))
	if len(during) != 10 {
		t.Fatalf("only %d of 10 legitimate calls succeeded during the flood", len(during))
	}
	node.FlushRefusals(r.server)
	es, kinds := peerEntries(t, r.server, a.key.Public())
	// Two keys: wire, and budget once the allowance ran out.
	if got := kinds[audit.KindCallRefused] - kinds0[audit.KindCallRefused]; got > 2*entryBound(elapsed) {
		t.Fatalf("%d call.refused entries for %d unsigned requests in %v; want at most %d", got, sent, elapsed, 2*entryBound(elapsed))
	}
	if got := r.serverLog.refusalLines(a.key.Public()) - logs0; got > 2*entryBound(elapsed) {
		t.Fatalf("%d refusal log lines for %d unsigned requests in %v; want at most %d", got, sent, elapsed, 2*entryBound(elapsed))
	}
	wireTotal, _ := aggregatedCount(t, es, "wire")
	budgetTotal, _ := aggregatedCount(t, es, "budget")
	if wireTotal+budgetTotal < sent {
		t.Fatalf("audit accounts for %d+%d refusals; sent %d", wireTotal, budgetTotal, sent)
	}
	eventually(t, 5*time.Second, func() error { // the allowance refills
		if st, _ := a.send(a.signed(t)); st != http.StatusOK {
			return fmt.Errorf("status %d", st)
		}
		return nil
	})
}

// quarantinedFlood (finding 3): a peer quarantined for a forged signature
// keeps sending signed requests; it is refused before any work (trust stage)
// and costs one aggregation key's entries.
func (r *rig) quarantinedFlood(t *testing.T) {
	a := r.newAttacker(t)
	forged, other := a.signed(t), a.signed(t)
	forged.header.Set(wire.HeaderSignature, other.header.Get(wire.HeaderSignature))
	if st, resp := a.send(forged); resp == nil || resp.failure().Reason != "bad_signature" {
		t.Fatalf("forged request: %d", st)
	}
	if !r.server.TrustSnapshot(a.key.Public()).Quarantined {
		t.Fatal("a forged signature did not quarantine the peer")
	}
	// Refused before anything else is checked: even an unsigned request is
	// answered with the quarantine, not a wire refusal.
	if st, resp := a.send(a.unsigned()); resp == nil || resp.failure().Reason != "quarantined" {
		t.Fatalf("quarantined peer's unsigned request: %d, want the quarantine refusal first", st)
	}
	node.FlushRefusals(r.server) // the counts below start here
	_, kinds0 := peerEntries(t, r.server, a.key.Public())
	nonces0 := node.ReplayPeerLen(r.server, a.key.Public())
	before := r.measure(t, 5)
	var during []time.Duration
	done := make(chan struct{})
	go func() { defer close(done); during = r.measure(t, 5) }()
	start := time.Now()
	sent := a.flood(t, 8, 3000, 2*time.Second, func() request { return a.signed(t) }, func(st int, resp *response) error {
		if st != http.StatusForbidden || resp.failure().Reason != "quarantined" {
			return fmt.Errorf("quarantined peer answered %d", st)
		}
		return nil
	})
	elapsed := time.Since(start)
	<-done
	t.Logf("%d requests from a quarantined peer in %v; legitimate median %v before, %v during", sent, elapsed, median(before), median(during))
	if len(during) != 5 {
		t.Fatal("legitimate calls failed during the flood")
	}
	// Refused before its signature was checked: not one nonce was recorded.
	if got := node.ReplayPeerLen(r.server, a.key.Public()); got != nonces0 {
		t.Fatalf("the quarantined peer's flood left %d nonces in the window, had %d", got, nonces0)
	}
	node.FlushRefusals(r.server)
	es, kinds := peerEntries(t, r.server, a.key.Public())
	if got := kinds[audit.KindCallRefused] - kinds0[audit.KindCallRefused]; got > entryBound(elapsed) {
		t.Fatalf("%d entries for %d refusals in %v; want at most %d", got, sent, elapsed, entryBound(elapsed))
	}
	if total, _ := aggregatedCount(t, es, "trust"); total != sent+1 { // and the unsigned one
		t.Fatalf("audit accounts for %d refusals, sent %d", total, sent)
	}
}

// overBudget (findings 3 and 4): a peer over its rate budget costs one
// aggregation key's entries, and a request the budget refused does not burn
// its nonce: the same signed request is served once the budget refills, and
// only then is it a replay.
func (r *rig) overBudget(t *testing.T) {
	a := r.newAttacker(t)
	rate, burst := 0.5, 1 // a token every 2 s: the kept request below meets an empty bucket
	if _, err := home.SetLimit(r.server.Home(), a.key.Public().String(), "", budget.In, home.LimitChange{Rate: &rate, Burst: &burst}); err != nil {
		t.Fatal(err)
	}
	must(t, r.server.Reload())
	_, kinds0 := peerEntries(t, r.server, a.key.Public())
	start := time.Now()
	// Fewer than the allowance of refused requests (100), so that the kept
	// request below reaches the budget gate after its signature verified.
	sent := a.flood(t, 4, 40, 2*time.Second, func() request { return a.signed(t) }, func(st int, resp *response) error {
		if st != http.StatusOK && st != http.StatusTooManyRequests {
			return fmt.Errorf("status %d", st)
		}
		return nil
	})
	elapsed := time.Since(start)
	// Refused by the budget (the bucket is empty after the flood)...
	// (polling slowly: each refusal spends the peer's allowance of 100).
	keep := a.signed(t)
	poll(t, 10*time.Second, 300*time.Millisecond, func() error {
		if st, _ := a.send(a.signed(t)); st != http.StatusOK {
			return fmt.Errorf("status %d", st) // wait for a token, then spend it
		}
		return nil
	})
	if st, resp := a.send(keep); st != http.StatusTooManyRequests || !strings.HasPrefix(resp.failure().Reason, "rate") {
		t.Fatalf("kept request: %d %+v, want a rate budget refusal after its signature verified", st, resp.failure())
	}
	// ...then served when the budget refills: its nonce was not burnt.
	poll(t, 10*time.Second, 300*time.Millisecond, func() error {
		st, resp := a.send(keep)
		if resp != nil && resp.failure().Reason == "replayed" {
			t.Fatal("a request refused by the budget burnt its nonce")
		}
		if st != http.StatusOK {
			return fmt.Errorf("status %d", st)
		}
		return nil
	})
	if st, resp := a.send(keep); resp == nil || resp.failure().Reason != "replayed" {
		t.Fatalf("the served request sent again: %d, want a replay refusal", st)
	}
	node.FlushRefusals(r.server)
	es, kinds := peerEntries(t, r.server, a.key.Public())
	// The budget key, and the wire key for the replay.
	if got := kinds[audit.KindCallRefused] - kinds0[audit.KindCallRefused]; got > entryBound(time.Since(start))+2 {
		t.Fatalf("%d call.refused entries for %d requests over budget in %v; want at most %d", got, sent, elapsed, entryBound(time.Since(start))+2)
	}
	if total, _ := aggregatedCount(t, es, "budget"); total < sent/2 {
		t.Fatalf("audit accounts for %d budget refusals of %d requests", total, sent)
	}
	if err := r.call(); err != nil {
		t.Fatalf("legitimate peer refused while another is over budget: %v", err)
	}
}

// replayShare (finding 4): a peer that fills its share of the replay window
// has its own requests refused; the legitimate peer's calls are served.
func (r *rig) replayShare(t *testing.T) {
	a := r.newAttacker(t) // its readiness probe holds one nonce
	full := 0
	for range rigReplayPeer + 8 {
		if _, resp := a.send(a.signed(t)); resp != nil && resp.failure().Reason == "replay_cache_full" {
			full++
		}
	}
	if full != 9 {
		t.Fatalf("%d of %d requests refused as replay_cache_full; want 9", full, rigReplayPeer+8)
	}
	for i := range 5 {
		if err := r.call(); err != nil {
			t.Fatalf("legitimate call %d refused while another peer's share is full: %v", i, err)
		}
	}
}

// noSignature (finding 6): zero or two Signature headers get a signed
// refusal naming the wire stage, not an empty unsigned 500.
func (r *rig) noSignature(t *testing.T) {
	a := r.newAttacker(t)
	s := a.signed(t)
	for name, mod := range map[string]func(h http.Header){
		"none": func(h http.Header) { h.Del(wire.HeaderSignature) },
		"two":  func(h http.Header) { h.Add(wire.HeaderSignature, h.Get(wire.HeaderSignature)) },
	} {
		req := request{header: s.header.Clone(), body: s.body}
		mod(req.header)
		st, resp := a.send(req)
		if err := signedRefusal(r.server.ID(), a.key.Public(), st, resp); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if f := resp.failure(); f.Stage != "wire" || f.Reason == "" {
			t.Fatalf("%s: failure %+v, want the wire stage", name, f)
		}
	}
}

// staleBound: a request whose signature is well formed but fails
// verification (here: signed an hour ago) is refused with an answer bound to
// that signature, so the caller can check that the callee refused exactly
// its request, not some other.
func (r *rig) staleBound(t *testing.T) {
	a := r.newAttacker(t)
	body := []byte(`{"n":1}`)
	req, _ := http.NewRequest(http.MethodPost, transport.PeerURL(a.target, "/v1/call/echo"), bytes.NewReader(body))
	sent, err := wire.SignRequest(req, body, wire.SignParams{Key: a.key, Audience: a.target, Capability: "echo", Now: time.Now().Add(-time.Hour)})
	must(t, err)
	st, resp := a.send(request{header: req.Header, body: body})
	if resp == nil || st < 400 {
		t.Fatalf("stale request: status %d, want a refusal", st)
	}
	if f := resp.failure(); f.Stage != "wire" {
		t.Fatalf("stale request: failure %+v, want the wire stage", f)
	}
	if _, err := wire.VerifyResponse(resp.resp, resp.body, sent, r.server.ID()); err != nil {
		t.Fatalf("refusal of a stale request is not bound to its signature: %v", err)
	}
	other := sent
	other.Signature = wire.NoRequestSignature
	if _, err := wire.VerifyResponse(resp.resp, resp.body, other, r.server.ID()); err == nil {
		t.Fatal("refusal of a signed request verifies as a refusal of no signature")
	}
}

// unsignedTrust (finding 3): unsigned requests count as malformed evidence
// against the peer.
func (r *rig) unsignedTrust(t *testing.T) {
	a := r.newAttacker(t)
	s0 := r.server.TrustSnapshot(a.key.Public())
	for range 3 {
		a.send(a.unsigned())
	}
	s1 := r.server.TrustSnapshot(a.key.Public())
	malformed := 0
	for _, e := range s1.Recent {
		if e.Kind == trust.KindMalformed {
			malformed++
		}
	}
	if malformed != 3 || s1.Bad <= s0.Bad || s1.Score >= s0.Score {
		t.Fatalf("after 3 unsigned requests: %d malformed evidence, bad %v -> %v, score %v -> %v", malformed, s0.Bad, s1.Bad, s0.Score, s1.Score)
	}
}

// strangerHandshakes (finding 3): a key the server never admitted opens
// handshake after handshake; the audit log keeps a bounded number of entries
// that account for every refused handshake.
func (r *rig) strangerHandshakes(t *testing.T) {
	key, err := identity.Generate(nil)
	must(t, err)
	s := newClient(t, key, r.server)
	handshakes := func() (entries, total int) {
		for _, e := range node.AuditEntries(t, r.server) {
			if e.Kind != audit.KindHandshakeRefused {
				continue
			}
			var rep struct {
				Aggregated int    `json:"aggregated"`
				Source     string `json:"source"`
			}
			json.Unmarshal(e.Report, &rep)
			entries++
			if rep.Aggregated == 0 {
				total++
				continue
			}
			if rep.Source != "addr:127.0.0.1" {
				t.Fatalf("aggregated source %q, want the stranger's address", rep.Source)
			}
			total += rep.Aggregated
		}
		return entries, total
	}
	e0, _ := handshakes()
	const tries = 50
	start := time.Now()
	for range tries {
		if st, _ := s.send(s.unsigned()); st != 0 {
			t.Fatalf("a stranger got an HTTP answer: %d", st)
		}
	}
	elapsed := time.Since(start)
	if err := r.call(); err != nil {
		t.Fatalf("legitimate call after the stranger's flood: %v", err)
	}
	node.FlushRefusals(r.server)
	eventually(t, 5*time.Second, func() error { // entries of their own are appended off the handshake path
		entries, total := handshakes()
		if total < tries {
			return fmt.Errorf("audit accounts for %d refused handshakes, want at least %d", total, tries)
		}
		if entries-e0 > entryBound(elapsed) {
			t.Fatalf("%d handshake.refused entries for %d handshakes in %v; want at most %d", entries-e0, tries, elapsed, entryBound(elapsed))
		}
		return nil
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// eventually polls f every 20ms until it returns nil or d passes.
func eventually(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	poll(t, d, 20*time.Millisecond, f)
}

// poll calls f every interval until it returns nil or d passes.
func poll(t testing.TB, d, every time.Duration, f func() error) {
	t.Helper()
	tick := time.NewTicker(every)
	defer tick.Stop()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		<-tick.C
	}
	t.Fatalf("not within %v: %v", d, err)
}
