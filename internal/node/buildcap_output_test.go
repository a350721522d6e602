package node

import (
	"log/slog"
	"testing"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/wire"
)

// Every backend's output is bounded by limits.max_body_bytes, as the docs
// say, not by a fixed 1 MiB: an exec or http backend ignored the setting, so
// lowering it did not bound them and raising it did not let them answer more.
func TestBuildCapabilityBoundsOutputByMaxBody(t *testing.T) {
	lim := wire.Limits{MaxConcurrentPerPeer: 17, MaxBodyBytes: 4096}
	log := slog.New(slog.DiscardHandler)
	cp, err := buildCapability(config.Capability{Name: "e", Exec: &config.ExecBackend{Command: "cat"}}, lim, log)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := cp.Backend.(*backend.Exec); !ok || e.MaxOutput != 4096 {
		t.Fatalf("exec backend built %#v", cp.Backend)
	}
	cp, err = buildCapability(config.Capability{Name: "s", Stream: true, Exec: &config.ExecBackend{Command: "cat"}}, lim, log)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := cp.Streamer.(*backend.Exec); !ok || e.MaxOutput != 4096 {
		t.Fatalf("exec streamer built %#v", cp.Streamer)
	}
	cp, err = buildCapability(config.Capability{Name: "h", HTTP: &config.HTTPBackend{URL: "http://127.0.0.1:1/"}}, lim, log)
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := cp.Backend.(*backend.HTTP); !ok || h.MaxOutput != 4096 {
		t.Fatalf("http backend built %#v", cp.Backend)
	}
}
