package client

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/localapi"
)

// fake serves h on the socket of a new home and returns a client for it.
func fake(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, localapi.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return New(dir)
}

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestNotRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := New(dir).Status(t.Context()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("no socket: err = %v, want ErrNotRunning", err)
	}
	// A socket file left by a dead node: connection refused.
	ln, err := net.Listen("unix", filepath.Join(dir, localapi.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := New(dir).Peers(t.Context()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stale socket: err = %v, want ErrNotRunning", err)
	}
	err = New(dir).Stream(t.Context(), "p", "c", nil, func(json.RawMessage) error { return nil })
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Stream on stale socket: err = %v, want ErrNotRunning", err)
	}
}

func TestErrorAnswers(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		status int
		body   string
		want   *localapi.Error // nil: an error that is not a refusal
	}{
		"refusal":         {403, `{"error":{"stage":"policy","reason":"not_granted","remote":true}}`, &localapi.Error{Stage: "policy", Reason: "not_granted", Remote: true}},
		"usage":           {400, `{"error":{"stage":"usage","reason":"bad"}}`, &localapi.Error{Stage: "usage", Reason: "bad"}},
		"not json":        {500, `<html>oops</html>`, nil},
		"json, no error":  {502, `{"message":"bad gateway"}`, nil},
		"empty":           {503, ``, nil},
		"200 not json":    {200, `not json`, nil},
		"200 wrong shape": {200, `["a"]`, nil},
		"200 truncated":   {200, `{"id":"did:key:z6Mk`, nil},
		"unknown stage":   {500, `{"error":{"stage":"from-the-future","reason":"x"}}`, &localapi.Error{Stage: "from-the-future", Reason: "x"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := fake(t, answer(tc.status, tc.body)).Status(t.Context())
			if err == nil {
				t.Fatal("no error")
			}
			var r *localapi.Error
			isRefusal := errors.As(err, &r)
			switch {
			case tc.want == nil && isRefusal:
				t.Fatalf("err = %#v, want a plain error", r)
			case tc.want == nil:
				if localapi.ExitCode(err) != localapi.ExitError || !strings.HasPrefix(err.Error(), "client: ") {
					t.Fatalf("err = %v (exit %d)", err, localapi.ExitCode(err))
				}
			case !isRefusal || *r != *tc.want:
				t.Fatalf("err = %#v, want %#v", err, tc.want)
			}
		})
	}
}

func TestStreamParsing(t *testing.T) {
	t.Parallel()
	ndjson := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			io.WriteString(w, body)
		}
	}
	for name, tc := range map[string]struct {
		h      http.HandlerFunc
		events []string
		stage  localapi.Stage // "" with ok false: a plain error
		ok     bool
	}{
		"events then end":     {ndjson("{\"data\":1}\n{\"data\":{\"a\":[2]}}\n{\"end\":true}\n"), []string{"1", `{"a":[2]}`}, "", true},
		"empty stream":        {ndjson("{\"end\":true}\n"), nil, "", true},
		"end without newline": {ndjson(`{"data":"x"}` + "\n" + `{"end":true}`), []string{`"x"`}, "", true},
		"fails midway":        {ndjson("{\"data\":1}\n{\"end\":true,\"error\":{\"stage\":\"backend\",\"reason\":\"ran dry\",\"remote\":true}}\n"), []string{"1"}, "backend", false},
		"refused up front":    {answer(403, `{"error":{"stage":"trust","reason":"quarantined"}}`), nil, "trust", false},
		"cut before end":      {ndjson("{\"data\":1}\n"), []string{"1"}, "", false},
		"malformed line":      {ndjson("{\"data\":1}\n{data\n{\"end\":true}\n"), []string{"1"}, "", false},
		"line without data":   {ndjson("{}\n{\"end\":true}\n"), nil, "", false},
		"lines after end":     {ndjson("{\"end\":true}\n{\"data\":9}\n"), nil, "", true},
		"not json at all":     {answer(200, "hello\n"), nil, "", false},
		"error without end":   {ndjson("{\"error\":{\"stage\":\"screen\",\"reason\":\"x\"}}\n"), nil, "", false},
		// The largest event a peer may send (max_event_bytes at most 16 MiB)
		// is a longer line: wrapped in {"data":...}, and larger still when
		// invalid UTF-8 becomes U+FFFD, 3 bytes for 1.
		"largest event": {ndjson(`{"data":"` + strings.Repeat("x", 16<<20-2) + "\"}\n{\"end\":true}\n"),
			[]string{`"` + strings.Repeat("x", 16<<20-2) + `"`}, "", true},
		"endless line": {ndjson(`{"data":"` + strings.Repeat("x", maxStreamLine+1)), nil, "", false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var got []string
			err := fake(t, tc.h).Stream(t.Context(), "globex", "ticks", nil, func(d json.RawMessage) error {
				got = append(got, string(d))
				return nil
			})
			if !slices.Equal(got, tc.events) {
				t.Errorf("events = %.200q, want %.200q", got, tc.events)
			}
			var r *localapi.Error
			switch {
			case tc.ok && err != nil:
				t.Fatalf("err = %v", err)
			case !tc.ok && err == nil:
				t.Fatal("no error")
			case tc.stage != "" && (!errors.As(err, &r) || r.Stage != tc.stage):
				t.Fatalf("err = %v, want stage %s", err, tc.stage)
			case !tc.ok && tc.stage == "" && errors.As(err, &r):
				t.Fatalf("err = %v, want a plain error", err)
			}
		})
	}
}

