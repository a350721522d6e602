package main

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/dashboard"
)

// DefaultDashboardListen is where 'treaty dashboard' serves without --listen.
const DefaultDashboardListen = "127.0.0.1:7780"

// dashboardCmd serves a read-only web view of the running node on loopback.
func dashboardCmd(h func() string) *cobra.Command {
	var (
		listen      string
		httpAddr    string
		allowRemote bool
		poll        time.Duration
		verifyEvery time.Duration
		verbose     bool
	)
	c := &cobra.Command{
		Use:   "dashboard [--listen 127.0.0.1:PORT] [--allow-non-loopback]",
		Short: "serve a live web view of the running node (peers, trust, calls, refusals, audit) on loopback",
		Long: "dashboard reads the running node ('treaty run') through its socket and the home's audit log\n" +
			"(read-only) and serves a web page that updates live. Every request needs the token in\n" +
			"HOME/dashboard.token (made on first use): open the URL it prints (the token is in its #fragment,\n" +
			"which the page keeps in the tab; no cookie), or send 'Authorization: Bearer TOKEN'. See docs/dashboard.md.",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// --http is --listen under the name 'treaty mcp' uses.
			if cmd.Flags().Changed("http") {
				if cmd.Flags().Changed("listen") && listen != httpAddr {
					return usagef("--listen %s and --http %s disagree; give one", listen, httpAddr)
				}
				listen = httpAddr
			}
			loopback := isLoopback(listen)
			if !loopback && !allowRemote {
				return usagef("--listen %s is not a loopback address (use 127.0.0.1:PORT, or add --allow-non-loopback)", listen)
			}
			if poll < dashboard.MinPoll {
				return usagef("--poll %v is below the minimum %v", poll, dashboard.MinPoll)
			}
			if verifyEvery < time.Second {
				return usagef("--verify-every %v is below the minimum 1s", verifyEvery)
			}
			log := stderrLogger(verbose)
			dir, err := filepath.Abs(h())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			cl := client.New(dir)
			if _, err := cl.Status(ctx); err != nil {
				log.Warn("treaty dashboard: the node is not answering yet; the page says so until it does", "home", dir, "err", err)
			}
			tok, err := dashboard.LoadOrCreateToken(dir)
			if err != nil {
				return err
			}
			d, err := dashboard.New(dashboard.Options{
				Node: cl, Home: dir, Poll: poll, VerifyEvery: verifyEvery, Logger: log,
				Trust: homeTrust(dir),
			})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			bound := ln.Addr().String()
			hd, err := d.Handler(tok, bound, loopback)
			if err != nil {
				ln.Close()
				return err
			}
			banner := fmt.Sprintf("treaty dashboard: open http://%s/#token=%s (token in %s)", bound, url.QueryEscape(tok), filepath.Join(dir, dashboard.TokenFile))
			return serveHTTP(ctx, ln, hd, d.Run, cmd.ErrOrStderr(), banner, log)
		},
	}
	c.Flags().StringVar(&listen, "listen", DefaultDashboardListen, "serve the dashboard on this loopback HOST:PORT (port 0: any free port)")
	c.Flags().StringVar(&httpAddr, "http", "", "the same as --listen")
	c.Flags().BoolVar(&allowRemote, "allow-non-loopback", false, "allow --listen on a non-loopback address (the token is then the only protection)")
	c.Flags().DurationVar(&poll, "poll", dashboard.DefaultPoll, "how often to read the node")
	c.Flags().DurationVar(&verifyEvery, "verify-every", dashboard.DefaultVerifyEvery, "pause between full verifications of the audit log")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "debug logging on stderr")
	return c
}
