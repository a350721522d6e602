// Package callpath measures a whole federation call (identity, transport,
// signatures, policy, trust and budgets, sanitizer and screen, audit) against
// baselines taken in the same run: (a) the same payload over a plain mTLS
// HTTP/2 request with no signing or policy, (b) the bare ed25519 and sha-256
// work the protocol must do per call, (c) one fsync and (d) one durable
// SQLite transaction of a 1 KiB row, the store the audit log is built on
// (reported beside the target, not part of it). Two audit commits
// are durable in sequence on a call's critical path (call.served at the
// callee, call.completed at the caller); call.sent rides in call.completed's
// commit (docs/adr/0019). The target (issue 11) is
// p50 <= a + b + 2c + 150 µs. full-cpu-µs/call is the process's CPU per
// full call, both nodes together; with TMPDIR on a tmpfs the audit logs'
// fsyncs cost nothing and what remains is the stack's own work. Run with
//
//	go test ./bench/callpath -run '^$' -bench . -benchtime 5x
package callpath

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	_ "modernc.org/sqlite"

	"github.com/treaty-dev/treaty"
	"github.com/treaty-dev/treaty/internal/identity"
)

var payload = []byte(`{"blob":"` + string(bytes.Repeat([]byte("x"), 1024-11)) + `"}`) // 1 KiB

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// pair opens two real nodes on loopback; caller may call "echo" on callee.
func pair(b *testing.B) (caller *treaty.Node) {
	b.Helper()
	dir := b.TempDir()
	ctx := b.Context()
	var nodes [2]*treaty.Node
	for i, name := range []string{"acme", "globex"} {
		if _, err := treaty.Init(filepath.Join(dir, name), name, "127.0.0.1:0"); err != nil {
			b.Fatal(err)
		}
		// 64 callers plus the witness's own checkpoint requests exceed the
		// default 64 calls in flight per peer.
		f, err := os.OpenFile(filepath.Join(dir, name, "treaty.yaml"), os.O_APPEND|os.O_WRONLY, 0)
		must(b, err)
		_, err = f.WriteString("limits:\n  max_concurrent_per_peer: 256\n" + protocolLine())
		must(b, err)
		must(b, f.Close())
		n, err := treaty.Open(ctx, filepath.Join(dir, name), treaty.Options{Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	acme, globex := nodes[0], nodes[1]
	must(b, acme.AddPeer("globex", globex.Addr(), globex.ID()))
	must(b, globex.AddPeer("acme", acme.Addr(), acme.ID()))
	must(b, globex.Expose("echo", "echoes", func(_ context.Context, _ string, in []byte) ([]byte, error) { return in, nil }))
	must(b, globex.Grant("acme", "echo"))
	for range warmCalls { // warm the connection, and the audit logs' WAL files (see warmCalls)
		if _, err := acme.Call(ctx, "globex", "echo", payload); err != nil {
			b.Fatal(err)
		}
	}
	return acme
}

// protocolLine sets the nodes' federation_protocol from
// BENCH_FEDERATION_PROTOCOL ("treaty/1" measures HTTP/2; unset, the default
// treaty/2), so that runs can alternate the two with one build.
func protocolLine() string {
	if p := os.Getenv("BENCH_FEDERATION_PROTOCOL"); p != "" {
		return "federation_protocol: " + p + "\n"
	}
	return ""
}

// warmCalls are made before anything is measured. A fresh SQLite WAL file
// grows with every commit until its first checkpoint (1,000 pages by
// default; a call's commit writes three 16 KiB pages), and an fsync that
// also makes a file longer costs about twice one that overwrites blocks the
// file already has. A running node lives past that first cycle; so do the
// measurements, and baseline (d) likewise.
const warmCalls = 400

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// plainMTLS is baseline (a): an HTTP/2 echo server with client certificates.
func plainMTLS(b *testing.B) func() error {
	b.Helper()
	cert := func() tls.Certificate { return newCert(b) }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert()}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}},
	}
	must(b, http2.ConfigureServer(srv, nil))
	go srv.ServeTLS(ln, "", "")
	b.Cleanup(func() { srv.Close() })
	tr := &http2.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert()}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}}
	client := &http.Client{Transport: tr}
	url := "https://" + ln.Addr().String() + "/echo"
	return func() error {
		resp, err := client.Post(url, "application/json", bytes.NewReader(payload))
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	}
}

