package backend

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

func inv(t *testing.T, input string) Invocation {
	t.Helper()
	k, _ := identity.FromSeed(bytes.Repeat([]byte{7}, 32))
	return Invocation{Peer: k.Public(), Capability: "review", Input: []byte(input)}
}

func script(t *testing.T, body string) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backend.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return []string{p}
}

func TestExecCall(t *testing.T) {
	t.Parallel()
	e := &Exec{Argv: script(t, `read in; printf '{"peer":"%s","cap":"%s","in":%s}' "$TREATY_PEER" "$TREATY_CAPABILITY" "$in"`), Timeout: 5 * time.Second}
	in := inv(t, `{"x":1}`)
	out, err := e.Call(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"peer":"` + in.Peer.String() + `","cap":"review","in":{"x":1}}`
	if string(out) != want {
		t.Fatalf("out = %s, want %s", out, want)
	}
}

func TestExecFailuresHideStderr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, reason string
	}{
		{"exit status", `echo "AKIA secret stack trace" >&2; exit 3`, "exited with status 3"},
		{"invalid json", `echo not-json`, "returned invalid JSON on stdout"},
		{"too large", `head -c 2000 /dev/zero | tr '\0' 'a'`, "output exceeds limit max_output_bytes=1000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := &Exec{Argv: script(t, tc.body), Timeout: 5 * time.Second, MaxOutput: 1000}
			_, err := e.Call(t.Context(), inv(t, `{}`))
			var f *Failure
			if !errors.As(err, &f) || f.Reason != tc.reason {
				t.Fatalf("err = %v, want Failure %q", err, tc.reason)
			}
			if strings.Contains(f.Reason, "secret") {
				t.Fatal("stderr leaked into the reason")
			}
		})
	}
}

// A backend that hangs, and whose child hangs too, is killed at its timeout.
func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	e := &Exec{Argv: script(t, `sleep 300 & echo $! > `+pidFile+`; wait`), Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, err := e.Call(t.Context(), inv(t, `{}`))
	var f *Failure
	if !errors.As(err, &f) || !strings.HasPrefix(f.Reason, "timed out after") {
		t.Fatalf("err = %v, want timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Call returned after %v", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	waitGone(t, pid)
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		// A zombie still answers kill(0); check its state.
		if st, err := os.ReadFile("/proc/" + itoa(pid) + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d still alive", pid)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestExecStreamOrderAndCancel(t *testing.T) {
	t.Parallel()
	e := &Exec{Argv: script(t, `i=0; while true; do i=$((i+1)); echo "{\"n\":$i}"; sleep 0.01; done`), Timeout: time.Minute}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []string
	err := e.Stream(ctx, inv(t, `{}`), func(b []byte) error {
		got = append(got, string(b))
		if len(got) == 5 {
			cancel()
		}
		return nil
	})
	var f *Failure
	if !errors.As(err, &f) || f.Reason != "cancelled" {
		t.Fatalf("err = %v, want cancelled", err)
	}
	for i, g := range got[:5] {
		if want := `{"n":` + itoa(i+1) + `}`; g != want {
			t.Fatalf("event %d = %s, want %s", i, g, want)
		}
	}
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(`{"peer":"` + r.Header.Get("Treaty-Peer") + `"}`))
		case "/fail":
			http.Error(w, "db password hunter2", 500)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	in := inv(t, `{}`)
	out, err := (&HTTP{URL: srv.URL + "/ok", Timeout: 5 * time.Second}).Call(t.Context(), in)
	if err != nil || string(out) != `{"peer":"`+in.Peer.String()+`"}` {
		t.Fatalf("ok: %s, %v", out, err)
	}
	_, err = (&HTTP{URL: srv.URL + "/fail", Timeout: 5 * time.Second}).Call(t.Context(), in)
	var f *Failure
	if !errors.As(err, &f) || f.Reason != "answered HTTP 500" {
		t.Fatalf("fail: %v", err)
	}
	_, err = (&HTTP{URL: srv.URL + "/slow", Timeout: 100 * time.Millisecond}).Call(t.Context(), in)
	if !errors.As(err, &f) || !strings.HasPrefix(f.Reason, "timed out") {
		t.Fatalf("slow: %v", err)
	}
}
