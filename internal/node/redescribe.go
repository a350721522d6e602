package node

import (
	"context"
	"log/slog"
	"reflect"
	"sync"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/wire"
)

// capabilities builds the capabilities of cfg: those st has built from the
// same configuration and limits are kept (reusable) and described again,
// the others built. The MCP servers and A2A agents are asked at once, so a
// reload waits at most about one mcpDescribeTimeout however many of them are
// slow or down: a reload carries every other change too (a revocation among
// them). The first capability, in cfg's order, that fails to build fails it.
func (st *state) capabilities(cfg []config.Capability, lim wire.Limits, log *slog.Logger) (map[string]*capability, error) {
	caps := make([]*capability, len(cfg))
	errs := make([]error, len(cfg))
	var wg sync.WaitGroup
	for i, c := range cfg {
		do := func() {
			if cp := st.reusable(c, lim); cp != nil {
				caps[i] = cp.redescribed(c, log)
				return
			}
			caps[i], errs[i] = buildCapability(c, lim, log)
		}
		if c.MCP != nil || c.A2A != nil {
			wg.Go(do)
		} else {
			do()
		}
	}
	wg.Wait()
	out := make(map[string]*capability, len(cfg))
	for i, c := range cfg {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out[c.Name] = caps[i]
	}
	return out, nil
}

// redescribed is cp, kept by a reload, with the description (and, for an
// MCP tool, the input schema) its MCP server or A2A agent gives now, where
// the configuration leaves them to it: a server or agent updated in place
// is shown to peers from the next reload, without being restarted. It is
// asked as buildCapability asks it, within mcpDescribeTimeout (an MCP server
// through the session its backend keeps, or a new one as a rebuild did); one
// that does not answer keeps what cp had, so a slow server does not make the
// capability flap. cp itself is never changed: readers of the running state
// hold it.
func (cp *capability) redescribed(c config.Capability, log *slog.Logger) *capability {
	info := cp.Info
	switch {
	case c.MCP != nil && (c.Description == "" || c.InputSchema == nil):
		m, ok := cp.Backend.(*backend.MCP)
		if !ok {
			return cp
		}
		ctx, cancel := context.WithTimeout(context.Background(), min(m.Timeout, mcpDescribeTimeout))
		desc, schema, err := m.Describe(ctx)
		cancel()
		if err != nil {
			log.Warn("mcp capability: the server did not describe its tool again; the last description stays",
				"capability", c.Name, "err", err)
			return cp
		}
		if c.Description == "" {
			info.Description = desc
		}
		if c.InputSchema == nil {
			info.InputSchema = serverSchema(c.Name, schema, log)
		}
	case c.A2A != nil && c.Description == "":
		a, ok := cp.Backend.(*backend.A2A)
		if !ok {
			if a, ok = cp.Streamer.(*backend.A2A); !ok {
				return cp
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), min(a.Timeout, mcpDescribeTimeout))
		desc, err := a.Describe(ctx)
		cancel()
		if err != nil || desc == "" {
			log.Warn("a2a capability: the agent's card could not be read again; the last description stays",
				"capability", c.Name, "err", err)
			return cp
		}
		info.Description = desc
	default:
		return cp
	}
	if reflect.DeepEqual(info, cp.Info) {
		return cp
	}
	next := &capability{Info: info, Backend: cp.Backend, Streamer: cp.Streamer, src: cp.src, lim: cp.lim}
	if err := next.input.compile("input_schema", info.InputSchema); err != nil {
		return cp // serverSchema compiled it: not reached
	}
	if err := next.output.compile("output_schema", info.OutputSchema); err != nil {
		return cp // cp's own, compiled when it was built
	}
	log.Info("capability described anew by its server; peers see the new description", "capability", c.Name)
	return next
}

// serverSchema is the input schema an MCP server gave for capability name,
// or nil when it does not compile: the server's schema, unlike the
// configuration's, must not make a reload invalid, which would refuse every
// other change with it (a revocation among them).
func serverSchema(name string, schema map[string]any, log *slog.Logger) map[string]any {
	if schema == nil {
		return nil
	}
	if err := CheckSchema("input_schema", schema); err != nil {
		log.Warn("mcp capability: the server's input schema does not compile and is not used",
			"capability", name, "err", err)
		return nil
	}
	return schema
}
