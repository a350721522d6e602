package callpath

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/treaty-dev/treaty"
)

// oneWay is the user-space delay each way between the two nodes: RTT 50 ms.
const oneWay = 25 * time.Millisecond

// delayProxy forwards 127.0.0.1:0 to target, holding every chunk of bytes
// for oneWay in each direction (in order), as a link between two machines
// would. It returns its address.
func delayProxy(b *testing.B, target string) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				up, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				go delayCopy(up, c)
				delayCopy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// delayCopy copies src to dst, each chunk delivered oneWay after it was read.
func delayCopy(dst, src net.Conn) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{buf[:n], time.Now().Add(oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		if d := time.Until(c.at); d > 0 {
			<-time.After(d) // the link's delay itself
		}
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// delayedPair opens two nodes whose link goes through a delayProxy; caller
// has not yet called callee (no connection).
func delayedPair(b *testing.B) *treaty.Node {
	b.Helper()
	dir := b.TempDir()
	ctx := b.Context()
	var nodes [2]*treaty.Node
	for i, name := range []string{"acme", "globex"} {
		if _, err := treaty.Init(filepath.Join(dir, name), name, "127.0.0.1:0"); err != nil {
			b.Fatal(err)
		}
		n, err := treaty.Open(ctx, filepath.Join(dir, name), treaty.Options{Logger: quiet()})
		must(b, err)
		b.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	acme, globex := nodes[0], nodes[1]
	must(b, acme.AddPeer("globex", delayProxy(b, globex.Addr()), globex.ID()))
	must(b, globex.AddPeer("acme", acme.Addr(), acme.ID()))
	must(b, globex.Expose("echo", "echoes", func(_ context.Context, _ string, in []byte) ([]byte, error) { return in, nil }))
	must(b, globex.Grant("acme", "echo"))
	return acme
}

// BenchmarkDelayedLink measures a call across a link with 25 ms of delay
// each way (RTT 50 ms): cold (first contact: a new connection and TLS
// handshake, the first call of a fresh pair of nodes) and warm (the pooled
// connection), against plain mTLS HTTP/2 through the same kind of link.
// Targets (issue 11): warm p50 <= 1 RTT + 5 ms, cold <= 2 RTT + 10 ms. Run
//
//	go test ./bench/callpath -run '^$' -bench DelayedLink -benchtime 1x
func BenchmarkDelayedLink(b *testing.B) {
	ctx := b.Context()
	const colds, warms = 5, 40
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	for b.Loop() {
		var cold, warm, plainCold, plainWarm []time.Duration
		var acme *treaty.Node
		for range colds {
			acme = delayedPair(b)
			t0 := time.Now()
			if _, err := acme.Call(ctx, "globex", "echo", payload); err != nil {
				b.Fatal(err)
			}
			cold = append(cold, time.Since(t0))
		}
		for range warms {
			t0 := time.Now()
			if _, err := acme.Call(ctx, "globex", "echo", payload); err != nil {
				b.Fatal(err)
			}
			warm = append(warm, time.Since(t0))
		}
		srvAddr, clientCert := plainServer(b)
		addr := delayProxy(b, srvAddr)
		for i := range colds + 1 {
			tr := &http2.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{clientCert}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}}
			hc := &http.Client{Transport: tr}
			n := 1
			if i == colds {
				n = 1 + warms // the last client stays warm
			}
			for j := range n {
				t0 := time.Now()
				resp, err := hc.Post("https://"+addr+"/echo", "application/json", bytes.NewReader(payload))
				must(b, err)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if j == 0 {
					plainCold = append(plainCold, time.Since(t0))
				} else {
					plainWarm = append(plainWarm, time.Since(t0))
				}
			}
			tr.CloseIdleConnections()
		}
		rtt := 2 * oneWay
		b.ReportMetric(ms(rtt), "rtt-ms")
		b.ReportMetric(ms(med(warm)), "warm-p50-ms")
		b.ReportMetric(ms(med(cold)), "cold-p50-ms")
		b.ReportMetric(ms(med(plainWarm)), "plain-warm-p50-ms")
		b.ReportMetric(ms(med(plainCold)), "plain-cold-p50-ms")
		b.ReportMetric(ms(rtt+5*time.Millisecond), "warm-budget-ms")
		b.ReportMetric(ms(2*rtt+10*time.Millisecond), "cold-budget-ms")
		b.ReportMetric(float64(med(warm))/float64(rtt+5*time.Millisecond), "ratio-warm/budget")
		b.ReportMetric(float64(med(cold))/float64(2*rtt+10*time.Millisecond), "ratio-cold/budget")
	}
}

// plainServer is plainMTLS's server alone: its address and a client
// certificate.
func plainServer(b *testing.B) (string, tls.Certificate) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{newCert(b)}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}},
	}
	must(b, http2.ConfigureServer(srv, nil))
	go srv.ServeTLS(ln, "", "")
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), newCert(b)
}
