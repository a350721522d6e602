package node

import (
	"log/slog"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/wire"
)

// TestReloadKeepsUnchangedCapabilities: a reload that only moves a peer's
// address keeps every capability as built (an exec worker keeps its
// processes, nothing is started again); a capability whose configuration
// changed is built again. Without the reuse every reload rebuilt them all.
func TestReloadKeepsUnchangedCapabilities(t *testing.T) {
	t.Parallel()
	n, dir, bob, clock := openMovesNode(t)
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Capabilities = append(cfg.Capabilities,
		config.Capability{Name: "w", Exec: &config.ExecBackend{Command: "worker --x", Mode: config.ExecModeWorker, Workers: 2}},
		config.Capability{Name: "e", Exec: &config.ExecBackend{Command: "cat"}, InputSchema: map[string]any{"type": "object"}},
	)
	if err := config.Save(dir, cfg); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	w0, e0 := n.state.Load().caps["w"], n.state.Load().caps["e"]

	n.gossipChanged(t.Context(), record(bob, 1, "127.0.0.1:7001"))
	if n.state.Load().peers[bob].Addr != "127.0.0.1:7001" {
		t.Fatal("address not moved")
	}
	if n.state.Load().caps["w"] != w0 || n.state.Load().caps["e"] != e0 {
		t.Fatal("an address move rebuilt capabilities whose configuration did not change")
	}
	clock.advance(addrMoveWindow)

	cfg, err = config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Capabilities {
		if cfg.Capabilities[i].Name == "e" {
			cfg.Capabilities[i].Exec.Command = "cat -u"
		}
	}
	if err := config.Save(dir, cfg); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if n.state.Load().caps["e"] == e0 {
		t.Fatal("a changed capability was not built again")
	}
	if n.state.Load().caps["w"] != w0 {
		t.Fatal("an unchanged capability was built again")
	}
	// A change of the limits a backend is sized by rebuilds them all.
	if err := home.SetPeer(dir, home.PeerChange{Name: "bob", Addr: "127.0.0.1:7002", ID: bob.String()}); err != nil {
		t.Fatal(err)
	}
	cfg, err = config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Limits.MaxBodyBytes = 4096
	if err := config.Save(dir, cfg); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if n.state.Load().caps["w"] == w0 {
		t.Fatal("a capability was kept across a change of the limits it is built with")
	}
}

// TestReloadRebuildsUndescribedMCP: an MCP capability whose server did not
// describe its tool is built again at every reload, which asks again, as
// before reuse existed.
func TestReloadRebuildsUndescribedMCP(t *testing.T) {
	t.Parallel()
	lim := wire.Limits{}.WithDefaults()
	c := config.Capability{Name: "m", MCP: &config.MCPBackend{URL: "http://127.0.0.1:1/mcp", Tool: "t"}}
	cp, err := buildCapability(c, lim, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !cp.retry {
		t.Fatal("an MCP capability whose server was unreachable is not marked for a rebuild")
	}
	st := &state{caps: map[string]*capability{"m": cp}}
	if st.reusable(c, lim) != nil {
		t.Fatal("an undescribed MCP capability was kept across a reload")
	}
	e := config.Capability{Name: "e", Exec: &config.ExecBackend{Command: "cat"}}
	ce, err := buildCapability(e, lim, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st.caps["e"] = ce
	if st.reusable(e, lim) != ce {
		t.Fatal("an unchanged exec capability was not kept")
	}
	if (*state)(nil).reusable(e, lim) != nil {
		t.Fatal("the first load reused something")
	}
}
