package node

import (
	"context"
	"log/slog"
	"reflect"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
)

// redescribed is cp, kept by a reload, with the description and input schema
// its MCP server gives now, where the configuration leaves them to the
// server: a server updated in place (a new version of its tool) is shown to
// peers from the next reload, without restarting it. The server is asked as
// buildCapability asks it, within mcpDescribeTimeout, through the session the
// backend keeps (or a new one, as a rebuild did); a server that does not
// answer keeps what cp had, so a slow server does not make the tool flap.
// cp itself is never changed: readers of the running state hold it.
func (cp *capability) redescribed(c config.Capability, log *slog.Logger) *capability {
	m, ok := cp.Backend.(*backend.MCP)
	if !ok || c.MCP == nil || (c.Description != "" && c.InputSchema != nil) {
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
	info := cp.Info
	if c.Description == "" {
		info.Description = desc
	}
	if c.InputSchema == nil {
		info.InputSchema = serverSchema(c.Name, schema, log)
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
	log.Info("mcp capability: the server describes its tool differently; peers see the new description",
		"capability", c.Name)
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
