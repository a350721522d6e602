package node

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/policy"
	"github.com/treaty-dev/treaty/internal/trust"
	"github.com/treaty-dev/treaty/internal/wire"
)

// state is one immutable snapshot of the node's configuration. A reload builds
// a new one and swaps it in; calls in flight keep the snapshot they started with.
type state struct {
	digests map[string][32]byte // of treaty.yaml and policy.cedar, to audit changes
	cfg     *config.Config
	pol     *policy.Engine
	peers   map[identity.PublicKey]config.Peer
	byName  map[string]identity.PublicKey
	caps    map[string]*capability
	limits  wire.Limits
}

// capability is one runnable capability: its public description and backend.
type capability struct {
	Info     CapabilityInfo
	Backend  backend.Backend  // set for request/response capabilities
	Streamer backend.Streamer // set for stream capabilities
}

// CapabilityInfo is what a peer sees of a capability it may list.
type CapabilityInfo struct {
	Name         string         `json:"name"`
	Description  string         `json:"description,omitempty"`
	InputSchema  map[string]any `json:"input_schema,omitempty"`
	OutputSchema map[string]any `json:"output_schema,omitempty"`
	Stream       bool           `json:"stream,omitempty"`
}

// Handler is a Go capability registered through the embedding API.
type Handler struct {
	Info     CapabilityInfo
	Backend  backend.Backend
	Streamer backend.Streamer
}

// Register adds or replaces a Go capability. It still needs a grant to be
// visible to any peer.
func (n *Node) Register(h Handler) error {
	if !config.ValidCapability(h.Info.Name) {
		return fmt.Errorf("node: invalid capability name %q", h.Info.Name)
	}
	if (h.Backend == nil) == (h.Streamer == nil) {
		return fmt.Errorf("node: capability %q needs exactly one of Backend and Streamer", h.Info.Name)
	}
	h.Info.Stream = h.Streamer != nil
	n.mu.Lock()
	n.funcs[h.Info.Name] = &h
	n.mu.Unlock()
	return n.reload()
}

