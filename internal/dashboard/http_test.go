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

// login opens the printed URL and returns the cookie it sets.
func login(t *testing.T, h http.Handler) string {
	t.Helper()
	c := do(h, http.MethodGet, "/?token="+testToken, nil).Result().Cookies()
	if len(c) != 1 {
		t.Fatalf("login set %d cookies", len(c))
	}
	return CookieName + "=" + c[0].Value
}

func TestGuard(t *testing.T) {
	h := newTestHandler(t, true)
	bearer := "Bearer " + testToken
	cookie := login(t, h)
	cases := []struct {
		name   string
		target string
		hdr    map[string]string
		want   int
	}{
		{"no token", "/", nil, http.StatusUnauthorized},
		{"no token snapshot", "/api/snapshot", nil, http.StatusUnauthorized},
		{"no token events", "/events", nil, http.StatusUnauthorized},
		{"wrong bearer", "/api/snapshot", map[string]string{"Authorization": "Bearer " + strings.Repeat("0", 48)}, http.StatusUnauthorized},
		{"token as basic", "/api/snapshot", map[string]string{"Authorization": "Basic " + testToken}, http.StatusUnauthorized},
		{"token prefix", "/api/snapshot", map[string]string{"Authorization": bearer[:len(bearer)-1]}, http.StatusUnauthorized},
		{"wrong cookie", "/api/snapshot", map[string]string{"Cookie": CookieName + "=nope"}, http.StatusUnauthorized},
		{"wrong query token", "/?token=nope", nil, http.StatusUnauthorized},
		{"bearer trailing space", "/api/snapshot", map[string]string{"Authorization": bearer + " "}, http.StatusUnauthorized},
		{"bearer double space", "/api/snapshot", map[string]string{"Authorization": "Bearer  " + testToken}, http.StatusUnauthorized},
		{"bearer longer token", "/api/snapshot", map[string]string{"Authorization": bearer + "0"}, http.StatusUnauthorized},
		{"bearer fullwidth digit", "/api/snapshot", map[string]string{"Authorization": "Bearer \uff10" + testToken[1:]}, http.StatusUnauthorized},
		{"wrong bearer beats good cookie", "/api/snapshot", map[string]string{"Authorization": "Bearer x", "Cookie": cookie}, http.StatusUnauthorized},
		{"wrong query beats good cookie", "/api/snapshot?token=x", map[string]string{"Cookie": cookie}, http.StatusUnauthorized},
		{"bearer", "/api/snapshot", map[string]string{"Authorization": bearer}, http.StatusOK},
		{"cookie", "/api/snapshot", map[string]string{"Cookie": cookie}, http.StatusOK},
		{"token as cookie", "/api/snapshot", map[string]string{"Cookie": CookieName + "=" + testToken}, http.StatusUnauthorized},
		{"rebinding host", "/api/snapshot", map[string]string{"Authorization": bearer, "Host": "evil.example:7780"}, http.StatusMisdirectedRequest},
		{"localhost alias", "/api/snapshot", map[string]string{"Authorization": bearer, "Host": "localhost:7780"}, http.StatusMisdirectedRequest},
		{"cross origin", "/events", map[string]string{"Authorization": bearer, "Origin": "http://evil.example"}, http.StatusForbidden},
		{"cross site fetch", "/api/snapshot", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same origin", "/api/snapshot", map[string]string{"Authorization": bearer, "Origin": "http://127.0.0.1:7780"}, http.StatusOK},
		{"page", "/", map[string]string{"Authorization": bearer}, http.StatusOK},
		{"unknown path", "/etc/passwd", map[string]string{"Authorization": bearer}, http.StatusNotFound},
		{"bad proof index", "/api/prove?index=-1", map[string]string{"Authorization": bearer}, http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := do(h, http.MethodGet, c.target, c.hdr)
			if w.Code != c.want {
				t.Fatalf("%s: status %d, want %d: %s", c.target, w.Code, c.want, w.Body)
			}
			if got := w.Header().Get("Content-Security-Policy"); !strings.Contains(got, "script-src 'self'") || strings.Contains(got, "unsafe-inline") {
				t.Fatalf("CSP %q", got)
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
}

func TestQueryTokenSetsCookieAndRedirects(t *testing.T) {
	h := newTestHandler(t, true)
	w := do(h, http.MethodGet, "/?token="+testToken, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("status %d location %q", w.Code, w.Header().Get("Location"))
	}
	// The cookie is not the token: a browser sends a 127.0.0.1 cookie to
	// every port, so another local server it visits could read it.
	c := w.Result().Cookies()
	if len(c) != 1 || c[0].Name != CookieName || c[0].Value == testToken || strings.Contains(c[0].Value, testToken[:16]) ||
		len(c[0].Value) < minToken || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode || c[0].Path != "/" {
		t.Fatalf("cookie %+v", c)
	}
	if w := do(h, http.MethodGet, "/api/snapshot", map[string]string{"Cookie": CookieName + "=" + c[0].Value}); w.Code != http.StatusOK {
		t.Fatalf("the cookie does not open the dashboard: %d", w.Code)
	}
	other := newTestHandler(t, true) // another run of the dashboard, the same token
	if w := do(other, http.MethodGet, "/api/snapshot", map[string]string{"Cookie": CookieName + "=" + c[0].Value}); w.Code != http.StatusUnauthorized {
		t.Fatalf("a cookie outlived its dashboard: %d", w.Code)
	}
}

func TestPageHasNoInlineScript(t *testing.T) {
	h := newTestHandler(t, true)
	w := do(h, http.MethodGet, "/", map[string]string{"Authorization": "Bearer " + testToken})
	body := w.Body.String()
	if !strings.Contains(body, `<script src="/app.js" defer></script>`) || strings.Count(body, "<script") != 1 {
		t.Fatalf("page scripts: %s", body)
	}
	if strings.Contains(body, "onclick") || strings.Contains(body, "onload") || strings.Contains(body, "style=") {
		t.Fatal("inline handler or style in page")
	}
	js := do(h, http.MethodGet, "/app.js", map[string]string{"Authorization": "Bearer " + testToken}).Body.String()
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
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
