// Package bench_transport measures internal/transport against plain crypto/tls
// and x/net/http2 on loopback, in the same run, and reports ratios:
//
//	go test ./bench/transport -run '^$' -bench . -benchtime 2s
//
// framing_test.go measures x/net/http2 against a minimal framing carrying the
// same bytes (ADR 29, proposed).
//
// "ratio" is treaty's time per operation divided by the baseline's; both are
// interleaved in one loop so that machine noise hits them alike.
package bench_transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/transport"
)

const proto = "bench/1"

type admitAll struct{}

func (admitAll) Admitted(identity.PublicKey) bool { return true }

func key(b *testing.B, n byte) identity.PrivateKey {
	k, err := identity.FromSeed(bytes.Repeat([]byte{n}, 32))
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func newTransport(b *testing.B, k identity.PrivateKey) *transport.Transport {
	return newTransportV(b, k, false)
}

// newTransportV is newTransport; with v1 it speaks treaty/1 (HTTP/2) only.
func newTransportV(b *testing.B, k identity.PrivateKey, v1 bool) *transport.Transport {
	tr, err := transport.New(transport.Config{
		Identity: k, Peers: admitAll{}, Listen: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler), DisableTreaty2: v1,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := tr.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	return tr
}

// plainCert is an ed25519 self-signed certificate for the stdlib baseline.
func plainCert(b *testing.B, k identity.PrivateKey) tls.Certificate {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, k.Public().Ed25519(), k.Signer())
	if err != nil {
		b.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: ed25519.PrivateKey(nil)}
}

// baseline is plain TLS 1.3 mTLS: client certificates required, no key
// pinning, no admission, no acceptance byte.
type baseline struct {
	addr   string
	client *tls.Config
}

func newBaseline(b *testing.B, alpn string, serve func(*tls.Conn)) *baseline {
	sk, ck := key(b, 1), key(b, 2)
	sc, cc := plainCert(b, sk), plainCert(b, ck)
	sc.PrivateKey, cc.PrivateKey = sk.Signer(), ck.Signer()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{sc},
		ClientAuth: tls.RequireAnyClientCert, NextProtos: []string{alpn}, SessionTicketsDisabled: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				tc := c.(*tls.Conn)
				if tc.Handshake() == nil {
					serve(tc)
				}
				tc.Close()
			})
		}
	})
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return &baseline{addr: ln.Addr().String(), client: &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{cc},
		NextProtos: []string{alpn},
	}}
}

func (p *baseline) dial(b *testing.B) *tls.Conn {
	c, err := tls.Dial("tcp", p.addr, p.client)
	if err != nil {
		b.Fatal(err)
	}
	// Match what Dial waits for: one server flight after the handshake.
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkHandshake: a new connection per op (what pooling avoids).
func BenchmarkHandshake(b *testing.B) {
	srv, cli := newTransport(b, key(b, 1)), newTransport(b, key(b, 2))
	l := srv.Listener(proto)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	base := newBaseline(b, proto, func(c *tls.Conn) { c.Write([]byte{1}); io.Copy(io.Discard, c) })
	addr, want := srv.Addr().String(), srv.Self()

	var tBase, tOurs time.Duration
	b.ResetTimer()
	for b.Loop() {
		s := time.Now()
		base.dial(b).Close()
		tBase += time.Since(s)
		s = time.Now()
		c, err := cli.Dial(b.Context(), addr, want, proto)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
		tOurs += time.Since(s)
	}
	report(b, tOurs, tBase)
}

func report(b *testing.B, ours, base time.Duration) {
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(ours.Microseconds())/n, "treaty-µs/op")
	b.ReportMetric(float64(base.Microseconds())/n, "baseline-µs/op")
	b.ReportMetric(float64(ours)/float64(base), "ratio")
}

