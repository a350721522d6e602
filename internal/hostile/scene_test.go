//go:build linux

package hostile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/wire"
)

// scene is one attack's world: a victim node exposing "echo" (an exec
// backend), a legitimate peer granted it, and an attacker key the victim
// admits and grants "echo" too (the granted-peer attacks use it; strangers do
// not need it).
type scene struct {
	v, l    *testnet.Node
	vKey    identity.PublicKey
	lKey    identity.PrivateKey
	vPID    int
	legit   *client.Client
	mallory identity.PrivateKey
	// baseP99 is the highest no-attack p99 measured so far in this run: on a
	// shared machine it varies severalfold from one second to the next.
	baseP99 time.Duration
	// Refusals are aggregated per interval (10 s for transport log lines, a
	// minute for audit entries), so one attack's summaries can land during
	// the next. Attack costs are therefore also checked cumulatively: since
	// the scene started against the sum of the bounds of the attacks so far.
	logStart int
	budget   bounds
}

// newScene starts the victim and the legitimate peer; prepare, if given, runs
// on the victim's home before it starts.
func newScene(t *testing.T, prepare ...func(v *testnet.Node)) *scene {
	t.Helper()
	v := testnet.Init(t, bin, "victim")
	l := testnet.Init(t, bin, "legit")
	testnet.Federate(t, l, v)
	v.Must(t, "expose", "echo", "--exec", "/bin/cat", "--timeout", "10s")
	v.Must(t, "grant", "legit", "echo")
	mallory, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Must(t, "peer", "add", "--name", "mallory", "--addr", "127.0.0.1:1", mallory.Public().String())
	v.Must(t, "grant", "mallory", "echo")
	for _, p := range prepare {
		p(v)
	}
	v.Start(t)
	l.Start(t)

	s := &scene{v: v, l: l, legit: client.New(l.Home), mallory: mallory}
	if s.vKey, err = identity.ParseDID(v.ID); err != nil {
		t.Fatal(err)
	}
	if s.lKey, err = identity.LoadKeyFile(filepath.Join(l.Home, "identity.key")); err != nil {
		t.Fatal(err)
	}
	s.vPID = pidOf(t, v)
	testnet.Eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := s.legit.Call(ctx, "victim", "echo", json.RawMessage(`{"warm":1}`)); err != nil {
			return err
		}
		return s.freshCall(ctx)
	})
	// A first, longer no-attack measurement seeds the run's baseline.
	s.baseP99 = s.measure(deadlineCtx(t, 2*baselineFor)).p99()
	s.logStart = len(v.Log())
	return s
}

// pidOf finds the node's process by its command line (the harness does not
// export it): the one "run --home HOME" process.
func pidOf(t *testing.T, n *testnet.Node) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if slices.Contains(args, "run") && slices.Contains(args, n.Home) {
			return pid
		}
	}
	t.Fatalf("no process runs %s", n.Home)
	return 0
}

