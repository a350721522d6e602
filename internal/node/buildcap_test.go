package node

import (
	"log/slog"
	"testing"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/wire"
)

func TestBuildCapabilityBackends(t *testing.T) {
	lim := wire.Limits{MaxConcurrentPerPeer: 17, MaxBodyBytes: 4096}
	cp, err := buildCapability(config.Capability{Name: "w", Exec: &config.ExecBackend{Command: "worker --x", Mode: config.ExecModeWorker, Workers: 3}}, lim, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w, ok := cp.Backend.(*backend.Worker)
	if !ok || w.Workers != 3 || w.MaxOutput != 4096 || len(w.Argv) != 2 {
		t.Fatalf("worker mode built %#v", cp.Backend)
	}
	if _, err := buildCapability(config.Capability{Name: "w", Stream: true, Exec: &config.ExecBackend{Command: "w", Mode: config.ExecModeWorker}}, lim, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a streaming worker capability was accepted")
	}
	cp, err = buildCapability(config.Capability{Name: "h", HTTP: &config.HTTPBackend{URL: "http://127.0.0.1:1/"}}, lim, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := cp.Backend.(*backend.HTTP); !ok || h.Conns != 17 {
		t.Fatalf("http backend built %#v", cp.Backend)
	}
}
