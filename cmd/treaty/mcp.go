package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/mcpbridge"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/trust"
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
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			if httpAddr != "" && !allowRemote && !mcpbridge.IsLoopback(httpAddr) {
				return usagef("--http %s is not a loopback address (use 127.0.0.1:PORT, or add --allow-non-loopback)", httpAddr)
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
				err := b.Run(ctx, &mcp.StdioTransport{})
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

// homeTrust reads the trust in each peer of the book from the home, as
// 'treaty trust show' does: the local API does not serve it. A peer with no
// evidence has the prior's level.
func homeTrust(dir string) func(context.Context) (map[string]mcpbridge.Trust, error) {
	return func(context.Context) (map[string]mcpbridge.Trust, error) {
		cfg, err := config.Load(dir)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		snaps, err := trust.ReadFile(cfg.Trust, filepath.Join(dir, node.TrustFile), now)
		if err != nil {
			return nil, err
		}
		out := make(map[string]mcpbridge.Trust, len(cfg.Peers))
		for _, p := range cfg.Peers {
			var st trust.State
			out[p.ID] = mcpbridge.Trust{Level: st.Level(cfg.Trust, now).String(), Score: st.Score(cfg.Trust, now)}
		}
		for _, s := range snaps {
			out[s.Peer] = mcpbridge.Trust{Level: s.Level.String(), Score: s.Score, Quarantined: s.Quarantined}
		}
		return out, nil
	}
}

// firstSync bounds the sync made before serving.
const firstSync = 3 * time.Second

// auditSearch bounds how far back homeAudit looks for a call just finished.
const auditSearch = 256

// homeAudit finds a finished call's entries in the home's audit log: the
// node made them durable before it answered, so they are among the peer's
// newest.
func homeAudit(dir string) func(ctx context.Context, peerID, digest string) (*mcpbridge.AuditRef, error) {
	return func(ctx context.Context, peerID, digest string) (*mcpbridge.AuditRef, error) {
		want, err := hex.DecodeString(digest)
		if err != nil {
			return nil, err
		}
		r, err := audit.OpenReader(ctx, filepath.Join(dir, node.AuditFile))
		if err != nil {
			return nil, err
		}
		defer r.Close()
		entries, err := r.List(ctx, audit.Filter{Peer: peerID, Reverse: true, Limit: auditSearch})
		if err != nil {
			return nil, err
		}
		var ref mcpbridge.AuditRef
		var sent, done bool
		for _, e := range entries {
			if !bytes.Equal(e.RequestDigest, want) {
				continue
			}
			switch e.Kind {
			case audit.KindCallSent:
				ref.SentIndex, ref.Report, sent = e.Index, e.Report, true
			case audit.KindCallCompleted:
				ref.Index, done = e.Index, true
			}
		}
		if !sent || !done {
			return nil, nil
		}
		return &ref, nil
	}
}

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
	srv := &http.Server{Handler: hd, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { b.Poll(ctx) })
	wg.Go(func() {
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
	})
	defer func() { cancel(); wg.Wait() }()
	fmt.Fprintf(os.Stderr, "treaty mcp: serving http://%s/ (bearer token in %s)\n", ln.Addr(), filepath.Join(dir, mcpbridge.TokenFile))
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