// freshCall makes one call as the legitimate peer over a brand-new mTLS
// connection (a new Transport has an empty pool), so it needs a new handshake.
func (s *scene) freshCall(ctx context.Context) error {
	tr, err := transport.New(transport.Config{Identity: s.lKey, Peers: admitAll{}, Listen: "127.0.0.1:0", Logger: quiet, HandshakeTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer tr.Close()
	hc := &http.Client{Transport: tr.RoundTripper(func(context.Context, identity.PublicKey) (string, error) { return s.v.Addr, nil })}
	status, body, err := signedPost(ctx, hc, s.lKey, s.vKey, "echo", []byte(`{"fresh":1}`))
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("fresh call: status %d: %s", status, body)
	}
	return nil
}

// quiet is the logger of the test's own transports: their refusals are the
// point of the attack, not news.
var quiet = slog.New(slog.DiscardHandler)

type admitAll struct{}

func (admitAll) Admitted(identity.PublicKey) bool { return true }

// signedPost sends a correctly signed call request for capability.
func signedPost(ctx context.Context, hc *http.Client, key identity.PrivateKey, aud identity.PublicKey, capability string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, transport.PeerURL(aud, "/v1/call/"+capability), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if _, err := wire.SignRequest(req, body, wire.SignParams{Key: key, Audience: aud, Capability: capability, Now: time.Now()}); err != nil {
		return 0, nil, err
	}
	return do(hc, req)
}

func do(hc *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// legitRun is what the legitimate peer saw during one measurement.
type legitRun struct {
	calls      []time.Duration // pooled calls through the legitimate node's local API
	callsAt    []time.Duration // when each of calls started, since the measurement did
	callErrs   []error
	fresh      []time.Duration // calls over a new connection each
	freshErrs  []error
	tookWall   time.Duration
	callsTotal int
}

func (r legitRun) p99() time.Duration { return percentile(r.calls, 0.99) }

// windowP99s splits the pooled calls by start time into n windows of equal
// length over span and returns each window's p99. The calls are made one
// after another, so a window in which none started is one a call was held
// through: it gets the calls in flight at its start (0 if there are none).
func (r legitRun) windowP99s(n int, span time.Duration) []time.Duration {
	by := make([][]time.Duration, n)
	for i, d := range r.calls {
		w := min(n-1, max(0, int(int64(r.callsAt[i])*int64(n)/int64(span))))
		by[w] = append(by[w], d)
	}
	for w := range by {
		if len(by[w]) > 0 {
			continue
		}
		start := span * time.Duration(w) / time.Duration(n)
		for i, d := range r.calls {
			if r.callsAt[i] < start && r.callsAt[i]+d > start {
				by[w] = append(by[w], d)
			}
		}
	}
	out := make([]time.Duration, n)
	for w := range by {
		out[w] = percentile(by[w], 0.99)
	}
	return out
}

// slowWindows counts the windows whose p99 is above limit.
func slowWindows(p99s []time.Duration, limit time.Duration) int {
	n := 0
	for _, p := range p99s {
		if p > limit {
			n++
		}
	}
	return n
}

func (r legitRun) String() string {
	return fmt.Sprintf("calls %d ok %d failed (p50 %v p99 %v), fresh handshakes %d ok %d failed (p99 %v)",
		len(r.calls), len(r.callErrs), percentile(r.calls, 0.5).Round(time.Microsecond), r.p99().Round(time.Microsecond),
		len(r.fresh), len(r.freshErrs), percentile(r.fresh, 0.99).Round(time.Microsecond))
}

func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

const (
	// latencyWindows: the attack's pooled calls are judged in this many
	// windows of equal length (see attack).
	latencyWindows = 3

	callGap  = 15 * time.Millisecond  // between pooled calls
	freshGap = 100 * time.Millisecond // between new-handshake calls
	probeMax = 5 * time.Second        // one probe's own deadline
)

// measure runs the legitimate peer's two probes until ctx ends: pooled calls
// one after another, and a call over a new connection every freshGap.
func (s *scene) measure(ctx context.Context) legitRun {
	var (
		mu  sync.Mutex
		run legitRun
		wg  sync.WaitGroup
	)
	start := time.Now()
	probe := func(gap time.Duration, call func(context.Context) error, ok, at *[]time.Duration, bad *[]error) {
		defer wg.Done()
		for i := 0; ctx.Err() == nil && i < 10000; i++ {
			pctx, cancel := context.WithTimeout(context.Background(), probeMax)
			t0 := time.Now()
			err := call(pctx)
			d := time.Since(t0)
			cancel()
			mu.Lock()
			if err != nil {
				*bad = append(*bad, err)
			} else {
				*ok = append(*ok, d)
				if at != nil {
					*at = append(*at, t0.Sub(start))
				}
			}
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(gap):
			}
		}
	}
	wg.Add(2)
	go probe(callGap, func(c context.Context) error {
		_, err := s.legit.Call(c, "victim", "echo", json.RawMessage(`{"legit":1}`))
		return err
	}, &run.calls, &run.callsAt, &run.callErrs)
	go probe(freshGap, s.freshCall, &run.fresh, nil, &run.freshErrs)
	wg.Wait()
	run.tookWall = time.Since(start)
	return run
}

// usage is the victim's resource use over an attack.
type usage struct {
	maxFDs, fds0       int
	rss0, maxRSS       int64 // KiB
	audit0, audit1     int64 // bytes of audit.db + audit.db-wal
	log0, log1         int
	byPeer             map[string]int // audit entries during the attack, by peer ("" = none: refusals before a key is known)
	sinceStart         map[string]int // the same since the scene started
	rows               int            // audit entries in all
	rowsText           string         // byPeer as legit / attacking peer / strangers
	logLines           int
	dur                time.Duration
	cpu0, cpu1         int64 // victim CPU time in clock ticks
	cpuTicksPerSecHint int
}

func (u usage) String() string {
	return fmt.Sprintf("fds %d->max %d, rss %d->max %d KiB, audit entries during the attack: %s, +%d bytes, log +%d lines +%d bytes, cpu %.2fs over %v",
		u.fds0, u.maxFDs, u.rss0, u.maxRSS, u.rowsText, u.audit1-u.audit0, u.logLines, u.log1-u.log0,
		float64(u.cpu1-u.cpu0)/100, u.dur.Round(time.Millisecond))
}

// monitor samples the victim's descriptors and memory until stop is called.
type monitor struct {
	s    *scene
	u    usage
	mu   sync.Mutex
	stop context.CancelFunc
	done chan struct{}
	t0   time.Time
}

func (s *scene) watch(t *testing.T) *monitor {
	t.Helper()
	m := &monitor{s: s, done: make(chan struct{}), t0: time.Now()}
	m.u.fds0, m.u.rss0 = fdCount(s.vPID), rssKiB(s.vPID)
	m.u.maxFDs, m.u.maxRSS = m.u.fds0, m.u.rss0
	m.u.audit0 = auditBytes(s.v.Home)
	m.u.log0 = len(s.v.Log())
	m.u.cpu0 = cpuTicks(s.vPID)
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go func() {
		defer close(m.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			f, r := fdCount(s.vPID), rssKiB(s.vPID)
			m.mu.Lock()
			m.u.maxFDs, m.u.maxRSS = max(m.u.maxFDs, f), max(m.u.maxRSS, r)
			m.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

// end stops sampling and reads the totals. Audit rows are counted after the
// attack with `treaty audit verify`, which also proves the log intact.
func (m *monitor) end(t *testing.T) usage {
	t.Helper()
	m.stop()
	<-m.done
	m.u.dur = time.Since(m.t0)
	m.u.audit1 = auditBytes(m.s.v.Home)
	log := m.s.v.Log()
	m.u.log1 = len(log)
	m.u.logLines = strings.Count(log[m.u.log0:], "\n")
	m.u.cpu1 = cpuTicks(m.s.vPID)
	m.u.byPeer, m.u.sinceStart, m.u.rows = auditByPeer(t, m.s.v, m.t0)
	m.u.rowsText = fmt.Sprintf("legitimate peer %d, attacking peer %d, strangers %d",
		m.u.byPeer[m.s.l.ID], m.u.byPeer[m.s.mallory.Public().String()], m.s.strangerRows(m.u.byPeer))
	return m.u
}

func fdCount(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

func rssKiB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// cpuTicks is utime+stime of pid in clock ticks (USER_HZ, 100 on Linux).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func auditBytes(home string) int64 {
	var n int64
	for _, name := range []string{"audit.db", "audit.db-wal"} {
		if fi, err := os.Stat(filepath.Join(home, name)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// auditRows runs `treaty audit verify`, which must pass, and returns its count.
func auditRows(t *testing.T, n *testnet.Node) int {
	t.Helper()
	out := n.Must(t, "audit", "verify")
	var rows int
	var root string
	if _, err := fmt.Sscanf(out, "ok %d entries root %s", &rows, &root); err != nil {
		t.Fatalf("audit verify said %q: %v", out, err)
	}
	return rows
}

// auditByPeer counts audit entries by peer: those written since since, and
// all of them; and returns the number of entries.
func auditByPeer(t *testing.T, n *testnet.Node, since time.Time) (recent, all map[string]int, rows int) {
	t.Helper()
	var entries []struct {
		Time time.Time
		Peer string
	}
	if err := json.Unmarshal([]byte(n.Must(t, "audit", "ls", "--json")), &entries); err != nil {
		t.Fatalf("audit ls --json: %v", err)
	}
	recent, all = map[string]int{}, map[string]int{}
	for _, e := range entries {
		all[e.Peer]++
		if !e.Time.Before(since) {
			recent[e.Peer]++
		}
	}
	return recent, all, len(entries)
}

// strangerRows counts the entries that name neither the legitimate peer nor
// the attacking one.
func (s *scene) strangerRows(byPeer map[string]int) int {
	n := 0
	for p, c := range byPeer {
		if p != s.l.ID && p != s.mallory.Public().String() {
			n += c
		}
	}
	return n
}

// logMessages counts log lines by their msg attribute, for failure messages.
func logMessages(log string) map[string]int {
	by := map[string]int{}
	for _, line := range strings.Split(log, "\n") {
		if _, rest, ok := strings.Cut(line, "msg="); ok {
			if strings.HasPrefix(rest, `"`) {
				if end := strings.Index(rest[1:], `"`); end >= 0 {
					rest = rest[1 : end+1]
				}
			} else if sp := strings.IndexByte(rest, ' '); sp >= 0 {
				rest = rest[:sp]
			}
			by[rest]++
		} else if line != "" {
			by[line[min(len(line), 20):min(len(line), 80)]]++
		}
	}
	return by
}

// bounds are what one attack may cost the victim beyond the shared bounds.
type bounds struct {
	peerRows   int // audit entries naming the attacking peer
	sourceRows int // audit entries naming no admitted peer: refusals of strangers, by source address
	logLines   int // lines the victim logs
}

// attack runs one attack against a fresh scene: the legitimate peer is
// measured without attack, then during it; the resource bounds and the
// legitimate peer's success are asserted; then the victim must serve again
// without a restart. run must return when its context ends.
func attack(t *testing.T, s *scene, b bounds, run func(ctx context.Context, t *testing.T) string) usage {
	t.Helper()
	t0 := time.Now()
	defer func() { t.Logf("attack phases took %v", time.Since(t0).Round(time.Millisecond)) }()
	base := s.measure(deadlineCtx(t, baselineFor))
	s.baseP99 = max(s.baseP99, base.p99())
	t.Logf("no attack: %v (highest no-attack p99 of the run %v)", base, s.baseP99)
	if len(base.callErrs)+len(base.freshErrs) > 0 {
		t.Fatalf("legitimate calls fail without attack: %v %v\n%s", base.callErrs, base.freshErrs, s.v.Log())
	}

	m := s.watch(t)
	ctx := deadlineCtx(t, attackFor)
	var report string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		report = run(ctx, t)
	}()
	during := s.measure(ctx)
	wg.Wait()
	u := m.end(t)
	t.Logf("attack: %s", report)
	t.Logf("during: %v", during)
	t.Logf("victim: %v", u)

	if n := len(during.callErrs); n > 0 {
		t.Errorf("%d of %d legitimate calls failed during the attack; first: %v", n, n+len(during.calls), during.callErrs[0])
	}
	if n := len(during.freshErrs); n > 0 {
		t.Errorf("%d of %d legitimate new handshakes failed during the attack; first: %v", n, n+len(during.fresh), during.freshErrs[0])
	}
	if len(during.calls) == 0 || len(during.fresh) == 0 {
		t.Errorf("the legitimate peer got nothing through during the attack")
	}
	// The bound holds in most windows of the attack, not only over all of
	// it: a stall of the shared machine (another test binary starting, a
	// collection under -race) slows a few consecutive calls, and with one
	// such burst the p99 of the whole attack is the burst, whatever the
	// victim does. An attack that slows the victim slows every window.
	limit := max(legitP99Factor*s.baseP99, s.baseP99+legitP99Slack)
	wins := during.windowP99s(latencyWindows, attackFor)
	t.Logf("legitimate p99 by window of the attack: %v (bound %v)", wins, limit)
	if slowWindows(wins, limit)*2 > latencyWindows {
		// A loaded machine moves the no-attack p99 too: measure it again right
		// after the attack, so the bound compares like with like.
		after := s.measure(deadlineCtx(t, baselineFor))
		s.baseP99 = max(s.baseP99, after.p99())
		limit = max(legitP99Factor*s.baseP99, s.baseP99+legitP99Slack)
		t.Logf("no attack, after: %v (highest no-attack p99 of the run %v)", after, s.baseP99)
		if n := slowWindows(wins, limit); n*2 > latencyWindows {
			t.Errorf("legitimate p99 above %v in %d of %d windows of the attack (%v; no-attack p99 %v)", limit, n, latencyWindows, wins, s.baseP99)
		}
	}
	if u.maxFDs > maxVictimFDs {
		t.Errorf("victim held %d descriptors, bound %d (RLIMIT_NOFILE %d)", u.maxFDs, maxVictimFDs, victimNoFile)
	}
	if g := (u.maxRSS - u.rss0) >> 10; g > maxVictimRSSGrowthMiB {
		t.Errorf("victim RSS grew %d MiB, bound %d MiB", g, maxVictimRSSGrowthMiB)
	}
	mallory := s.mallory.Public().String()
	s.budget.peerRows += b.peerRows
	s.budget.sourceRows += b.sourceRows
	s.budget.logLines += b.logLines
	if g := u.sinceStart[mallory]; g > s.budget.peerRows {
		t.Errorf("the attacking peer caused %d audit entries so far, bound %d", g, s.budget.peerRows)
	}
	if g := s.strangerRows(u.sinceStart); g > s.budget.sourceRows {
		t.Errorf("strangers (no peer, or a key not in the peer book) caused %d audit entries so far, bound %d", g, s.budget.sourceRows)
	}
	if g := strings.Count(s.v.Log()[s.logStart:], "\n"); g > s.budget.logLines {
		t.Errorf("victim logged %d lines so far, bound %d; by message: %v", g, s.budget.logLines, logMessages(s.v.Log()[s.logStart:]))
	}
	if g := u.audit1 - u.audit0; g > maxAuditGrowth {
		t.Errorf("audit.db grew %d bytes, bound %d", g, maxAuditGrowth)
	}
	if g := len(s.v.Log()) - s.logStart; g > s.budget.logLines*maxLogLineBytes {
		t.Errorf("victim logged %d bytes so far, bound %d", g, s.budget.logLines*maxLogLineBytes)
	}
	t1 := time.Now()
	if u.logLines > b.logLines {
		t.Logf("victim logged %d lines during the attack (bound %d per attack, checked cumulatively); by message: %v", u.logLines, b.logLines, logMessages(s.v.Log()[u.log0:u.log1]))
	}
	s.recovers(t)
	t.Logf("recovered in %v", time.Since(t1).Round(time.Millisecond))
	return u
}

// recovers asserts that the victim, without a restart, serves the legitimate
// peer again (pooled and new connections) within recoverWithin.
func (s *scene) recovers(t *testing.T) {
	t.Helper()
	pid := s.vPID
	deadline := time.Now().Add(recoverWithin)
	var err error
	for time.Now().Before(deadline) {
		if pidOf(t, s.v) != pid {
			t.Fatalf("victim process changed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), probeMax)
		_, err = s.legit.Call(ctx, "victim", "echo", json.RawMessage(`{"after":1}`))
		if err == nil {
			err = s.freshCall(ctx)
		}
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // poll interval of a readiness check
	}
	t.Errorf("victim does not serve the legitimate peer %v after the attack: %v", recoverWithin, err)
}

// The latency verdict: a burst of slow calls in one window of the attack is
// the machine, not the attack; slow calls in most windows fail it.
func TestLatencyWindows(t *testing.T) {
	ms := time.Millisecond
	run := func(slowFrom, slowTo time.Duration) legitRun {
		var r legitRun
		for at := time.Duration(0); at < attackFor; at += 20 * ms {
			d := 20 * ms
			if at >= slowFrom && at < slowTo {
				d = 900 * ms
			}
			r.calls, r.callsAt = append(r.calls, d), append(r.callsAt, at)
		}
		return r
	}
	limit := 200 * ms
	for _, c := range []struct {
		name           string
		slowFrom, till time.Duration
		slow           int
	}{
		{"quiet", 0, 0, 0},
		{"one burst", 1100 * ms, 1500 * ms, 1},
		{"slowed throughout", 0, attackFor, latencyWindows},
		{"slowed for two thirds", attackFor / 3, attackFor, 2},
	} {
		wins := run(c.slowFrom, c.till).windowP99s(latencyWindows, attackFor)
		if got := slowWindows(wins, limit); got != c.slow {
			t.Errorf("%s: %d slow windows (%v), want %d", c.name, got, wins, c.slow)
		}
	}
}
