// Package realproc measures a federated call between two real `treaty run`
// processes, as an agent makes it (the client package on the caller's local
// socket; an http backend that echoes), against what people run today, in
// the same run: an echo tool of the Model Context Protocol Go SDK (v1.8.0,
// streamable HTTP over TLS with JSON responses, a session per caller) and a
// plain HTTP/2 mTLS echo. Both baselines run in a child process of their own
// (this test binary, re-executed), so that each side's server CPU is read from
// /proc like the nodes'. Run with
//
//	go test ./bench/realproc -run '^$' -bench . -benchtime 1x
//
// For 1, 8 and 64 concurrent callers it reports calls/s, p50 latency and
// server CPU per call: both nodes together for treaty, the server process
// for the baselines. It also reports the two nodes' CPU per second at idle
// (idle-nodes-cpu-ms/s), which the per-call figures include. Treaty runs twice: the http backend ("echo") and an exec
// backend in worker mode ("echow", this binary as two workers); backends'
// own CPU is not counted, as for the baselines' handlers. Targets (issue 11), with the http backend: at 64
// callers treaty >= 1.0x MCP's calls/s and <= 400 µs of node CPU per call;
// at 1 caller p50 <= 2.5x MCP's.
package realproc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/net/http2"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/testnet"
)

// payload is the call input: 100 bytes of JSON.
var payload = json.RawMessage(`{"q":"` + strings.Repeat("x", 100-8) + `"}`)

// serveEnv names the baseline server a re-executed test binary runs.
const serveEnv = "REALPROC_SERVE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(serveEnv); mode != "" {
		if err := serve(mode); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serve runs a baseline echo server on 127.0.0.1:0, prints its address and
// serves until stdin closes (the parent's end).
func serve(mode string) error {
	if mode == "worker" {
		return worker()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var h http.Handler
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{selfSigned()}, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2", "http/1.1"}}
	switch mode {
	case "mcp":
		srv := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
		mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "echoes"}, func(_ context.Context, _ *mcp.CallToolRequest, in map[string]any) (*mcp.CallToolResult, map[string]any, error) {
			return nil, in, nil
		})
		h = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{JSONResponse: true})
	case "h2":
		tlsCfg.ClientAuth = tls.RequireAnyClientCert
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		})
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	hs := &http.Server{Handler: h, TLSConfig: tlsCfg}
	if err := http2.ConfigureServer(hs, nil); err != nil {
		return err
	}
	go hs.ServeTLS(ln, "", "")
	fmt.Println(ln.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	return hs.Close()
}

// worker is an exec backend in worker mode (docs/backends.md) that echoes:
// one JSON line in, one out, until stdin closes.
func worker() error {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 8<<20)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		var req struct {
			ID    json.RawMessage `json:"id"`
			Input json.RawMessage `json:"input"`
		}
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			return err
		}
		b, _ := json.Marshal(map[string]json.RawMessage{"id": req.ID, "output": req.Input})
		out.Write(append(b, '\n'))
		if err := out.Flush(); err != nil {
			return err
		}
	}
	return in.Err()
}

func selfSigned() tls.Certificate {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

// child is a baseline server process.
type child struct {
	cmd  *exec.Cmd
	addr string
}

func startChild(b *testing.B, mode string) *child {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), serveEnv+"="+mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("%s server: %v", mode, err)
	}
	return &child{cmd: cmd, addr: strings.TrimSpace(line)}
}

