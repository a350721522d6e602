package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/api"
	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/localapi"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is one real node serving its local API on the unix socket in its home.
type env struct {
	n    *node.Node
	srv  *api.Server
	home string
	cl   *client.Client
}

func start(t *testing.T, name string) *env {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if _, err := home.Init(dir, name, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(node.Options{Home: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := n.Start(ctx); err != nil {
		cancel()
		n.Close()
		t.Fatal(err)
	}
	srv, err := api.Listen(n, quiet)
	if err != nil {
		cancel()
		n.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		n.Close()
	})
	return &env{n: n, srv: srv, home: dir, cl: client.New(dir)}
}

// raw sends one request over the socket, bypassing the client.
func (e *env) raw(t *testing.T, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	sock := filepath.Join(e.home, localapi.SocketName)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://treaty"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// rawError asserts an error answer: its status, its stage, and that the status
// is the one the stage maps to.
func (e *env) rawError(t *testing.T, method, path, body string, status int, stage localapi.Stage) localapi.ErrorBody {
	t.Helper()
	code, hdr, b := e.raw(t, method, path, body)
	var er localapi.ErrorResponse
	if err := json.Unmarshal(b, &er); err != nil || er.Error == nil {
		t.Fatalf("%s %s: body %q is not an ErrorResponse (%v)", method, path, b, err)
	}
	if code != status || er.Error.Stage != stage || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s = %d %s %q, want %d %s", method, path, code, hdr.Get("Content-Type"), b, status, stage)
	}
	return *er.Error
}

func wantRefusal(t *testing.T, err error, stage localapi.Stage, remote bool, exit int) {
	t.Helper()
	var r *localapi.Error
	if !errors.As(err, &r) || r.Stage != stage || r.Remote != remote || localapi.ExitCode(err) != exit {
		t.Fatalf("err = %v, want %s refusal (remote %v, exit %d)", err, stage, remote, exit)
	}
}

// federate makes acme and globex peers and gives globex capabilities, some
// granted to acme.
func federate(t *testing.T, acme, globex *env) {
	t.Helper()
	for _, p := range [][2]*env{{acme, globex}, {globex, acme}} {
		if err := home.AddPeer(p[0].home, p[1].n.Name(), p[1].n.Addr().String(), p[1].n.ID().String()); err != nil {
			t.Fatal(err)
		}
	}
	handlers := []node.Handler{
		{Info: node.CapabilityInfo{Name: "echo", Description: "returns its input"},
			Backend: backend.Func(func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil })},
		{Info: node.CapabilityInfo{Name: "fails"},
			Backend: backend.Func(func(context.Context, backend.Invocation) ([]byte, error) {
				return nil, &backend.Failure{Reason: "out of coffee"}
			})},
		{Info: node.CapabilityInfo{Name: "secret"},
			Backend: backend.Func(func(context.Context, backend.Invocation) ([]byte, error) { return []byte(`{}`), nil })},
		{Info: node.CapabilityInfo{Name: "ticks"},
			Streamer: backend.StreamFunc(func(_ context.Context, _ backend.Invocation, emit func([]byte) error) error {
				for _, tick := range []string{`{"tick":1}`, `{"tick":2}`, `{"tick":3}`} {
					if err := emit([]byte(tick)); err != nil {
						return err
					}
				}
				return nil
			})},
		{Info: node.CapabilityInfo{Name: "halfway"},
			Streamer: backend.StreamFunc(func(_ context.Context, _ backend.Invocation, emit func([]byte) error) error {
				if err := emit([]byte(`{"tick":1}`)); err != nil {
					return err
				}
				return &backend.Failure{Reason: "ran dry"}
			})},
	}
	for _, h := range handlers {
		if err := globex.n.Register(h); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"echo", "fails", "ticks", "halfway"} {
		if _, err := home.Grant(globex.home, "acme", c); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []*env{acme, globex} {
		if err := e.n.Reload(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEndpoints drives every endpoint through the real socket with the
// client, including a federated call between two nodes and every error class.
func TestEndpoints(t *testing.T) {
	t.Parallel()
	acme, globex := start(t, "acme"), start(t, "globex")
	federate(t, acme, globex)
	ctx := t.Context()
	cl := acme.cl

	t.Run("status", func(t *testing.T) {
		s, err := cl.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := localapi.Status{ID: acme.n.ID().String(), Name: "acme", Addr: acme.n.Addr().String()}
		if s != want {
			t.Fatalf("Status = %+v, want %+v", s, want)
		}
	})

	t.Run("peers", func(t *testing.T) {
		peers, err := cl.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(peers) != 1 || peers[0].Name != "globex" || peers[0].ID != globex.n.ID().String() ||
			peers[0].Addr != globex.n.Addr().String() || peers[0].Breaker != "closed" {
			t.Fatalf("Peers = %+v", peers)
		}
		// A node with no peers answers an empty array, not null.
		if code, _, b := globex.raw(t, "GET", "/v1/peers", ""); code != 200 || !bytes.HasPrefix(b, []byte("[")) {
			t.Fatalf("GET /v1/peers = %d %s", code, b)
		}
	})

	t.Run("caps", func(t *testing.T) {
		raw, err := cl.Caps(ctx, "globex")
		if err != nil {
			t.Fatal(err)
		}
		var caps []localapi.CapabilityInfo
		if err := json.Unmarshal(raw, &caps); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range caps {
			names = append(names, c.Name)
			if c.Stream != (c.Name == "ticks" || c.Name == "halfway") {
				t.Errorf("%s: stream = %v", c.Name, c.Stream)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"echo", "fails", "halfway", "ticks"}) {
			t.Fatalf("caps = %v; the ungranted 'secret' must not be listed", names)
		}
		_, err = cl.Caps(ctx, "nobody")
		wantRefusal(t, err, localapi.StageResolve, false, localapi.ExitDenied)
	})

	t.Run("call", func(t *testing.T) {
		res, err := cl.Call(ctx, "globex", "echo", json.RawMessage(`{"x":[1,2]}`))
		if err != nil {
			t.Fatal(err)
		}
		var receipt map[string]any
		if string(res.Output) != `{"x":[1,2]}` || json.Unmarshal(res.Receipt, &receipt) != nil || receipt["signature"] == nil || res.ElapsedMS <= 0 {
			t.Fatalf("Call = output %s receipt %s elapsed %v", res.Output, res.Receipt, res.ElapsedMS)
		}
		// The same by did:key, and with input omitted (it means {}).
		res, err = cl.Call(ctx, globex.n.ID().String(), "echo", nil)
		if err != nil || string(res.Output) != `{}` {
			t.Fatalf("Call by did:key without input = %+v, %v", res, err)
		}
	})

	t.Run("call refusals", func(t *testing.T) {
		_, err := cl.Call(ctx, "globex", "secret", json.RawMessage(`{}`))
		wantRefusal(t, err, localapi.StagePolicy, true, localapi.ExitDenied)
		_, err = cl.Call(ctx, "globex", "fails", json.RawMessage(`{}`))
		wantRefusal(t, err, localapi.StageBackend, true, localapi.ExitRemoteFail)
		_, err = cl.Call(ctx, "nobody", "echo", json.RawMessage(`{}`))
		wantRefusal(t, err, localapi.StageResolve, false, localapi.ExitDenied)

		acme.rawError(t, "POST", "/v1/call", `{"peer":"globex","capability":"secret"}`, 403, localapi.StagePolicy)
		acme.rawError(t, "POST", "/v1/call", `{"peer":"globex","capability":"fails"}`, 424, localapi.StageBackend)
		acme.rawError(t, "POST", "/v1/call", `{"peer":"globex","capability":"echo","inptu":{}}`, 400, localapi.StageUsage)
		acme.rawError(t, "POST", "/v1/call", `{"peer":`, 400, localapi.StageUsage)
		acme.rawError(t, "POST", "/v1/call", `{"peer":"globex","capability":"echo"} {"peer":"globex"}`, 400, localapi.StageUsage)
		acme.rawError(t, "POST", "/v1/call", ``, 400, localapi.StageUsage)
		acme.rawError(t, "POST", "/v1/call", `{"peer":"globex","capability":"echo","input":`+strings.Repeat(" ", localapi.MaxRequestBytes)+`{}}`, 400, localapi.StageUsage)
	})

	t.Run("unreachable", func(t *testing.T) {
		// A peer whose address accepts TCP and hangs up: the handshake fails.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		if err := home.AddPeer(acme.home, "gone", ln.Addr().String(), "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"); err != nil {
			t.Fatal(err)
		}
		if err := acme.n.Reload(); err != nil {
			t.Fatal(err)
		}
		_, err = cl.Call(ctx, "gone", "echo", json.RawMessage(`{}`))
		wantRefusal(t, err, localapi.StageTransport, false, localapi.ExitUnreachable)
		acme.rawError(t, "POST", "/v1/call", `{"peer":"gone","capability":"echo"}`, 502, localapi.StageTransport)
	})

	t.Run("stream", func(t *testing.T) {
		var got []string
		err := cl.Stream(ctx, "globex", "ticks", json.RawMessage(`{}`), func(d json.RawMessage) error {
			got = append(got, string(d))
			return nil
		})
		if err != nil || !slices.Equal(got, []string{`{"tick":1}`, `{"tick":2}`, `{"tick":3}`}) {
			t.Fatalf("Stream = %v, %v", got, err)
		}
		code, hdr, b := acme.raw(t, "POST", "/v1/stream", `{"peer":"globex","capability":"ticks"}`)
		want := "{\"data\":{\"tick\":1}}\n{\"data\":{\"tick\":2}}\n{\"data\":{\"tick\":3}}\n{\"end\":true}\n"
		if code != 200 || hdr.Get("Content-Type") != "application/x-ndjson" || string(b) != want {
			t.Fatalf("raw stream = %d %s %q", code, hdr.Get("Content-Type"), b)
		}
	})

	t.Run("stream refusals", func(t *testing.T) {
		var got []string
		err := cl.Stream(ctx, "globex", "halfway", json.RawMessage(`{}`), func(d json.RawMessage) error {
			got = append(got, string(d))
			return nil
		})
		wantRefusal(t, err, localapi.StageBackend, true, localapi.ExitRemoteFail)
		if len(got) != 1 {
			t.Fatalf("events before the failure = %v", got)
		}
		// Failing midway: 200, then an end line carrying the error.
		code, _, b := acme.raw(t, "POST", "/v1/stream", `{"peer":"globex","capability":"halfway"}`)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var last localapi.StreamLine
		if code != 200 || len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &last) != nil ||
			!last.End || last.Error == nil || last.Error.Stage != localapi.StageBackend || !last.Error.Remote {
			t.Fatalf("raw failing stream = %d %q", code, b)
		}
		// Refused before the first event: an ordinary error answer.
		err = cl.Stream(ctx, "globex", "secret", nil, func(json.RawMessage) error { return nil })
		wantRefusal(t, err, localapi.StagePolicy, true, localapi.ExitDenied)
		acme.rawError(t, "POST", "/v1/stream", `{"peer":"globex","capability":"secret"}`, 403, localapi.StagePolicy)
		acme.rawError(t, "POST", "/v1/stream", `[]`, 400, localapi.StageUsage)
		// The caller's emit error stops the stream and is returned as is.
		stop := errors.New("enough")
		if err := cl.Stream(ctx, "globex", "ticks", nil, func(json.RawMessage) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("Stream with failing emit = %v", err)
		}
	})

	t.Run("trust set", func(t *testing.T) {
		trusted, clear := "trusted", client.ClearBound
		if err := cl.TrustSet(ctx, "globex", &trusted, nil, true); err != nil {
			t.Fatal(err)
		}
		if err := cl.TrustSet(ctx, "globex", &clear, &clear, false); err != nil {
			t.Fatal(err)
		}
		bogus := "godlike"
		wantRefusal(t, cl.TrustSet(ctx, "globex", &bogus, nil, false), localapi.StageUsage, false, localapi.ExitUsage)
		wantRefusal(t, cl.TrustSet(ctx, "nobody", nil, nil, true), localapi.StageResolve, false, localapi.ExitDenied)
		low, high := "untrusted", "high"
		if err := cl.TrustSet(ctx, "globex", nil, &low, false); err != nil {
			t.Fatal(err)
		}
		wantRefusal(t, cl.TrustSet(ctx, "globex", &high, nil, false), localapi.StageUsage, false, localapi.ExitUsage)
		code, _, b := acme.raw(t, "POST", "/v1/trust/set", `{"peer":"globex","lift":true}`)
		if code != 200 || strings.TrimSpace(string(b)) != `{"ok":true}` {
			t.Fatalf("raw trust set = %d %s", code, b)
		}
		acme.rawError(t, "POST", "/v1/trust/set", `{"peer":"globex","floor":3}`, 400, localapi.StageUsage)
	})

	t.Run("routing", func(t *testing.T) {
		acme.rawError(t, "GET", "/v1/nope", "", 404, localapi.StageUsage)
		acme.rawError(t, "DELETE", "/v1/status", "", 405, localapi.StageUsage)
		_, hdr, _ := acme.raw(t, "GET", "/v1/call", "")
		if hdr.Get("Allow") != "POST" {
			t.Fatalf("GET /v1/call: Allow = %q", hdr.Get("Allow"))
		}
		code, _, b := acme.raw(t, "GET", "/v1/openapi.json", "")
		var doc struct {
			OpenAPI string `json:"openapi"`
		}
		if code != 200 || json.Unmarshal(b, &doc) != nil || doc.OpenAPI != "3.1.0" {
			t.Fatalf("GET /v1/openapi.json = %d %.80s", code, b)
		}
	})
}

// TestSocket: the socket is private to the user, one node per home, and gone
// after Close; a client then reports ErrNotRunning.
func TestSocket(t *testing.T) {
	t.Parallel()
	e := start(t, "solo")
	sock := filepath.Join(e.home, localapi.SocketName)
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket: %v, %v", fi.Mode(), err)
	}
	if _, err := api.Listen(e.n, quiet); err == nil || !strings.Contains(err.Error(), "another node") {
		t.Fatalf("second Listen on a live socket = %v", err)
	}
	if _, err := e.cl.Status(t.Context()); err != nil {
		t.Fatalf("the first server stopped answering: %v", err)
	}
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}
	if _, err := client.New(e.home).Status(t.Context()); !errors.Is(err, client.ErrNotRunning) {
		t.Fatalf("Status after Close = %v, want ErrNotRunning", err)
	}
	// A stale socket file left by a dead node is replaced.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	srv, err := api.Listen(e.n, quiet)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	srv.Close()
}

// TestCloseStopsServe: Close without cancelling Serve's context makes Serve
// return and leaves no goroutine of the server behind. Not parallel: it
// counts goroutines.
func TestCloseStopsServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "solo")
	if _, err := home.Init(dir, "solo", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(node.Options{Home: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	srv, err := api.Listen(n, quiet)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }() // a context that never ends
	if _, err := client.New(dir).Status(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Close = %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for g := runtime.NumGoroutine(); g > before; g = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before Listen", g, before)
		}
		<-time.After(10 * time.Millisecond)
	}
}

// TestStatusReportsStaleConfig: a rejected edit of policy.cedar shows in the
// status answer, and a fixed file clears it.
func TestStatusReportsStaleConfig(t *testing.T) {
	e := start(t, "acme")
	ctx := context.Background()
	pol := filepath.Join(e.home, "policy.cedar")
	good, err := os.ReadFile(pol)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pol, []byte("permit (principal, action, resource"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.n.Reload(); err == nil {
		t.Fatal("reload accepted a broken policy.cedar")
	}
	s, err := e.cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.ConfigError, "policy.cedar") {
		t.Fatalf("config_error = %q, want it to name policy.cedar", s.ConfigError)
	}
	if err := os.WriteFile(pol, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.n.Reload(); err != nil {
		t.Fatal(err)
	}
	if s, err = e.cl.Status(ctx); err != nil || s.ConfigError != "" {
		t.Fatalf("after the fix: config_error = %q, err %v", s.ConfigError, err)
	}
}
