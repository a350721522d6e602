package dashboard

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
)

//go:embed assets
var assets embed.FS

// csp allows only this origin's script and style files: no inline script,
// no eval, no other origin, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// keepAlive is how often an idle event stream gets a comment line, so that a
// dead client is noticed.
const keepAlive = 15 * time.Second

// Handler serves the dashboard at addr, the address it is bound to
// (host:port, as the browser's Host header must say). With strictHost false
// (a non-loopback bind) the Host header is not checked and the token is the
// only protection.
//
// The page, its script and its style are public (they are the binary's own);
// everything else needs "Authorization: Bearer TOKEN". The page reads the
// token from its URL's fragment (#token=, never sent to a server) into its
// tab's sessionStorage, which only this origin (host and port) can read. No
// cookie is set or accepted: browsers send a cookie for 127.0.0.1 to every
// port of it, so any other local server the browser visits would learn it
// (ADR 25).
func (d *Dashboard) Handler(token, addr string, strictHost bool) (http.Handler, error) {
	if len(token) < minToken {
		return nil, fmt.Errorf("dashboard: Handler: token must be at least %d characters", minToken)
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(static)
	public := http.NewServeMux()
	public.Handle("GET /{$}", files)
	public.Handle("GET /app.js", files)
	public.Handle("GET /app.css", files)
	api := http.NewServeMux()
	api.HandleFunc("GET /api/snapshot", d.serveSnapshot)
	api.HandleFunc("GET /api/prove", d.serveProve)
	api.HandleFunc("GET /events", d.serveEvents)
	return &guard{token: []byte(token), host: addr, strictHost: strictHost, public: public, api: api}, nil
}

// guard checks Host, Origin and the token before anything is served.
type guard struct {
	token       []byte
	host        string
	strictHost  bool
	public, api *http.ServeMux
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.admit(w, r) {
		// Nothing more is read: net/http would otherwise wait, without a
		// deadline, for the unread body before answering.
		http.NewResponseController(w).SetReadDeadline(time.Now())
	}
}

// admit serves r, or refuses it and reports false.
func (g *guard) admit(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	// A DNS-rebinding page sends its own name: only the bound address is
	// this dashboard.
	if g.strictHost && r.Host != g.host {
		http.Error(w, "treaty dashboard: wrong Host header (open the address the dashboard printed)", http.StatusMisdirectedRequest)
		return false
	}
	self := "http://" + r.Host
	if g.strictHost {
		self = "http://" + g.host
	}
	if o := r.Header.Get("Origin"); o != "" && o != self {
		http.Error(w, "treaty dashboard: cross-origin request refused", http.StatusForbidden)
		return false
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
		http.Error(w, "treaty dashboard: cross-site request refused", http.StatusForbidden)
		return false
	}
	if r.URL.Path == "/" && r.URL.Query().Has("token") {
		// An earlier dashboard's URL: the token moves to the fragment,
		// which the page reads and the browser sends to no server.
		if !g.match(r.URL.Query().Get("token")) {
			http.Error(w, "treaty dashboard: wrong token", http.StatusUnauthorized)
			return false
		}
		http.Redirect(w, r, "/#token="+url.QueryEscape(r.URL.Query().Get("token")), http.StatusSeeOther)
		return true
	}
	if _, pattern := g.public.Handler(r); pattern != "" {
		g.public.ServeHTTP(w, r)
		return true
	}
	if !g.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="treaty dashboard"`)
		http.Error(w, "treaty dashboard: missing or wrong token (open the URL 'treaty dashboard' printed, or send Authorization: Bearer with the token in dashboard.token)", http.StatusUnauthorized)
		return false
	}
	g.api.ServeHTTP(w, r)
	return true
}

func (g *guard) match(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), g.token) == 1
}

// authorized reports whether r carries the token as a bearer credential,
// the only one accepted.
func (g *guard) authorized(r *http.Request) bool {
	const p = "Bearer "
	a := r.Header.Get("Authorization")
	return len(a) > len(p) && a[:len(p)] == p && g.match(a[len(p):])
}

func (d *Dashboard) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	// A reader that stops reading is dropped, not waited for.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d.writeTimeout))
	b, _, _ := d.current()
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (d *Dashboard) serveProve(w http.ResponseWriter, r *http.Request) {
	idx, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	if err != nil {
		http.Error(w, "treaty dashboard: index must be an entry index", http.StatusBadRequest)
		return
	}
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d.writeTimeout))
	v, err := d.Prove(r.Context(), idx)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, audit.ErrNotFound) || errors.Is(err, audit.ErrBeyondSize) {
			status = http.StatusNotFound
		}
		http.Error(w, "treaty dashboard: "+err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// serveEvents streams a "snapshot" event at once and after every change.
// Each write has writeTimeout to finish: a reader that stopped reading is
// dropped (the server has no WriteTimeout, which would cut every stream).
func (d *Dashboard) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(keepAlive)
	defer t.Stop()
	var last uint64
	first := true
	for {
		b, v, changed := d.current()
		if first || v != last {
			first, last = false, v
			rc.SetWriteDeadline(time.Now().Add(d.writeTimeout))
			if _, err := fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", b); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-t.C:
			rc.SetWriteDeadline(time.Now().Add(d.writeTimeout))
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}
