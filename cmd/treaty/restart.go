package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/api"
	"github.com/treaty-dev/treaty/internal/node"
)

// restartGrace bounds how long requests in flight (the rotate request itself)
// may take to finish when the node restarts on a rotated key.
const restartGrace = 5 * time.Second

// serveNode runs the node and its local API until ctx ends. When the node asks
// for a restart (a key rotation), it is closed and opened again on the new key,
// in this process, so the operator does nothing.
func serveNode(ctx context.Context, home string, log *slog.Logger) error {
	if err := checkNoNode(ctx, home); err != nil {
		return err
	}
	for {
		again, err := serveOnce(ctx, home, log)
		if err != nil || !again {
			return err
		}
		log.Info("restarting on the rotated identity key")
	}
}

// checkNoNode refuses to start a second node on a home whose node answers,
// or on a home whose socket cannot be used, before anything is opened: the
// node would otherwise fail later on a lock or a bind, with a message about
// trust.json or an "invalid argument".
func checkNoNode(ctx context.Context, home string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := client.New(home).Status(ctx)
	switch {
	case err == nil:
		return fmt.Errorf("a node (%s, %s) is already running for %s; stop it first", s.Name, s.ID, home)
	case errors.Is(err, client.ErrNotRunning):
		return nil
	}
	return err
}

// serveOnce runs the node once; it reports whether the node asked to restart.
func serveOnce(ctx context.Context, home string, log *slog.Logger) (bool, error) {
	n, err := node.Open(node.Options{Home: home, Logger: log})
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		n.Close()
		return false, err
	}
	defer n.Close()
	srv, err := api.Listen(n, log)
	if err != nil {
		return false, err
	}
	var restart atomic.Bool
	stop, shut := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(shut)
		select {
		case <-n.Restart():
			restart.Store(true)
			sctx, scancel := context.WithTimeout(context.Background(), restartGrace)
			defer scancel()
			srv.Shutdown(sctx) // the rotate request gets its answer first
		case <-stop:
		}
	}()
	err = srv.Serve(ctx)
	close(stop)
	<-shut
	return restart.Load() && ctx.Err() == nil, err
}
