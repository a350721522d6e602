package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/treaty-dev/treaty/internal/identity"
)

// whoami answers with the caller's did:key as proven by the handshake.
func whoami(w http.ResponseWriter, r *http.Request) {
	k, ok := PeerFromRequest(r)
	if !ok {
		http.Error(w, "no peer", http.StatusInternalServerError)
		return
	}
	_, _ = io.WriteString(w, k.String())
}

// serveHTTP runs n.ServeHTTP until the test ends and returns its result channel.
func serveHTTP(t *testing.T, n *node, h http.Handler) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.ServeHTTP(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return done
}

// resolver maps keys to addresses and counts calls.
type resolver struct {
	mu    sync.Mutex
	addrs map[identity.PublicKey]string
	calls atomic.Int64
}

func (r *resolver) set(k identity.PublicKey, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.addrs == nil {
		r.addrs = map[identity.PublicKey]string{}
	}
	r.addrs[k] = addr
}

func (r *resolver) resolve(_ context.Context, k identity.PublicKey) (string, error) {
	r.calls.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.addrs[k]
	if !ok {
		return "", errors.New("unknown peer")
	}
	return a, nil
}

func get(t *testing.T, rt http.RoundTripper, u string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(resp.Status + ": " + string(b))
	}
	return string(b), nil
}

// pair starts server a (admitting b, serving whoami) and client b with a
// RoundTripper resolving a.
func pair(t *testing.T, srvCfg, cliCfg Config) (srv, cli *node, rt http.RoundTripper, res *resolver) {
	t.Helper()
	a, b := testKey(t, 1), testKey(t, 2)
	srv = newNode(t, a, admit(b.Public()), srvCfg)
	cli = newNode(t, b, admit(), cliCfg)
	serveHTTP(t, srv, http.HandlerFunc(whoami))
	res = &resolver{}
	res.set(a.Public(), srv.addr())
	return srv, cli, cli.RoundTripper(res.resolve), res
}

func TestServeHTTPPeerFromRequest(t *testing.T) {
	t.Parallel()
	srv, cli, rt, _ := pair(t, Config{}, Config{})
	got, err := get(t, rt, PeerURL(srv.Self(), "/whoami"))
	if err != nil {
		t.Fatal(err)
	}
	if got != cli.Self().String() {
		t.Fatalf("server saw caller %q, want %q", got, cli.Self())
	}
	r, _ := http.NewRequest(http.MethodGet, "https://x/", nil)
	if _, ok := PeerFromRequest(r); ok {
		t.Fatal("PeerFromRequest trusted a request that did not come through ServeHTTP")
	}
}

