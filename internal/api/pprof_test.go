package api_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/localapi"
)

// The profiling endpoint is off by default, answering like an unknown path,
// and on over the socket once treaty.yaml says debug.pprof: true.
func TestPprofOptIn(t *testing.T) {
	e := start(t, "acme")
	e.rawError(t, http.MethodGet, "/debug/pprof/", "", http.StatusNotFound, localapi.StageUsage)
	e.rawError(t, http.MethodGet, "/debug/pprof/heap", "", http.StatusNotFound, localapi.StageUsage)

	cfg := filepath.Join(e.home, "treaty.yaml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(b, "debug:\n  pprof: true\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.n.Reload(); err != nil {
		t.Fatal(err)
	}
	code, _, body := e.raw(t, http.MethodGet, "/debug/pprof/", "")
	if code != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("GET /debug/pprof/ = %d %.200q", code, body)
	}
	code, _, body = e.raw(t, http.MethodGet, "/debug/pprof/goroutine?debug=1", "")
	if code != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("GET /debug/pprof/goroutine = %d %.200q", code, body)
	}
}