// newCert is a throwaway self-signed ed25519 certificate.
func newCert(b *testing.B) tls.Certificate {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	must(b, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

// bareCrypto is baseline (b): per call the protocol signs and verifies a request
// and a response (2 signs, 2 verifies over ~400-byte signature bases) and digests
// the body on both sides for each direction (4 sha-256 of 1 KiB). It uses the
// node's own ed25519 (internal/identity, ADR 20); stdlib set uses
// crypto/ed25519 instead, reported for comparison only.
func bareCrypto(b *testing.B, stdlib bool) func() error {
	k, err := identity.Generate(rand.Reader)
	must(b, err)
	pub := k.Public()
	sign, verify := k.Sign, pub.Verify
	if stdlib {
		raw := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
		rawPub := raw.Public().(ed25519.PublicKey)
		sign = func(m []byte) []byte { return ed25519.Sign(raw, m) }
		verify = func(m, s []byte) bool { return ed25519.Verify(rawPub, m, s) }
	}
	base := bytes.Repeat([]byte("b"), 400)
	return func() error {
		for range 2 {
			if !verify(base, sign(base)) {
				panic("verify")
			}
		}
		for range 4 {
			sha256.Sum256(payload)
		}
		return nil
	}
}

// fsyncOnce is baseline (c): one small write and fsync on this disk, the unit
// of the audit log's durability (two entries are durable in sequence on the
// critical path: call.served, call.completed).
func fsyncOnce(b *testing.B) func() error {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	must(b, err)
	b.Cleanup(func() { f.Close() })
	buf := make([]byte, 512)
	return func() error {
		if _, err := f.WriteAt(buf, 0); err != nil {
			return err
		}
		return f.Sync()
	}
}

// sqliteCommit is baseline (d): one 1 KiB row inserted in its own
// transaction into a WAL database with synchronous=FULL and the audit log's
// 16 KiB pages: what one durable append costs in the store itself, before
// the log's hashing, indexes and signed checkpoint.
func sqliteCommit(b *testing.B) func() error {
	path := filepath.Join(b.TempDir(), "floor.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=page_size(16384)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	must(b, err)
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	_, err = db.Exec(`CREATE TABLE rows (id INTEGER PRIMARY KEY, body BLOB NOT NULL)`)
	must(b, err)
	ins, err := db.Prepare(`INSERT INTO rows(body) VALUES(?)`)
	must(b, err)
	b.Cleanup(func() { ins.Close() })
	row := bytes.Repeat([]byte("r"), 1024)
	for range 1200 { // past the WAL's first checkpoint, as the nodes' logs (warmCalls)
		_, err := ins.Exec(row)
		must(b, err)
	}
	return func() error {
		_, err := ins.Exec(row)
		return err
	}
}

// p50 runs f n times sequentially and returns the median latency.
func p50(b *testing.B, n int, f func() error) time.Duration {
	b.Helper()
	d := make([]time.Duration, n)
	for i := range d {
		t0 := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		d[i] = time.Since(t0)
	}
	slices.Sort(d)
	return d[n/2]
}

// cpuTime is the CPU this process has used (user and system): both nodes
// of a pair, as the CPU per call of bench/realproc counts both processes.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	must(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCallLatency reports p50 of the full call and of both baselines,
// interleaved in rounds so that machine noise hits all three alike.
func BenchmarkCallLatency(b *testing.B) {
	acme := pair(b)
	ctx := b.Context()
	full := func() error { _, err := acme.Call(ctx, "globex", "echo", payload); return err }
	plain, crypto, sync := plainMTLS(b), bareCrypto(b, false), fsyncOnce(b)
	stdCrypto, store := bareCrypto(b, true), sqliteCommit(b)
	var fs, ps, cs, ss, std, ds []time.Duration
	var fullCPU time.Duration
	b.ResetTimer()
	for b.Loop() {
		c0 := cpuTime(b)
		fs = append(fs, p50(b, 200, full))
		fullCPU += cpuTime(b) - c0
		ps = append(ps, p50(b, 200, plain))
		cs = append(cs, p50(b, 200, crypto))
		ss = append(ss, p50(b, 200, sync))
		std = append(std, p50(b, 200, stdCrypto))
		ds = append(ds, p50(b, 200, store))
	}
	med := func(d []time.Duration) float64 { slices.Sort(d); return float64(d[len(d)/2].Nanoseconds()) / 1000 }
	f, p, c, fsync := med(fs), med(ps), med(cs), med(ss)
	b.ReportMetric(f, "full-p50-µs")
	b.ReportMetric(p, "mtls-p50-µs")
	b.ReportMetric(c, "crypto-p50-µs")
	b.ReportMetric(fsync, "fsync-p50-µs")
	b.ReportMetric(med(std), "crypto-stdlib-p50-µs")
	d := med(ds)
	b.ReportMetric(d, "sqlite-commit-p50-µs")
	b.ReportMetric(p+c+2*d, "floor-a+b+2d-µs")
	target := p + c + 2*fsync + 150
	b.ReportMetric(f-p-c, "overhead-µs")
	b.ReportMetric(f-p-c-2*fsync, "overhead-beyond-2fsync-µs")
	b.ReportMetric(f/(p+c), "ratio-full/(a+b)")
	b.ReportMetric(target, "target-a+b+2c+150-µs")
	b.ReportMetric(f/target, "ratio-full/target")
	b.ReportMetric(float64(fullCPU.Microseconds())/float64(200*len(fs)), "full-cpu-µs/call")
}

// BenchmarkCallThroughput reports calls/s with 64 concurrent callers for the
// full pipeline and for the plain mTLS baseline.
func BenchmarkCallThroughput(b *testing.B) {
	acme := pair(b)
	ctx := b.Context()
	full := func() error { _, err := acme.Call(ctx, "globex", "echo", payload); return err }
	plain := plainMTLS(b)
	const callers, perCaller = 64, 100
	rate := func(f func() error) float64 {
		var wg sync.WaitGroup
		t0 := time.Now()
		for range callers {
			wg.Go(func() {
				for range perCaller {
					if err := f(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return callers * perCaller / time.Since(t0).Seconds()
	}
	var fr, pr []float64
	var fullCPU time.Duration
	b.ResetTimer()
	for b.Loop() {
		c0 := cpuTime(b)
		fr = append(fr, rate(full))
		fullCPU += cpuTime(b) - c0
		pr = append(pr, rate(plain))
	}
	slices.Sort(fr)
	slices.Sort(pr)
	b.ReportMetric(fr[len(fr)/2], "full-calls/s")
	b.ReportMetric(pr[len(pr)/2], "mtls-calls/s")
	b.ReportMetric(fr[len(fr)/2]/pr[len(pr)/2], "ratio-full/mtls")
	b.ReportMetric(float64(fullCPU.Microseconds())/float64(callers*perCaller*len(fr)), "full-cpu-µs/call")
}