func (n *Node) reload() error {
	sig := n.filesSignature()
	cfg, err := config.Load(n.home)
	if err != nil {
		return err
	}
	pol, err := policy.Load(n.home)
	if err != nil {
		return err
	}
	limits := wire.Limits{
		MaxBodyBytes:         cfg.Limits.MaxBodyBytes,
		MaxHeaderBytes:       cfg.Limits.MaxHeaderBytes,
		TimeToFirstByte:      cfg.Limits.TimeToFirstByte.D(),
		CallTimeout:          cfg.Limits.CallTimeout.D(),
		MaxConcurrentPerPeer: cfg.Limits.MaxConcurrentPerPeer,
	}.WithDefaults()
	if err := limits.Validate(); err != nil {
		return fmt.Errorf("config: limits: %w", err)
	}
	st := &state{
		digests: fileDigests(n.home),
		cfg:     cfg,
		pol:     pol,
		peers:   map[identity.PublicKey]config.Peer{},
		byName:  map[string]identity.PublicKey{},
		caps:    map[string]*capability{},
		limits:  limits,
	}
	for _, p := range cfg.Peers {
		k, _ := identity.ParseDID(p.ID) // validated by config.Load
		st.peers[k] = p
		st.byName[p.Name] = k
	}
	for _, c := range cfg.Capabilities {
		cp, err := buildCapability(c, limits)
		if err != nil {
			return err
		}
		st.caps[c.Name] = cp
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.applyGates(cfg); err != nil {
		return err
	}
	for name, h := range n.funcs {
		st.caps[name] = &capability{Info: h.Info, Backend: h.Backend, Streamer: h.Streamer}
	}
	if n.peerLim == nil || n.limitMax != limits.MaxConcurrentPerPeer {
		lim, err := wire.NewPeerLimiter(limits.MaxConcurrentPerPeer)
		if err != nil {
			return fmt.Errorf("config: limits: %w", err)
		}
		n.peerLim, n.limitMax = lim, limits.MaxConcurrentPerPeer
	}
	old := n.state.Swap(st)
	n.fileSig = sig
	n.auditConfigChange(old, st)
	if old != nil && n.tr != nil {
		// A peer removed from the book loses its open connections now, not at
		// its next handshake.
		for k := range old.peers {
			if _, ok := st.peers[k]; !ok {
				n.tr.Disconnect(k)
				n.log.Info("peer removed; connections closed", "peer", k)
			}
		}
	}
	return nil
}

// buildCapability makes c's backend. An http backend's connection pool is sized
// to the calls one peer may have in flight (lim.MaxConcurrentPerPeer); an exec
// worker's answer line is bounded by lim.MaxBodyBytes. The pool and the workers
// a reload drops close themselves once idle (30 s, 1 min).
func buildCapability(c config.Capability, lim wire.Limits) (*capability, error) {
	timeout := c.Timeout.D()
	if timeout == 0 {
		timeout = config.DefaultBackendTimeout
	}
	cp := &capability{Info: CapabilityInfo{
		Name: c.Name, Description: c.Description,
		InputSchema: c.InputSchema, OutputSchema: c.OutputSchema, Stream: c.Stream,
	}}
	switch {
	case c.Exec != nil:
		argv, err := config.SplitCommand(c.Exec.Command)
		if err != nil {
			return nil, fmt.Errorf("config: capability %s: %w", c.Name, err)
		}
		if c.Exec.Mode == config.ExecModeWorker {
			if c.Stream {
				return nil, fmt.Errorf("config: capability %s: exec.mode worker cannot stream", c.Name)
			}
			cp.Backend = &backend.Worker{
				Argv: argv, Env: c.Exec.Env, EnvAllow: c.Exec.EnvAllow, Timeout: timeout,
				MaxOutput: int(min(lim.MaxBodyBytes, math.MaxInt32)), Workers: c.Exec.Workers,
			}
			break
		}
		e := &backend.Exec{Argv: argv, Env: c.Exec.Env, EnvAllow: c.Exec.EnvAllow, Timeout: timeout}
		if c.Stream {
			cp.Streamer = e
		} else {
			cp.Backend = e
		}
	case c.HTTP != nil:
		if c.Stream {
			return nil, fmt.Errorf("config: capability %s: http backends cannot stream yet", c.Name)
		}
		cp.Backend = &backend.HTTP{URL: c.HTTP.URL, Timeout: timeout, Conns: lim.MaxConcurrentPerPeer}
	default:
		// Declared only; a Go handler registered through the embedding API
		// supplies the backend. Until then calls fail at the backend stage.
		cp.Backend = backend.Func(func(_ context.Context, _ backend.Invocation) ([]byte, error) {
			return nil, &backend.Failure{Reason: "no backend configured"}
		})
	}
	return cp, nil
}

// capNames lists capability names, sorted.
func (st *state) capNames() []string {
	out := make([]string, 0, len(st.caps))
	for name := range st.caps {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// applyGates creates the trust book and the budget limiter on first load and
// updates them on reload, keeping their state. Called with n.mu held.
func (n *Node) applyGates(cfg *config.Config) error {
	tc := cfg.Trust
	tc.Logger, tc.Now = n.log, n.now
	if n.trust == nil {
		b, err := trust.Open(tc, filepath.Join(n.home, TrustFile))
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		n.trust = b
	} else if err := n.trust.Update(tc); err != nil {
		return fmt.Errorf("config: trust: %w", err)
	}
	if n.budget == nil {
		l, err := budget.New(cfg.Budget)
		if err != nil {
			return fmt.Errorf("config: budget: %w", err)
		}
		n.budget = l
	} else if err := n.budget.Update(cfg.Budget); err != nil {
		return fmt.Errorf("config: budget: %w", err)
	}
	return nil
}

// fileDigests hashes the files whose changes are audited.
func fileDigests(home string) map[string][32]byte {
	d := map[string][32]byte{}
	for _, f := range []string{config.FileName, policy.FileName} {
		if b, err := os.ReadFile(filepath.Join(home, f)); err == nil {
			d[f] = sha256.Sum256(b)
		}
	}
	return d
}

// auditConfigChange records a change of grants, peers or limits that a reload
// brought in: the new file's digest, so the log shows when rules changed.
func (n *Node) auditConfigChange(old, st *state) {
	if old == nil || n.audit == nil {
		return
	}
	for f, d := range st.digests {
		if old.digests[f] == d {
			continue
		}
		e := audit.Entry{Kind: audit.KindPolicyChanged, Outcome: "applied", ContentDigest: d[:]}
		e.Report, _ = json.Marshal(map[string]string{"file": f})
		if _, err := n.audit.Append(context.Background(), e); err != nil {
			n.log.Error("audit append of a configuration change failed", "err", err)
		}
	}
}
