package node

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/wire"
)

// a2aCapability makes cp's backend the skill of a local A2A agent (c.A2A). As
// for an MCP server, the skill's description is read from the agent's card at
// load unless the capability sets its own, within mcpDescribeTimeout: an
// agent that is down or slow is logged, never fatal to the reload.
func a2aCapability(cp *capability, c config.Capability, timeout time.Duration, lim wire.Limits, log *slog.Logger) {
	b := &backend.A2A{URL: c.A2A.URL, Skill: c.A2A.Skill, Timeout: timeout, MaxOutput: int(min(lim.MaxBodyBytes, math.MaxInt32)), Log: log}
	if cp.Info.Description == "" {
		ctx, cancel := context.WithTimeout(context.Background(), min(timeout, mcpDescribeTimeout))
		desc, err := b.Describe(ctx)
		cancel()
		if err != nil {
			log.Warn("a2a capability: the agent's card could not be read; the capability is kept and calls will retry the agent",
				"capability", c.Name, "err", err)
		}
		cp.Info.Description = desc
	}
	if c.Stream {
		cp.Streamer = b
	} else {
		cp.Backend = b
	}
}
