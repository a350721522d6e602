package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/a2abridge"
	"github.com/treaty-dev/treaty/internal/mcpbridge"
)

// a2aCmd serves the running node's federation to local agents over A2A
// (JSON-RPC over HTTP) on a loopback address, behind the bearer token in
// HOME/a2a.token.
func a2aCmd(h func() string) *cobra.Command {
	var (
		httpAddr    string
		allowRemote bool
		poll        time.Duration
		verbose     bool
	)
	c := &cobra.Command{
		Use:   "a2a --http 127.0.0.1:PORT",
		Short: "serve the node's peers' capabilities as A2A skills (HTTP with a bearer token)",
		Long: "a2a is an A2A server for local agents. Its Agent Card (/.well-known/agent-card.json) lists each\n" +
			"capability a peer exposes to this node as a skill PEER__CAPABILITY; a message names the skill in its\n" +
			"metadata (\"skill\") and carries the input as a data part. It talks to the running node ('treaty run')\n" +
			"through its socket. Clients must send 'Authorization: Bearer TOKEN' with the token in HOME/a2a.token\n" +
			"(made on first use), for the card too. See docs/clients/a2a.md.",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			if httpAddr == "" {
				return usagef("--http HOST:PORT is required (e.g. 127.0.0.1:7422)")
			}
			if !allowRemote && !mcpbridge.IsLoopback(httpAddr) {
				return usagef("--http %s is not a loopback address (use 127.0.0.1:PORT, or add --allow-non-loopback)", httpAddr)
			}
			if poll < a2abridge.MinPoll {
				return usagef("--poll %v is below the minimum %v", poll, a2abridge.MinPoll)
			}
			dir, err := filepath.Abs(h())
			if err != nil {
				return err
			}
			tok, err := a2abridge.LoadOrCreateToken(dir)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", httpAddr)
			if err != nil {
				return err
			}
			defer ln.Close()
			url := "http://" + ln.Addr().String() + "/"
			cl := client.New(dir)
			ctx := cmd.Context()
			if _, err := cl.Status(ctx); err != nil {
				log.Warn("treaty a2a: the node is not answering yet; skills appear once it does", "home", dir, "err", err)
			}
			b, err := a2abridge.New(a2abridge.Options{Node: cl, URL: url, Logger: log, Poll: poll, Version: "treaty",
				Trust: homeTrust(dir), Audit: homeAudit(dir)})
			if err != nil {
				return err
			}
			hd, err := b.HTTPHandler(tok)
			if err != nil {
				return err
			}
			return serveA2A(ctx, b, hd, ln, url, dir, log)
		},
	}
	c.Flags().StringVar(&httpAddr, "http", "", "serve on this loopback HOST:PORT (required)")
	c.Flags().BoolVar(&allowRemote, "allow-non-loopback", false, "allow --http on a non-loopback address (the bearer token is then the only protection)")
	c.Flags().DurationVar(&poll, "poll", a2abridge.DefaultPoll, "how often to re-read peers and grants to update the agent card")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "debug logging on stderr")
	return c
}

func serveA2A(ctx context.Context, b *a2abridge.Bridge, hd http.Handler, ln net.Listener, url, dir string, log *slog.Logger) error {
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
	fmt.Fprintf(os.Stderr, "treaty a2a: serving %s (agent card at %s.well-known/agent-card.json; bearer token in %s)\n",
		url, url, filepath.Join(dir, a2abridge.TokenFile))
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