// reportV1 adds the same calls over treaty/1 (HTTP/2).
func reportV1(b *testing.B, v1, base time.Duration) {
	b.ReportMetric(float64(v1.Microseconds())/float64(b.N), "treaty1-µs/op")
	b.ReportMetric(float64(v1)/float64(base), "ratio-treaty1")
}

var payload = bytes.Repeat([]byte("x"), 1024)

func echoHandler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Write(body)
}

func post(b *testing.B, rt http.RoundTripper, url string) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
	resp, err := rt.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n != int64(len(payload)) {
		b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
	}
}

// roundTrippers returns treaty's pooled RoundTripper and a plain x/net/http2
// client over plain mTLS, each with its URL, both warmed up.
func roundTrippers(b *testing.B) (ours, ours1 http.RoundTripper, oursURL string, base http.RoundTripper, baseURL string) {
	srv, cli, cli1 := newTransport(b, key(b, 1)), newTransport(b, key(b, 2)), newTransportV(b, key(b, 3), true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.ServeHTTP(ctx, http.HandlerFunc(echoHandler)); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	addr := srv.Addr().String()
	ours = cli.RoundTripper(func(context.Context, identity.PublicKey) (string, error) { return addr, nil })
	ours1 = cli1.RoundTripper(func(context.Context, identity.PublicKey) (string, error) { return addr, nil })
	oursURL = transport.PeerURL(srv.Self(), "/echo")

	h2srv := &http2.Server{}
	bl := newBaseline(b, http2.NextProtoTLS, func(c *tls.Conn) {
		c.Write([]byte{1}) // mirrors treaty's acceptance byte; read by dial
		h2srv.ServeConn(c, &http2.ServeConnOpts{Handler: http.HandlerFunc(echoHandler)})
	})
	base = &http2.Transport{
		DialTLSContext:             func(context.Context, string, string, *tls.Config) (net.Conn, error) { return bl.dial(b), nil },
		DisableCompression:         true,
		StrictMaxConcurrentStreams: true,
	}
	baseURL = "https://baseline/echo"
	post(b, ours, oursURL)
	post(b, ours1, oursURL)
	post(b, base, baseURL)
	return
}

// BenchmarkRoundTrip: one caller, warm pooled connection, 1 KiB each way;
// treaty's RoundTripper over treaty/2 (treaty-µs/op) and treaty/1
// (treaty1-µs/op) against plain x/net/http2 over mTLS.
func BenchmarkRoundTrip(b *testing.B) {
	ours, ours1, oursURL, base, baseURL := roundTrippers(b)
	var tBase, tOurs, tOurs1 time.Duration
	b.ResetTimer()
	for b.Loop() {
		s := time.Now()
		post(b, base, baseURL)
		tBase += time.Since(s)
		s = time.Now()
		post(b, ours, oursURL)
		tOurs += time.Since(s)
		s = time.Now()
		post(b, ours1, oursURL)
		tOurs1 += time.Since(s)
	}
	report(b, tOurs, tBase)
	reportV1(b, tOurs1, tBase)
}

// BenchmarkRoundTrip64: 64 concurrent callers sharing the one connection.
func BenchmarkRoundTrip64(b *testing.B) {
	ours, ours1, oursURL, base, baseURL := roundTrippers(b)
	run := func(rt http.RoundTripper, url string, n int) time.Duration {
		var wg sync.WaitGroup
		s := time.Now()
		for w := range 64 {
			wg.Go(func() {
				for i := w; i < n; i += 64 {
					post(b, rt, url)
				}
			})
		}
		wg.Wait()
		return time.Since(s)
	}
	b.ResetTimer()
	tBase := run(base, baseURL, b.N)
	tOurs := run(ours, oursURL, b.N)
	tOurs1 := run(ours1, oursURL, b.N)
	report(b, tOurs, tBase)
	reportV1(b, tOurs1, tBase)
	b.ReportMetric(float64(b.N)/tOurs.Seconds(), "treaty-calls/s")
	b.ReportMetric(float64(b.N)/tBase.Seconds(), "baseline-calls/s")
}
