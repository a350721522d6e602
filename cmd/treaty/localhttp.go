package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/catalogue"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/trust"
)

// The local HTTP surfaces (treaty mcp --http, treaty a2a, treaty dashboard)
// share what is here: loopback checks, one way to serve and stop, and what
// they read from the home beside the node's local API.

// isLoopback reports whether addr (host:port) names a loopback address.
// Host names other than "localhost" are refused: what they resolve to can
// change after the check.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// stderrLogger logs warnings, or everything with verbose, as text on stderr:
// stdout may be a protocol stream.
func stderrLogger(verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// shutdownGrace bounds how long requests in flight may finish at shutdown.
const shutdownGrace = 5 * time.Second

// localIdleTimeout closes a connection idle between requests, so a local
// process cannot hold the server's descriptors by opening connections and
// going quiet. It never cuts a response: a stream is not idle.
const localIdleTimeout = 2 * time.Minute

// localServer is the server of every local HTTP surface. It has no
// WriteTimeout: A2A and MCP stream answers for as long as their calls last.
func localServer(hd http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{Handler: hd, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: localIdleTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
}

// serveHTTP serves hd on ln until ctx ends, running background beside it,
// and prints banner to out once serving. It returns when both have stopped.
func serveHTTP(ctx context.Context, ln net.Listener, hd http.Handler, background func(context.Context), out io.Writer, banner string, log *slog.Logger) error {
	return serveLocal(ctx, ln, localServer(hd, log), background, out, banner)
}

// serveLocal is serveHTTP with the server given.
func serveLocal(ctx context.Context, ln net.Listener, srv *http.Server, background func(context.Context), out io.Writer, banner string) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { background(ctx) })
	wg.Go(func() {
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer scancel()
		srv.Shutdown(sctx)
	})
	defer func() { cancel(); wg.Wait() }()
	fmt.Fprintln(out, banner)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// homeTrust reads the trust in each peer of the book from the home, as
// 'treaty trust show' does: the local API does not serve it. A peer with no
// evidence has the prior's level.
func homeTrust(dir string) func(context.Context) (map[string]catalogue.Trust, error) {
	return func(context.Context) (map[string]catalogue.Trust, error) {
		cfg, err := config.Load(dir)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		snaps, err := trust.ReadFile(cfg.Trust, filepath.Join(dir, node.TrustFile), now)
		if err != nil {
			return nil, err
		}
		out := make(map[string]catalogue.Trust, len(cfg.Peers))
		for _, p := range cfg.Peers {
			var st trust.State
			out[p.ID] = catalogue.Trust{Level: st.Level(cfg.Trust, now).String(), Score: st.Score(cfg.Trust, now)}
		}
		for _, s := range snaps {
			out[s.Peer] = catalogue.Trust{Level: s.Level.String(), Score: s.Score, Quarantined: s.Quarantined}
		}
		return out, nil
	}
}

// auditSearch bounds how far back homeAudit looks for a call just finished.
const auditSearch = 256

// homeAudit finds a finished call's entries in the home's audit log: the
// node made them durable before it answered, so they are among the peer's
// newest.
func homeAudit(dir string) catalogue.AuditFunc {
	return func(ctx context.Context, peerID, digest string) (*catalogue.AuditRef, error) {
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
		var ref catalogue.AuditRef
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