// cpuOf is the user+system CPU time process pid has used, from
// /proc/PID/stat (clock ticks of 10 ms: USER_HZ is 100 on Linux).
func cpuOf(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	i := bytes.LastIndexByte(raw, ')')
	f := strings.Fields(string(raw[i+2:]))
	// After "pid (comm) ", field 3 (state) is f[0]; utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, raw)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// result is one setup at one concurrency.
type result struct {
	rate   float64       // calls/s
	p50    time.Duration // per call
	cpu    time.Duration // server CPU per call
	calls  int
	failed int
}

// run makes calls from callers goroutines, each with its own session from
// newCaller, perCaller calls each (bounded by 2 minutes), and reads the
// server processes' CPU before and after.
func run(b *testing.B, callers, perCaller int, pids []int, newCaller func() (func(context.Context) error, func())) result {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
	defer cancel()
	calls := make([]func(context.Context) error, callers)
	for i := range calls {
		call, closeFn := newCaller()
		defer closeFn()
		if err := call(ctx); err != nil { // warm: session, connection
			b.Fatalf("warm-up call: %v", err)
		}
		calls[i] = call
	}
	var mu sync.Mutex
	var lat []time.Duration
	failed := 0
	var cpu0 time.Duration
	for _, p := range pids {
		cpu0 += cpuOf(b, p)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, call := range calls {
		wg.Go(func() {
			mine := make([]time.Duration, 0, perCaller)
			bad := 0
			for range perCaller {
				if ctx.Err() != nil {
					break
				}
				t0 := time.Now()
				if err := call(ctx); err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			failed += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start)
	var cpu1 time.Duration
	for _, p := range pids {
		cpu1 += cpuOf(b, p)
	}
	if len(lat) == 0 {
		b.Fatalf("no call succeeded (%d failed)", failed)
	}
	slices.Sort(lat)
	return result{rate: float64(len(lat)) / el.Seconds(), p50: lat[len(lat)/2], cpu: (cpu1 - cpu0) / time.Duration(len(lat)), calls: len(lat), failed: failed}
}

// treatyPair builds the binary (without -race; REALPROC_BIN names another)
// and starts acme and globex, globex serving "echo" through an http backend
// in this process and "echow" through an exec worker.
func treatyPair(b *testing.B) (acme, globex *testnet.Node) {
	b.Helper()
	bin := os.Getenv("REALPROC_BIN") // a treaty binary to measure instead (an older build, to compare)
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "treaty")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/treaty-dev/treaty/cmd/treaty").CombinedOutput(); err != nil {
			b.Fatalf("build: %v\n%s", err, out)
		}
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.Copy(w, r.Body)
	}))
	b.Cleanup(backend.Close)
	acme, globex = testnet.Init(b, bin, "acme"), testnet.Init(b, bin, "globex")
	for _, n := range []*testnet.Node{acme, globex} {
		// 64 callers plus the witness's own requests exceed the default 64
		// calls in flight per peer.
		f, err := os.OpenFile(filepath.Join(n.Home, "treaty.yaml"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		extra := "limits:\n  max_concurrent_per_peer: 256\n"
		// BENCH_FEDERATION_PROTOCOL=treaty/1 measures HTTP/2 (unset: the
		// default, treaty/2), so runs can alternate the two.
		if p := os.Getenv("BENCH_FEDERATION_PROTOCOL"); p != "" {
			extra += "federation_protocol: " + p + "\n"
		}
		if os.Getenv("REALPROC_PPROF") != "" {
			extra += "debug:\n  pprof: true\n"
		}
		if _, err := f.WriteString(extra); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	testnet.Federate(b, acme, globex)
	globex.Must(b, "expose", "echo", "--http", backend.URL)
	globex.Must(b, "grant", "acme", "echo")
	// "echow": an exec backend in worker mode, this test binary.
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(globex.Home)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Capabilities = append(cfg.Capabilities, config.Capability{Name: "echow", Exec: &config.ExecBackend{
		Command: exe, Env: []string{serveEnv + "=worker"}, Mode: config.ExecModeWorker, Workers: 2}})
	if err := config.Save(globex.Home, cfg); err != nil {
		b.Fatal(err)
	}
	globex.Must(b, "grant", "acme", "echow")
	acme.Start(b)
	globex.Start(b)
	warmAudit(b, acme)
	return acme, globex
}

// warmCalls sequential calls are made before anything is measured: a fresh
// audit log's SQLite WAL file grows with every commit until its first
// checkpoint (1,000 pages; a call's commit writes three), and an fsync that
// makes a file longer costs about twice one that overwrites. A running
// node is past that; so is the measurement (bench/callpath does the same).
const warmCalls = 400

func warmAudit(b *testing.B, acme *testnet.Node) {
	b.Helper()
	cl := client.New(acme.Home)
	for range warmCalls {
		if _, err := cl.Call(b.Context(), "globex", "echo", payload); err != nil {
			b.Fatalf("warm-up call: %v", err)
		}
	}
}

func BenchmarkRealProcess(b *testing.B) {
	acme, globex := treatyPair(b)
	mcpSrv, h2Srv := startChild(b, "mcp"), startChild(b, "h2")
	insecure := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13} // loopback bench against a throwaway cert
	clientCert := selfSigned()

	treatyCallerOf := func(capName string) func() (func(context.Context) error, func()) {
		return func() (func(context.Context) error, func()) {
			cl := client.New(acme.Home)
			return func(ctx context.Context) error {
				_, err := cl.Call(ctx, "globex", capName, payload)
				return err
			}, func() {}
		}
	}
	treatyCaller, workerCaller := treatyCallerOf("echo"), treatyCallerOf("echow")
	var in map[string]any
	if err := json.Unmarshal(payload, &in); err != nil {
		b.Fatal(err)
	}
	mcpCaller := func() (func(context.Context) error, func()) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: insecure, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4}}
		c := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
		cs, err := c.Connect(b.Context(), &mcp.StreamableClientTransport{Endpoint: "https://" + mcpSrv.addr, HTTPClient: hc}, nil)
		if err != nil {
			b.Fatalf("mcp connect: %v", err)
		}
		return func(ctx context.Context) error {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: in})
			if err == nil && res.IsError {
				err = fmt.Errorf("tool error")
			}
			return err
		}, func() { cs.Close() }
	}
	h2Caller := func() (func(context.Context) error, func()) {
		cfg := insecure.Clone()
		cfg.Certificates = []tls.Certificate{clientCert}
		hc := &http.Client{Transport: &http2.Transport{TLSClientConfig: cfg}}
		url := "https://" + h2Srv.addr + "/echo"
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return err
		}, func() { hc.CloseIdleConnections() }
	}

	// The nodes' CPU while nothing calls: per-call CPU below is the nodes'
	// total over a run divided by its calls, so background work (witness,
	// gossip, timers) would be charged to the calls, most at one caller.
	idle := idleCPU(b, 3*time.Second, treatyCaller, acme.PID(), globex.PID())

	for b.Loop() {
		b.ReportMetric(float64(idle.Microseconds())/1e3, "idle-nodes-cpu-ms/s") // here: b.Loop's start deletes metrics
		for _, c := range []struct{ callers, per int }{{1, 300}, {8, 250}, {64, 60}} {
			stopProfiles := profileNodes(b, c.callers, acme, globex)
			tr := run(b, c.callers, c.per, []int{acme.PID(), globex.PID()}, treatyCaller)
			stopProfiles()
			wk := run(b, c.callers, c.per, []int{acme.PID(), globex.PID()}, workerCaller)
			mc := run(b, c.callers, c.per, []int{mcpSrv.cmd.Process.Pid}, mcpCaller)
			h2 := run(b, c.callers, c.per, []int{h2Srv.cmd.Process.Pid}, h2Caller)
			us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
			p := fmt.Sprintf("c%d-", c.callers)
			b.ReportMetric(tr.rate, p+"treaty-calls/s")
			b.ReportMetric(wk.rate, p+"treaty-worker-calls/s")
			b.ReportMetric(us(wk.p50), p+"treaty-worker-p50-µs")
			b.ReportMetric(us(wk.cpu), p+"treaty-worker-nodes-cpu-µs/call")
			b.ReportMetric(mc.rate, p+"mcp-calls/s")
			b.ReportMetric(h2.rate, p+"h2-calls/s")
			b.ReportMetric(tr.rate/mc.rate, p+"ratio-treaty/mcp-calls/s")
			b.ReportMetric(us(tr.p50), p+"treaty-p50-µs")
			b.ReportMetric(us(mc.p50), p+"mcp-p50-µs")
			b.ReportMetric(us(h2.p50), p+"h2-p50-µs")
			b.ReportMetric(float64(tr.p50)/float64(mc.p50), p+"ratio-treaty/mcp-p50")
			b.ReportMetric(us(tr.cpu), p+"treaty-nodes-cpu-µs/call")
			b.ReportMetric(us(mc.cpu), p+"mcp-server-cpu-µs/call")
			b.ReportMetric(us(h2.cpu), p+"h2-server-cpu-µs/call")
			if tr.failed+wk.failed+mc.failed+h2.failed > 0 {
				b.Logf("%d callers: failed calls: treaty %d, treaty worker %d, mcp %d, h2 %d", c.callers, tr.failed, wk.failed, mc.failed, h2.failed)
			}
		}
	}
}