func TestRoundTripperPoolsOneConnectionPerPeer(t *testing.T) {
	t.Parallel()
	srv, cli, rt, res := pair(t, Config{}, Config{})
	u := PeerURL(srv.Self(), "/x")
	for i := range 10 {
		if _, err := get(t, rt, u); err != nil {
			t.Fatalf("sequential call %d: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			if _, err := get(t, rt, u); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent call: %v", err)
	}
	if s := cli.Stats(); s.Dialed != 1 || s.Conns != 1 {
		t.Fatalf("client stats %+v: want exactly 1 handshake and 1 pooled connection", s)
	}
	if s := srv.Stats(); s.Accepted != 1 {
		t.Fatalf("server stats %+v: want exactly 1 handshake", s)
	}
	if n := res.calls.Load(); n != 1 {
		t.Fatalf("resolver called %d times, want 1", n)
	}
}

func TestRoundTripperConcurrentFirstUseDialsOnce(t *testing.T) {
	t.Parallel()
	srv, cli, rt, _ := pair(t, Config{}, Config{})
	u := PeerURL(srv.Self(), "/x")
	start := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 32 {
		wg.Go(func() {
			<-start
			if _, err := get(t, rt, u); err != nil {
				failed.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d calls failed", failed.Load())
	}
	if s := cli.Stats(); s.Dialed != 1 {
		t.Fatalf("cold start: %d handshakes, want 1", s.Dialed)
	}
}

func TestRoundTripperRedialsDeadConnection(t *testing.T) {
	t.Parallel()
	srv, cli, rt, _ := pair(t, Config{}, Config{})
	u := PeerURL(srv.Self(), "/x")
	if _, err := get(t, rt, u); err != nil {
		t.Fatal(err)
	}
	if n := srv.Disconnect(cli.Self()); n != 1 {
		t.Fatalf("Disconnect closed %d", n)
	}
	// The client notices the close asynchronously; a call racing it may fail,
	// so poll until one succeeds.
	waitFor(t, "a call on a new connection", func() bool {
		_, err := get(t, rt, u)
		return err == nil
	})
	if s := cli.Stats(); s.Dialed != 2 {
		t.Fatalf("handshakes %d, want 2 (one redial)", s.Dialed)
	}
}

func TestRoundTripperRefusals(t *testing.T) {
	t.Parallel()
	a, b, c := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	srv := newNode(t, a, admit(c.Public()), Config{}) // b is not admitted
	other := newNode(t, c, admit(b.Public()), Config{})
	cli := newNode(t, b, admit(), Config{})
	serveHTTP(t, srv, http.HandlerFunc(whoami))
	serveHTTP(t, other, http.HandlerFunc(whoami))
	res := &resolver{}
	res.set(a.Public(), srv.addr())
	res.set(b.Public(), other.addr()) // b's address actually serves c's key
	client := &http.Client{Transport: cli.RoundTripper(res.resolve)}

	tests := []struct {
		name   string
		url    string
		reason Reason
	}{
		{"not admitted by the server", PeerURL(a.Public(), "/"), ReasonNotAdmitted},
		{"server key differs from the pinned one", PeerURL(b.Public(), "/"), ReasonWrongKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatal("call succeeded")
			}
			var ue *url.Error
			if !errors.As(err, &ue) {
				t.Fatalf("%T", err)
			}
			if he := handshakeErr(t, err); he.Reason != tc.reason {
				t.Fatalf("reason %v (%v), want %v", he.Reason, he, tc.reason)
			}
		})
	}
	if got := waitRefusal(t, srv.rec, 1); got[0].Reason != ReasonUnknownKey {
		t.Fatalf("server reason %v", got[0].Reason)
	}

	// URLs that PeerURL did not make never reach the network.
	for _, u := range []string{"https://example.com/", "http://" + strings.TrimPrefix(PeerURL(a.Public(), "/"), "https://")} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if _, err := cli.RoundTripper(res.resolve).RoundTrip(req); !errors.Is(err, ErrNotPeerURL) {
			t.Errorf("%s: %v, want ErrNotPeerURL", u, err)
		}
	}
}

func TestPeerURLRoundTrip(t *testing.T) {
	t.Parallel()
	k := testKey(t, 5).Public()
	u, err := url.Parse(PeerURL(k, "v1/call"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "https" || u.Path != "/v1/call" || len(u.Host) > 63 {
		t.Fatalf("PeerURL = %s", u)
	}
	if got, err := peerFromHost(u.Host); err != nil || got != k {
		t.Fatalf("peerFromHost = %v, %v", got, err)
	}
	if got, err := peerFromHost(strings.ToUpper(u.Host) + ":443"); err != nil || got != k {
		t.Fatalf("upper case with port: %v, %v", got, err)
	}
	// The last base32 character carries 4 unused bits; setting one decodes to
	// the same key, and must be refused so that each key has exactly one host.
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	last := strings.IndexByte(alphabet, u.Host[len(u.Host)-1])
	noncanon := u.Host[:len(u.Host)-1] + string(alphabet[last|1])
	for _, bad := range []string{"", "example.com", u.Host + "a", u.Host[1:], strings.Repeat("a", 52), noncanon} {
		if _, err := peerFromHost(bad); err == nil {
			t.Errorf("peerFromHost(%q) accepted", bad)
		}
	}
}

// The round tripper remembers the hosts it decoded, never a refused one, and
// at most maxHosts of them.
func TestRoundTripperRemembersHosts(t *testing.T) {
	t.Parallel()
	rt := &roundTripper{}
	k := testKey(t, 6).Public()
	u, err := url.Parse(PeerURL(k, "v1/call"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got, err := rt.peer(u.Host); err != nil || got != k {
			t.Fatalf("peer(%s) = %v, %v", u.Host, got, err)
		}
	}
	if got, err := rt.peer(strings.ToUpper(u.Host)); err != nil || got != k {
		t.Fatalf("upper case: %v, %v", got, err)
	}
	for range 2 {
		if _, err := rt.peer(u.Host + "a"); !errors.Is(err, ErrNotPeerURL) {
			t.Fatalf("bad host: %v, want ErrNotPeerURL", err)
		}
	}
	if len(rt.hosts) != 2 {
		t.Fatalf("remembered %d hosts, want 2 (the canonical and the upper-case spelling)", len(rt.hosts))
	}
	for i := range maxHosts {
		rt.hosts[fmt.Sprint("filler", i)] = k
	}
	other := testKey(t, 7).Public()
	v, _ := url.Parse(PeerURL(other, "v1/call"))
	if got, err := rt.peer(v.Host); err != nil || got != other {
		t.Fatalf("a host past the bound: %v, %v", got, err)
	}
	if len(rt.hosts) != maxHosts+2 {
		t.Fatalf("the bound let the map grow to %d", len(rt.hosts))
	}
}

func TestCertRotationWithoutRestart(t *testing.T) {
	t.Parallel()
	clk := newClock(t0)
	a, b := testKey(t, 1), testKey(t, 2)
	cfg := Config{Now: clk.Now, CertLifetime: time.Hour}
	srv := newNode(t, a, admit(b.Public()), cfg)
	cli := newNode(t, b, admit(), cfg)
	serveEcho(t, srv, testProto)

	serial := func() string {
		t.Helper()
		c, err := cli.Dial(t.Context(), srv.addr(), a.Public(), testProto)
		if err != nil {
			t.Fatalf("Dial at %v: %v", clk.Now().Sub(t0), err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	clk.Set(t0.Add(30 * time.Minute)) // two thirds left: keep
	if s := serial(); s != first {
		t.Fatal("certificate rotated too early")
	}
	clk.Set(t0.Add(50 * time.Minute)) // less than a third left: rotate
	second := serial()
	if second == first {
		t.Fatal("certificate not rotated with a sixth of its life left")
	}
	clk.Set(t0.Add(3 * time.Hour)) // the first two certificates have expired
	if s := serial(); s == second {
		t.Fatal("certificate not rotated after expiry")
	}
	if srv.Stats().CertRotations != 2 || cli.Stats().CertRotations != 2 {
		t.Fatalf("rotations: server %d client %d, want 2 each", srv.Stats().CertRotations, cli.Stats().CertRotations)
	}
}

func TestHTTPLimitsAreApplied(t *testing.T) {
	t.Parallel()
	srv, cli, rt, _ := pair(t, Config{MaxHeaderBytes: 4096, MaxConcurrentStreams: 7}, Config{})
	// Under the limit: fine.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, PeerURL(srv.Self(), "/"), nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2<<10))
	resp, err := rt.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("small header: %v %v", resp, err)
	}
	resp.Body.Close()
	// Over the limit: the client already knows the server's limit and fails
	// the call with an error, without sending it and without a reset.
	req.Header.Set("X-Big", strings.Repeat("a", 8<<10))
	if resp, err := rt.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatalf("oversized header list: status %d", resp.StatusCode)
	}

	// The server advertises both limits in its SETTINGS.
	c, err := cli.Dial(t.Context(), srv.addr(), srv.Self(), ProtoFederation)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %T", f)
	}
	if v, _ := sf.Value(http2.SettingMaxConcurrentStreams); v != 7 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want 7", v)
	}
	if v, _ := sf.Value(http2.SettingMaxHeaderListSize); v != 4096+320 {
		t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE %d, want %d", v, 4096+320)
	}
}

// transportGoroutines lists goroutines running this package's or http2's code,
// other than the caller's.
func transportGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "TestCloseIsIdempotentAndStopsEverything") ||
			strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "transport.(*") {
			continue
		}
		if strings.Contains(g, "internal/transport.(*") || strings.Contains(g, "x/net/http2.") {
			out = append(out, g)
		}
	}
	return out
}

