// Package treaty is the small public embedding API: open a node from a home
// directory, expose Go handlers as capabilities, and call peers' capabilities.
// Every call passes the same pipeline as the CLI's: mutual TLS pinned to peer
// keys, signed requests and responses, and default-deny Cedar policy.
//
//	n, err := treaty.Open(ctx, "/var/lib/treaty")
//	defer n.Close()
//	n.Expose("review", "reviews a diff", func(ctx context.Context, peer string, in []byte) ([]byte, error) { ... })
//	out, err := n.Call(ctx, "globex", "review", []byte(`{"diff":"..."}`))
package treaty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/localapi"
)

// Node is a running treaty node.
type Node struct {
	n *node.Node
}

// Options tunes Open; the zero value is fine.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
}

// Init creates a home directory with a new identity and returns its peer ID.
func Init(dir, name, listen string) (string, error) {
	id, err := home.Init(dir, name, listen)
	return id.String(), err
}

// Open loads the home at dir and starts serving its federation port. When it
// fails, nothing it opened stays open.
func Open(ctx context.Context, dir string, opts ...Options) (*Node, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	n, err := node.Open(node.Options{Home: dir, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		// The node holds the audit log, the vault and the trust book open.
		return nil, errors.Join(err, n.Close())
	}
	return &Node{n: n}, nil
}

// ID returns the node's peer ID (did:key).
func (n *Node) ID() string { return n.n.ID().String() }

// Addr returns the federation address the node listens on.
func (n *Node) Addr() string { return n.n.Addr().String() }

// Handler serves one call: peer is the caller's did:key, input its JSON.
type Handler func(ctx context.Context, peer string, input []byte) ([]byte, error)

// Expose registers a Go handler as a capability. Peers still need a grant.
func (n *Node) Expose(name, description string, h Handler) error {
	if h == nil {
		return fmt.Errorf("treaty: Expose %q: nil Handler", name)
	}
	return n.n.Register(node.Handler{
		Info: node.CapabilityInfo{Name: name, Description: description},
		Backend: backend.Func(func(ctx context.Context, inv backend.Invocation) ([]byte, error) {
			return h(ctx, inv.Peer.String(), inv.Input)
		}),
	})
}

// AddPeer adds a peer to the peer book (and applies it at once).
func (n *Node) AddPeer(name, addr, id string) error {
	if err := home.AddPeer(n.n.Home(), name, addr, id); err != nil {
		return err
	}
	return n.n.Reload()
}

// Grant lets peer list and call capability (and applies it at once).
func (n *Node) Grant(peer, capability string) error {
	if _, err := home.Grant(n.n.Home(), peer, capability); err != nil {
		return err
	}
	return n.n.Reload()
}

// Call runs capability on peer (nickname or did:key) and returns its JSON
// result. A refusal is a *Refusal naming the stage that refused.
func (n *Node) Call(ctx context.Context, peer, capability string, input []byte) (json.RawMessage, error) {
	res, err := n.n.Call(ctx, peer, capability, input)
	if err != nil {
		return nil, err
	}
	return res.Output, nil
}

// Close stops the node.
func (n *Node) Close() error { return n.n.Close() }

// Refusal is the error every stage returns when it declines a call; use
// errors.As to read its Stage and Reason. It is the same type the local API
// client returns.
type Refusal = localapi.Error

// ExitCode maps an error to the CLI's exit code (0 ok, 2 usage, 3 denied,
// 4 unreachable, 5 blocked, 6 remote failure, 1 other).
func ExitCode(err error) int { return localapi.ExitCode(err) }
