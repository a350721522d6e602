package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/a2abridge"
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
			log := stderrLogger(verbose)
			if httpAddr == "" {
				return usagef("--http HOST:PORT is required (e.g. 127.0.0.1:7422)")
			}
			if err := checkBridgeAddr(httpAddr, allowRemote); err != nil {
				return err
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
			banner := fmt.Sprintf("treaty a2a: serving %s (agent card at %s.well-known/agent-card.json; bearer token in %s)",
				url, url, filepath.Join(dir, a2abridge.TokenFile))
			return serveHTTP(ctx, ln, hd, b.Poll, os.Stderr, banner, log)
		},
	}
	c.Flags().StringVar(&httpAddr, "http", "", "serve on this loopback HOST:PORT (required)")
	c.Flags().BoolVar(&allowRemote, "allow-non-loopback", false, "allow --http on a non-loopback address (the bearer token is then the only protection)")
	c.Flags().DurationVar(&poll, "poll", a2abridge.DefaultPoll, "how often to re-read peers and grants to update the agent card")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "debug logging on stderr")
	return c
}