// TestCloseIsIdempotentAndStopsEverything is not parallel: it counts goroutines.
func TestCloseIsIdempotentAndStopsEverything(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	srv := newNode(t, a, admit(b.Public()), Config{})
	cli := newNode(t, b, admit(), Config{})
	served := make(chan error, 1)
	go func() { served <- srv.ServeHTTP(context.Background(), http.HandlerFunc(whoami)) }()
	raw := srv.Listener(testProto)
	accepted := make(chan error, 1)
	go func() {
		_, err := raw.Accept()
		accepted <- err
	}()
	res := &resolver{}
	res.set(a.Public(), srv.addr())
	rt := cli.RoundTripper(res.resolve)
	if _, err := get(t, rt, PeerURL(a.Public(), "/")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := srv.Close(); err != nil {
			t.Fatalf("server Close: %v", err)
		}
		if err := cli.Close(); err != nil {
			t.Fatalf("client Close: %v", err)
		}
	}
	if err := <-served; err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	if err := <-accepted; !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if s := srv.Stats(); s.Conns != 0 {
		t.Fatalf("server still tracks %d connections", s.Conns)
	}
	if s := cli.Stats(); s.Conns != 0 {
		t.Fatalf("client still tracks %d connections", s.Conns)
	}
	if _, err := cli.Dial(t.Context(), srv.addr(), a.Public(), testProto); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial after Close: %v", err)
	}
	if err := srv.Start(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	if _, err := get(t, rt, PeerURL(a.Public(), "/")); err == nil {
		t.Fatal("RoundTrip after Close succeeded")
	}
	waitFor(t, "transport goroutines to end", func() bool { return len(transportGoroutines()) == 0 })
}
