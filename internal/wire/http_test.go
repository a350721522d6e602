package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestOverHTTP2 runs the protocol through a real net/http TLS server with
// HTTP/2, so the client's view of the request (URL.RequestURI, Host) and the
// server's (RequestURI, :authority) are the real ones, including a path
// with escapes and a query.
func TestOverHTTP2(t *testing.T) {
	k := testKeys(t)
	v := newVerifier(t, k.bob.Public())
	lim := DefaultLimits()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			t.Errorf("proto %s, want HTTP/2", r.Proto)
		}
		body, err := ReadBody(r.Body, lim.MaxBodyBytes)
		if err != nil {
			t.Errorf("ReadBody: %v", err)
			return
		}
		// In treaty the peer key comes from the mTLS handshake; here the
		// test plays that role.
		req, err := v.VerifyRequest(r, body, k.alice.Public(), t0)
		if err != nil {
			out := EncodeFailure(FailureOf("wire", err))
			_ = SignResponse(w.Header(), StatusFor(err), out, v.UnverifiedRequest(r, k.alice.Public()), k.bob, t0)
			w.WriteHeader(StatusFor(err))
			_, _ = w.Write(out)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/stream") {
			w.Header().Set("Content-Type", StreamContentType)
			sw := NewStreamWriter(w, w.(http.Flusher).Flush, req, k.bob)
			for i := range 3 {
				if err := sw.Write(json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
					t.Error(err)
				}
			}
			_ = sw.Close(nil)
			return
		}
		out := []byte(`{"echo":` + string(body) + `}`)
		if err := SignResponse(w.Header(), 200, out, req, k.bob, t0); err != nil {
			t.Error(err)
		}
		_, _ = w.Write(out)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()

	call := func(path string, body []byte) (*http.Response, Sent) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		sent, err := SignRequest(req, body, SignParams{Key: k.alice, Audience: k.bob.Public(), Capability: "code.review", Now: t0})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp, sent
	}

	t.Run("call", func(t *testing.T) {
		body := []byte(`{"q":"ü"}`)
		resp, sent := call("/v1/call/code.review/a%2Fb%20c?x=1&y=%C3%BC", body)
		out, err := ReadBody(resp.Body, lim.MaxBodyBytes)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, out)
		}
		rc, err := VerifyResponse(resp, out, sent, k.bob.Public())
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.Verify(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("refusal is signed", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/call/x", strings.NewReader("{}"))
		sent, err := SignRequest(req, []byte("{}"), SignParams{Key: k.alice, Audience: k.mallory.Public(), Capability: "x", Now: t0})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := ReadBody(resp.Body, 0)
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if _, err := VerifyResponse(resp, out, sent, k.bob.Public()); err != nil {
			t.Fatal(err)
		}
		f, err := DecodeFailure(out)
		if err != nil || f.Reason != "bad_audience" {
			t.Fatalf("failure %+v %v", f, err)
		}
	})
	t.Run("stream", func(t *testing.T) {
		resp, sent := call("/v1/stream", []byte(`{}`))
		if resp.Header.Get("Content-Type") != StreamContentType {
			t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
		}
		sr := NewStreamReader(resp.Body, sent, k.bob.Public(), lim)
		n := 0
		for {
			ev, err := sr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
			if ev.End && n != 4 {
				t.Fatalf("End after %d events", n)
			}
		}
		if n != 4 {
			t.Fatalf("%d events", n)
		}
	})
}