// TestRequests checks what the client sends: paths, bodies, the delegation
// token of TREATY_CALL, and trust bounds spelled as the API wants them.
func TestRequests(t *testing.T) {
	t.Setenv("TREATY_CALL", "tok-123")
	var seen []string
	cl := fake(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+string(b))
		switch r.URL.Path {
		case "/v1/call":
			io.WriteString(w, `{"output":{"ok":1},"receipt":{},"elapsed_ms":1.5}`)
		case "/v1/caps":
			io.WriteString(w, `{"capabilities":[{"name":"echo"}]}`)
		case "/v1/stream":
			io.WriteString(w, `{"end":true}`+"\n")
		default:
			io.WriteString(w, `{"ok":true}`)
		}
	})
	ctx := t.Context()
	res, err := cl.Call(ctx, "globex", "echo", json.RawMessage(`{"a":1}`))
	if err != nil || string(res.Output) != `{"ok":1}` || res.ElapsedMS != 1.5 {
		t.Fatalf("Call = %+v, %v", res, err)
	}
	if _, err := cl.Call(ctx, "globex", "echo", nil); err != nil {
		t.Fatal(err)
	}
	caps, err := cl.Caps(ctx, "a b&c")
	if err != nil || string(caps) != `[{"name":"echo"}]` {
		t.Fatalf("Caps = %s, %v", caps, err)
	}
	if err := cl.Stream(ctx, "globex", "ticks", json.RawMessage(`[1]`), func(json.RawMessage) error { return nil }); err != nil {
		t.Fatal(err)
	}
	trusted, none := "trusted", "NONE"
	if err := cl.TrustSet(ctx, "globex", &trusted, &none, true); err != nil {
		t.Fatal(err)
	}
	if err := cl.TrustSet(ctx, "globex", nil, nil, false); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`POST /v1/call {"peer":"globex","capability":"echo","input":{"a":1},"within":"tok-123"}`,
		`POST /v1/call {"peer":"globex","capability":"echo","input":{},"within":"tok-123"}`,
		`GET /v1/caps?peer=a+b%26c `,
		`POST /v1/stream {"peer":"globex","capability":"ticks","input":[1],"within":"tok-123"}`,
		`POST /v1/trust/set {"peer":"globex","floor":"trusted","ceiling":"","lift":true}`,
		`POST /v1/trust/set {"peer":"globex","lift":false}`,
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}

	// Input that is not JSON never leaves the process.
	n := len(seen)
	_, err = cl.Call(ctx, "globex", "echo", json.RawMessage(`{nope`))
	var r *localapi.Error
	if !errors.As(err, &r) || r.Stage != localapi.StageUsage || localapi.ExitCode(err) != localapi.ExitUsage || len(seen) != n {
		t.Fatalf("Call with invalid input = %v (sent %d)", err, len(seen)-n)
	}
	if err := cl.Stream(ctx, "globex", "ticks", json.RawMessage(`{nope`), nil); !errors.As(err, &r) || len(seen) != n {
		t.Fatalf("Stream with invalid input = %v", err)
	}
}
