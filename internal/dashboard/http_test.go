package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/localapi"
)

// fakeNode answers with fixed peers; peers' nicknames are peer-controlled text.
type fakeNode struct {
	peers []localapi.PeerInfo
	down  bool
}

func (f *fakeNode) Status(context.Context) (localapi.Status, error) {
	if f.down {
		return localapi.Status{}, errors.New("not running")
	}
	return localapi.Status{Name: "self", ID: "did:key:z6MkSelf", Addr: "127.0.0.1:1"}, nil
}

func (f *fakeNode) Peers(context.Context) ([]localapi.PeerInfo, error) { return f.peers, nil }

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef"

func newTestHandler(t *testing.T, strict bool) http.Handler {
	t.Helper()
	d, err := New(Options{Node: &fakeNode{}, Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := d.Handler(testToken, "127.0.0.1:7780", strict)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func do(h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.Host = "127.0.0.1:7780"
	for k, v := range hdr {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// oldCookie is a session cookie as earlier dashboards set it: a browser
// may still hold one, and another local server may have read it.
const oldCookie = "treaty_dashboard=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestGuard(t *testing.T) {
	h := newTestHandler(t, true)
	bearer := "Bearer " + testToken
	cases := []struct {
		name   string
		target string
		hdr    map[string]string
		want   int
	}{
		{"no token snapshot", "/api/snapshot", nil, http.StatusUnauthorized},
		{"no token events", "/events", nil, http.StatusUnauthorized},
		{"no token prove", "/api/prove?index=1", nil, http.StatusUnauthorized},
		{"wrong bearer", "/api/snapshot", map[string]string{"Authorization": "Bearer " + strings.Repeat("0", 48)}, http.StatusUnauthorized},
		{"token as basic", "/api/snapshot", map[string]string{"Authorization": "Basic " + testToken}, http.StatusUnauthorized},
		{"token prefix", "/api/snapshot", map[string]string{"Authorization": bearer[:len(bearer)-1]}, http.StatusUnauthorized},
		{"wrong query token", "/?token=nope", nil, http.StatusUnauthorized},
		{"query token on the api", "/api/snapshot?token=" + testToken, nil, http.StatusUnauthorized},
		{"bearer trailing space", "/api/snapshot", map[string]string{"Authorization": bearer + " "}, http.StatusUnauthorized},
		{"bearer double space", "/api/snapshot", map[string]string{"Authorization": "Bearer  " + testToken}, http.StatusUnauthorized},
		{"bearer longer token", "/api/snapshot", map[string]string{"Authorization": bearer + "0"}, http.StatusUnauthorized},
		{"bearer fullwidth digit", "/api/snapshot", map[string]string{"Authorization": "Bearer \uff10" + testToken[1:]}, http.StatusUnauthorized},
		{"bearer", "/api/snapshot", map[string]string{"Authorization": bearer}, http.StatusOK},
		// A cookie is no credential: browsers send 127.0.0.1's cookies to
		// every port, so any local server the browser visits learns them.
		{"session cookie", "/api/snapshot", map[string]string{"Cookie": oldCookie}, http.StatusUnauthorized},
		{"token as cookie", "/api/snapshot", map[string]string{"Cookie": "treaty_dashboard=" + testToken}, http.StatusUnauthorized},
		{"cookie from another origin", "/api/snapshot", map[string]string{"Cookie": oldCookie, "Origin": "http://127.0.0.1:8080"}, http.StatusForbidden},
		{"bearer from another port", "/api/snapshot", map[string]string{"Authorization": bearer, "Origin": "http://127.0.0.1:8080"}, http.StatusForbidden},
		{"rebinding host", "/api/snapshot", map[string]string{"Authorization": bearer, "Host": "evil.example:7780"}, http.StatusMisdirectedRequest},
		{"rebinding host page", "/", map[string]string{"Host": "evil.example:7780"}, http.StatusMisdirectedRequest},
		{"localhost alias", "/api/snapshot", map[string]string{"Authorization": bearer, "Host": "localhost:7780"}, http.StatusMisdirectedRequest},
		{"other port", "/api/snapshot", map[string]string{"Authorization": bearer, "Host": "127.0.0.1:8080"}, http.StatusMisdirectedRequest},
		{"no host", "/api/snapshot", map[string]string{"Authorization": bearer, "Host": ""}, http.StatusMisdirectedRequest},
		{"cross origin", "/events", map[string]string{"Authorization": bearer, "Origin": "http://evil.example"}, http.StatusForbidden},
		{"null origin", "/api/snapshot", map[string]string{"Authorization": bearer, "Origin": "null"}, http.StatusForbidden},
		{"cross site fetch", "/api/snapshot", map[string]string{"Authorization": bearer, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"cross site page", "/", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same origin", "/api/snapshot", map[string]string{"Authorization": bearer, "Origin": "http://127.0.0.1:7780"}, http.StatusOK},
		// The page, its script and style are the binary's own, the same for
		// everyone: they load without the token, which the page then reads
		// from the URL's fragment (never sent to a server).
		{"page", "/", nil, http.StatusOK},
		{"script", "/app.js", nil, http.StatusOK},
		{"style", "/app.css", nil, http.StatusOK},
		{"post", "/api/snapshot", map[string]string{"Authorization": bearer, "X-Method": http.MethodPost}, http.StatusMethodNotAllowed},
		{"unknown path", "/etc/passwd", map[string]string{"Authorization": bearer}, http.StatusNotFound},
		{"unknown path without token", "/etc/passwd", nil, http.StatusUnauthorized},
		{"bad proof index", "/api/prove?index=-1", map[string]string{"Authorization": bearer}, http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := http.MethodGet
			if m := c.hdr["X-Method"]; m != "" {
				method = m
			}
			w := do(h, method, c.target, c.hdr)
			if w.Code != c.want {
				t.Fatalf("%s: status %d, want %d: %s", c.target, w.Code, c.want, w.Body)
			}
			if got := w.Header().Get("Content-Security-Policy"); !strings.Contains(got, "script-src 'self'") || strings.Contains(got, "unsafe-inline") {
				t.Fatalf("CSP %q", got)
			}
			if c := w.Header().Values("Set-Cookie"); len(c) != 0 {
				t.Fatalf("a cookie was set: %q", c)
			}
		})
	}
}

func TestNonLoopbackSkipsHostCheck(t *testing.T) {
	h := newTestHandler(t, false)
	w := do(h, http.MethodGet, "/api/snapshot", map[string]string{"Authorization": "Bearer " + testToken, "Host": "box.lan:7780"})
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	w = do(h, http.MethodGet, "/api/snapshot", map[string]string{"Host": "box.lan:7780"})
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("without token: status %d", w.Code)
	}
	w = do(h, http.MethodGet, "/api/snapshot", map[string]string{"Authorization": "Bearer " + testToken, "Host": "box.lan:7780", "Origin": "http://other.lan:7780"})
	if w.Code != http.StatusForbidden {
		t.Fatalf("cross origin: status %d", w.Code)
	}
}

// An old ?token= URL moves the token into the fragment, which the page
// keeps in its tab's sessionStorage; no cookie is set.
func TestQueryTokenMovesToFragment(t *testing.T) {
	h := newTestHandler(t, true)
	w := do(h, http.MethodGet, "/?token="+testToken, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/#token="+testToken {
		t.Fatalf("status %d location %q", w.Code, w.Header().Get("Location"))
	}
	if c := w.Header().Values("Set-Cookie"); len(c) != 0 {
		t.Fatalf("a cookie was set: %q", c)
	}
}

func TestPageHasNoInlineScript(t *testing.T) {
	h := newTestHandler(t, true)
	w := do(h, http.MethodGet, "/", nil)
	body := w.Body.String()
	if !strings.Contains(body, `<script src="/app.js" defer></script>`) || strings.Count(body, "<script") != 1 {
		t.Fatalf("page scripts: %s", body)
	}
	if strings.Contains(body, "onclick") || strings.Contains(body, "onload") || strings.Contains(body, "style=") {
		t.Fatal("inline handler or style in page")
	}
	js := do(h, http.MethodGet, "/app.js", nil).Body.String()
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "document.cookie", "localStorage"} {
		if strings.Contains(js, bad) {
			t.Fatalf("app.js uses %s", bad)
		}
	}
}

func TestToken(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	b, err := LoadOrCreateToken(dir)
	if err != nil || a != b || len(a) < minToken {
		t.Fatalf("second load %q %v, first %q", b, err, a)
	}
	os.Chmod(filepath.Join(dir, TokenFile), 0o644)
	if _, err := LoadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("mode 0644 accepted: %v", err)
	}
	os.WriteFile(filepath.Join(dir, TokenFile), []byte("short\n"), 0o600)
	os.Chmod(filepath.Join(dir, TokenFile), 0o600)
	if _, err := LoadOrCreateToken(dir); err == nil {
		t.Fatal("short token accepted")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{Home: "x"}); err == nil || !strings.Contains(err.Error(), "Node") {
		t.Fatalf("no node: %v", err)
	}
	if _, err := New(Options{Node: &fakeNode{}}); err == nil || !strings.Contains(err.Error(), "Home") {
		t.Fatalf("no home: %v", err)
	}
	if _, err := New(Options{Node: &fakeNode{}, Home: "x", Poll: 1}); err == nil || !strings.Contains(err.Error(), "Poll") {
		t.Fatalf("tiny poll: %v", err)
	}
}