// idleCPU is the CPU per second processes pids use over d while nothing
// calls them, after one call through newCaller has warmed them up.
func idleCPU(b *testing.B, d time.Duration, newCaller func() (func(context.Context) error, func()), pids ...int) time.Duration {
	b.Helper()
	call, closeFn := newCaller()
	err := call(b.Context())
	closeFn()
	if err != nil {
		b.Fatalf("warm-up call: %v", err)
	}
	var cpu0, cpu1 time.Duration
	for _, p := range pids {
		cpu0 += cpuOf(b, p)
	}
	start := time.Now()
	select {
	case <-b.Context().Done():
		b.Fatal(b.Context().Err())
	case <-time.After(d):
	}
	el := time.Since(start)
	for _, p := range pids {
		cpu1 += cpuOf(b, p)
	}
	return time.Duration(float64(cpu1-cpu0) / el.Seconds())
}

// profileNodes, with REALPROC_PPROF=DIR, takes a 3-second CPU profile of each
// node (debug.pprof on its local socket) while callers call, into
// DIR/NAME-cCALLERS.pprof; with REALPROC_PPROF_KIND=trace a 1-second execution
// trace (NAME-cCALLERS.trace), with =allocs the allocations of 3 seconds
// (NAME-cCALLERS.allocs). The returned function waits for them.
func profileNodes(b *testing.B, callers int, nodes ...*testnet.Node) func() {
	dir := os.Getenv("REALPROC_PPROF")
	if dir == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			sock := filepath.Join(n.Home, "treaty.sock")
			hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}}}
			what, ext := "profile?seconds=3", "pprof"
			switch os.Getenv("REALPROC_PPROF_KIND") {
			case "trace":
				what, ext = "trace?seconds=1", "trace"
			case "allocs":
				what, ext = "allocs?seconds=3", "allocs"
			}
			resp, err := hc.Get("http://node/debug/pprof/" + what)
			if err != nil {
				b.Logf("profile %s: %v", n.Name, err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-c%d.%s", n.Name, callers, ext)))
			if err != nil {
				b.Logf("profile %s: %v", n.Name, err)
				return
			}
			defer f.Close()
			io.Copy(f, resp.Body)
		})
	}
	return wg.Wait
}
