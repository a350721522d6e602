package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/mcpbridge"
)

// mcpCmd serves the running node's federation to local agents over MCP:
// stdio by default, streamable HTTP on loopback with --http. Logs go to
// stderr; on stdio, stdout carries only the protocol.
func mcpCmd(h func() string) *cobra.Command {
	var (
		httpAddr    string
		allowRemote bool
		poll        time.Duration
		verbose     bool
	)
	c := &cobra.Command{
		Use:   "mcp [--http 127.0.0.1:PORT]",
		Short: "serve the node's peers' capabilities as MCP tools (stdio, or HTTP with a bearer token)",
		Long: "mcp is an MCP server for local agents. Each capability a peer exposes to this node is a tool\n" +
			"PEER__CAPABILITY; treaty_peers and treaty_call are always there. It talks to the running node\n" +
			"('treaty run') through its socket. With --http it serves streamable HTTP on a loopback address;\n" +
			"clients must send 'Authorization: Bearer TOKEN' with the token in HOME/mcp.token (made on first use).",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := stderrLogger(verbose)
			if httpAddr != "" {
				if err := checkBridgeAddr(httpAddr, allowRemote); err != nil {
					return err
				}
			}
			if poll < mcpbridge.MinPoll {
				return usagef("--poll %v is below the minimum %v", poll, mcpbridge.MinPoll)
			}
			dir, err := filepath.Abs(h())
			if err != nil {
				return err
			}
			cl := client.New(dir)
			ctx := cmd.Context()
			if _, err := cl.Status(ctx); err != nil {
				log.Warn("treaty mcp: the node is not answering yet; tools appear once it does", "home", dir, "err", err)
			}
			b, err := mcpbridge.New(mcpbridge.Options{Node: cl, Logger: log, Poll: poll, Version: "treaty", Trust: homeTrust(dir), Audit: homeAudit(dir)})
			if err != nil {
				return err
			}
			// A first sync before serving, so that the first tools/list is
			// complete; bounded, since peers may be unreachable.
			sctx, scancel := context.WithTimeout(ctx, firstSync)
			_ = b.Sync(sctx) // a failure is the warning above, or a peer keeping no tools yet
			scancel()
			if httpAddr == "" {
				err := b.Run(ctx, drainingTransport{b.StdioTransport(os.Stdin, os.Stdout)})
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			return serveMCPHTTP(ctx, b, dir, httpAddr, log)
		},
	}
	c.Flags().StringVar(&httpAddr, "http", "", "serve streamable HTTP on this loopback HOST:PORT instead of stdio")
	c.Flags().BoolVar(&allowRemote, "allow-non-loopback", false, "allow --http on a non-loopback address (the bearer token is then the only protection)")
	c.Flags().DurationVar(&poll, "poll", mcpbridge.DefaultPoll, "how often to re-read peers and grants to update the tool list")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "debug logging on stderr")
	return c
}

// firstSync bounds the sync made before serving.
const firstSync = 3 * time.Second

func serveMCPHTTP(ctx context.Context, b *mcpbridge.Bridge, dir, addr string, log *slog.Logger) error {
	tok, err := mcpbridge.LoadOrCreateToken(dir)
	if err != nil {
		return err
	}
	hd, err := b.HTTPHandler(tok)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	banner := fmt.Sprintf("treaty mcp: serving http://%s/ (bearer token in %s)", ln.Addr(), filepath.Join(dir, mcpbridge.TokenFile))
	return serveHTTP(ctx, ln, hd, b.Poll, os.Stderr, banner, log)
}
