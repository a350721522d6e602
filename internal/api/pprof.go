package api

import (
	"net/http"
	"net/http/pprof"

	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/localapi"
)

// pprofPrefix is where the profiling endpoint lives on the local socket.
const pprofPrefix = "/debug/pprof/"

// PprofSwitch tells whether the profiling endpoint is on; *node.Node is one,
// reading debug.pprof from treaty.yaml at each reload.
type PprofSwitch interface{ PprofEnabled() bool }

// RegisterPprof adds net/http/pprof under /debug/pprof/ to mux, answering only
// while on says so and otherwise exactly as an unknown path does. It is only
// ever on the local socket, whose mode 0600 keeps it to the node's user.
func RegisterPprof(mux *http.ServeMux, on PprofSwitch) {
	gate := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !on.PprofEnabled() {
				err := refusal.New(refusal.StageUsage, "no endpoint %s %s (profiling is off; set debug.pprof: true in treaty.yaml)", r.Method, r.URL.Path)
				writeJSON(w, http.StatusNotFound, localapi.ErrorResponse{Error: errorBody(err)})
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc(pprofPrefix, gate(pprof.Index)) // named profiles: heap, goroutine, allocs, …
	mux.HandleFunc(pprofPrefix+"cmdline", gate(pprof.Cmdline))
	mux.HandleFunc(pprofPrefix+"profile", gate(pprof.Profile))
	mux.HandleFunc(pprofPrefix+"symbol", gate(pprof.Symbol))
	mux.HandleFunc(pprofPrefix+"trace", gate(pprof.Trace))
}
