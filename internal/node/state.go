package node

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/policy"
	"github.com/treaty-dev/treaty/internal/refusal"
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
	input    jsonSchema       // Info.InputSchema compiled (schema.go)
	output   jsonSchema       // Info.OutputSchema compiled (schema.go)

	// What it was built from, so a reload that leaves both unchanged keeps
	// it (reusable); src is nil for a Go handler.
	src *config.Capability
	lim wire.Limits
	// retry is set when its server did not describe it: every reload builds
	// it again, which asks again.
	retry bool
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

// reload reads treaty.yaml and policy.cedar and swaps in a new state, all or
// nothing: everything that can fail (parsing, backends, the gates' new
// configuration, the peer limiter) is built and checked before anything of the
// running node changes. A failure is kept (ConfigError) and audited once per
// distinct content, and the previous state stays in force.
func (n *Node) reload() error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	return n.applyFiles(readHomeFiles(n.home))
}

// reloadFiles is reload of content already read (the watcher's, read the
// same twice), so what is applied is what was checked.
func (n *Node) reloadFiles(files homeFiles) error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	// An explicit Reload (a CLI edit, a grant) may have applied newer files
	// since these were read: stale content is never applied over it, and the
	// next check reads what is on disk now.
	if readHomeFiles(n.home).key() != files.key() {
		return nil
	}
	return n.applyFiles(files)
}

// applyFiles is reload's work, with n.reloadMu held.
func (n *Node) applyFiles(files homeFiles) error {
	st, tc, lim, err := n.prepare(files)
	if err != nil {
		n.refuseConfig(files, err)
		return err
	}

	n.mu.Lock()
	old := n.state.Load()
	switch {
	case lim != nil && n.peerLim == nil:
		n.peerLim, n.limitMax = lim, st.limits.MaxConcurrentPerPeer
	case lim != nil:
		// The running limiter keeps counting the calls in flight; a fresh
		// one would let a peer run the old and the new limit at once.
		if err := n.peerLim.SetMax(lim.Max()); err == nil {
			n.limitMax = st.limits.MaxConcurrentPerPeer
		}
	}
	n.cfgErr = configError{}
	n.mu.Unlock()
	// Both configurations were validated by prepare, so these cannot fail
	// half-way; an error here is a bug and is reported, not hidden.
	if old != nil {
		if err := n.trust.Update(tc); err != nil {
			return fmt.Errorf("config: trust: %w", err)
		}
		if err := n.budget.Update(st.cfg.Budget); err != nil {
			return fmt.Errorf("config: budget: %w", err)
		}
	}
	// The change is on record before it takes effect (outside n.mu: it
	// writes SQLite).
	n.auditConfigChange(old, st)
	n.state.Store(st)
	if old != nil {
		if keys := config.StartOnlyChanges(old.cfg, st.cfg); len(keys) > 0 {
			n.log.Warn("configuration changed keys that apply only at the next start", "event", "config.restart_needed", "keys", keys)
		}
	}
	n.syncGroups(st)
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

// prepare builds the state files describe and checks everything the swap will
// apply. On the first load it also opens the trust book and the budgets. It
// changes nothing the running node uses.
func (n *Node) prepare(files homeFiles) (*state, trust.Config, *wire.PeerLimiter, error) {
	tc := trust.Config{}
	if files.missing[config.FileName] {
		return nil, tc, nil, fmt.Errorf("config: %s was deleted", filepath.Join(n.home, config.FileName))
	}
	if files.err != nil {
		return nil, tc, nil, files.err
	}
	cfg, err := config.Parse(files.cfg)
	if err != nil {
		return nil, tc, nil, fmt.Errorf("%w (in %s)", err, filepath.Join(n.home, config.FileName))
	}
	pol, err := policy.Parse(filepath.Join(n.home, policy.FileName), files.pol)
	if err != nil {
		return nil, tc, nil, err
	}
	limits := wire.Limits{
		MaxBodyBytes:         cfg.Limits.MaxBodyBytes,
		MaxHeaderBytes:       cfg.Limits.MaxHeaderBytes,
		TimeToFirstByte:      cfg.Limits.TimeToFirstByte.D(),
		CallTimeout:          cfg.Limits.CallTimeout.D(),
		MaxConcurrentPerPeer: cfg.Limits.MaxConcurrentPerPeer,
	}.WithDefaults()
	if err := limits.Validate(); err != nil {
		return nil, tc, nil, fmt.Errorf("config: limits: %w", err)
	}
	st := &state{
		digests: files.digests,
		cfg:     cfg,
		pol:     pol,
		peers:   map[identity.PublicKey]config.Peer{},
		byName:  map[string]identity.PublicKey{},
		caps:    map[string]*capability{},
		limits:  limits,
	}
	for _, p := range cfg.Peers {
		k, _ := identity.ParseDID(p.ID) // validated by config.Parse
		st.peers[k] = p
		st.byName[p.Name] = k
	}
	if st.caps, err = n.state.Load().capabilities(cfg.Capabilities, limits, n.backendLog()); err != nil { // redescribe.go
		return nil, tc, nil, err
	}
	tc = cfg.Trust
	tc.Logger, tc.Now = n.log, n.now
	if err := tc.Validate(); err != nil {
		return nil, tc, nil, fmt.Errorf("config: trust: %w", err)
	}
	if err := cfg.Budget.Validate(); err != nil {
		return nil, tc, nil, fmt.Errorf("config: budget: %w", err)
	}

	n.mu.Lock()
	for name, h := range n.funcs {
		st.caps[name] = &capability{Info: h.Info, Backend: h.Backend, Streamer: h.Streamer}
	}
	needLim := n.peerLim == nil || n.limitMax != limits.MaxConcurrentPerPeer
	n.mu.Unlock()
	var lim *wire.PeerLimiter
	if needLim {
		if lim, err = wire.NewPeerLimiter(limits.MaxConcurrentPerPeer); err != nil {
			return nil, tc, nil, fmt.Errorf("config: limits: %w", err)
		}
	}
	if n.trust == nil { // first load, inside Open: nothing runs yet
		if n.trust, err = trust.Open(tc, filepath.Join(n.home, TrustFile)); err != nil {
			return nil, tc, nil, fmt.Errorf("node: %w", err)
		}
	}
	if n.budget == nil {
		if n.budget, err = budget.New(cfg.Budget); err != nil {
			return nil, tc, nil, fmt.Errorf("config: budget: %w", err)
		}
	}
	return st, tc, lim, nil
}

// reusable is st's capability built from the same configuration and limits
// as c, or nil. Reusing it keeps its backend (an exec worker's processes, an
// http pool, an MCP server's session) across a reload that did not touch
// it: a peer's address moved by gossip, a grant, a limit elsewhere. An MCP
// tool's description is still asked again (redescribed).
func (st *state) reusable(c config.Capability, lim wire.Limits) *capability {
	if st == nil {
		return nil
	}
	cp := st.caps[c.Name]
	if cp == nil || cp.src == nil || cp.retry || cp.lim != lim || !reflect.DeepEqual(*cp.src, c) {
		return nil
	}
	return cp
}

// mcpDescribeTimeout bounds how long a reload waits for an MCP server to
// describe its tool.
const mcpDescribeTimeout = 2 * time.Second

// buildCapability makes c's backend. An http backend's connection pool is sized
// to the calls one peer may have in flight (lim.MaxConcurrentPerPeer); every
// backend's output (an exec stream's each event, an exec worker's answer) is
// bounded by lim.MaxBodyBytes. The pool and the workers
// a reload drops close themselves once idle (30 s, 1 min).
func buildCapability(c config.Capability, lim wire.Limits, log *slog.Logger) (*capability, error) {
	timeout := c.Timeout.D()
	if timeout == 0 {
		timeout = config.DefaultBackendTimeout
	}
	cp := &capability{Info: CapabilityInfo{
		Name: c.Name, Description: c.Description,
		InputSchema: c.InputSchema, OutputSchema: c.OutputSchema, Stream: c.Stream,
	}, src: &c, lim: lim}
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
		e := &backend.Exec{Argv: argv, Env: c.Exec.Env, EnvAllow: c.Exec.EnvAllow, Timeout: timeout, MaxOutput: int(min(lim.MaxBodyBytes, math.MaxInt32))}
		if c.Stream {
			cp.Streamer = e
		} else {
			cp.Backend = e
		}
	case c.HTTP != nil:
		if c.Stream {
			return nil, fmt.Errorf("config: capability %s: http backends cannot stream yet", c.Name)
		}
		cp.Backend = &backend.HTTP{URL: c.HTTP.URL, Timeout: timeout, Conns: lim.MaxConcurrentPerPeer, MaxOutput: int(min(lim.MaxBodyBytes, math.MaxInt32))}
	case c.MCP != nil:
		m := &backend.MCP{URL: c.MCP.URL, Tool: c.MCP.Tool, Timeout: timeout, MaxOutput: int(min(lim.MaxBodyBytes, math.MaxInt32)), Log: log}
		if c.MCP.Command != "" {
			argv, err := config.SplitCommand(c.MCP.Command)
			if err != nil {
				return nil, fmt.Errorf("config: capability %s: %w", c.Name, err)
			}
			m.Argv = argv
		}
		// The tool's description and input schema, unless the capability sets
		// its own. This starts the server now, but briefly: a reload carries
		// every other change too (a revocation among them), so a server that
		// is down or slow must not hold it up. Its calls then fail at the
		// backend stage until it answers, and it is started again per call.
		ctx, cancel := context.WithTimeout(context.Background(), min(timeout, mcpDescribeTimeout))
		desc, schema, err := m.Describe(ctx)
		cancel()
		if err != nil {
			log.Warn("mcp capability: the server did not describe its tool; the capability is kept and calls will retry the server",
				"capability", c.Name, "err", err)
			cp.retry = true
		}
		if cp.Info.Description == "" {
			cp.Info.Description = desc
		}
		if cp.Info.InputSchema == nil {
			cp.Info.InputSchema = serverSchema(c.Name, schema, log)
		}
		cp.Backend = m
	case c.A2A != nil:
		a2aCapability(cp, c, timeout, lim, log)
		cp.retry = cp.Info.Description == "" // the agent's card was not read (or says nothing)
	default:
		// Declared only; a Go handler registered through the embedding API
		// supplies the backend. Until then calls fail at the backend stage.
		cp.Backend = backend.Func(func(_ context.Context, _ backend.Invocation) ([]byte, error) {
			return nil, &backend.Failure{Reason: "no backend configured"}
		})
	}
	if err := cp.input.compile("input_schema", cp.Info.InputSchema); err != nil {
		return nil, fmt.Errorf("config: capability %s: %w", c.Name, err)
	}
	if err := cp.output.compile("output_schema", cp.Info.OutputSchema); err != nil {
		return nil, fmt.Errorf("config: capability %s: %w", c.Name, err)
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

// filesKey is the homeFiles.key of the content st was built from.
func (st *state) filesKey() string {
	return homeFiles{digests: st.digests}.key()
}

// homeFiles is one read of the configuration files: their bytes and digests,
// so the state built from them and the digests recorded with it always agree.
type homeFiles struct {
	cfg, pol []byte
	digests  map[string][32]byte // of each file present
	missing  map[string]bool     // files that do not exist
	err      error               // a file could not be read
}

// watchedFiles are the files whose changes a running node applies and audits.
var watchedFiles = []string{config.FileName, policy.FileName}

func readHomeFiles(home string) homeFiles {
	f := homeFiles{digests: map[string][32]byte{}, missing: map[string]bool{}}
	for _, name := range watchedFiles {
		b, err := readBounded(filepath.Join(home, name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			f.missing[name] = true
			continue
		case err != nil:
			f.err = errors.Join(f.err, err)
			continue
		}
		f.digests[name] = sha256.Sum256(b)
		if name == config.FileName {
			f.cfg = b
		} else {
			f.pol = b
		}
	}
	return f
}

// readBounded reads a configuration file, refusing one over the larger of the
// two files' limits (each parser applies its own).
func readBounded(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	limit := int64(max(config.MaxFileBytes, policy.MaxFileBytes))
	b, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("config: %s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// key identifies the content read, for "has this exact content been seen".
func (f homeFiles) key() string {
	var sb strings.Builder
	for _, name := range watchedFiles {
		if d, ok := f.digests[name]; ok {
			fmt.Fprintf(&sb, "%s:%x;", name, d)
		} else {
			fmt.Fprintf(&sb, "%s:-;", name)
		}
	}
	return sb.String()
}

// configError is the reason the files on disk are not the configuration in
// force: the content it was about (homeFiles.key) and when it was found.
type configError struct {
	key string
	msg string
	at  time.Time
}

// ConfigError reports why the configuration files on disk are not in force (the
// node keeps running on the last valid configuration), and since when. It is
// "" once a valid configuration has been applied.
func (n *Node) ConfigError() (string, time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfgErr.msg, n.cfgErr.at
}

// refuseConfig keeps the reason a reload failed. The first failure for a given
// content is logged and audited; the same content is not retried (see watch).
func (n *Node) refuseConfig(files homeFiles, err error) {
	key := files.key()
	n.mu.Lock()
	seen := n.cfgErr.key == key
	if !seen {
		n.cfgErr = configError{key: key, msg: err.Error(), at: n.now()}
	}
	n.mu.Unlock()
	if seen {
		return
	}
	n.log.Error("configuration not applied; the previous one stays in force until the files are fixed", "event", "config.invalid", "err", err)
	if n.audit == nil {
		return
	}
	report := map[string]any{"error": err.Error()}
	outcome := "refused"
	if old := n.state.Load(); old != nil {
		var changed []string
		for _, name := range watchedFiles {
			if d, ok := files.digests[name]; ok && d != old.digests[name] {
				changed = append(changed, name)
			} else if files.missing[name] && hasDigest(old, name) {
				changed = append(changed, name+" (deleted)")
			}
		}
		report["files"] = changed
	}
	e := audit.Entry{Kind: audit.KindPolicyChanged, Outcome: outcome, Stage: string(refusal.StageUsage)}
	e.Report, _ = json.Marshal(report)
	if _, aerr := n.audit.Append(context.Background(), e); aerr != nil {
		n.log.Error("audit append of a refused configuration change failed", "event", "audit.append_failed", "err", aerr)
	}
}

func hasDigest(st *state, name string) bool {
	_, ok := st.digests[name]
	return ok
}

// auditConfigChange records each file a reload changed: its new digest, or its
// deletion (a deleted policy.cedar means default deny for every peer), so the
// log shows when the rules changed. It is called without n.mu held.
func (n *Node) auditConfigChange(old, st *state) {
	if old == nil || n.audit == nil {
		return
	}
	for _, f := range watchedFiles {
		od, had := old.digests[f]
		d, has := st.digests[f]
		var e audit.Entry
		switch {
		case has && (!had || od != d):
			e = audit.Entry{Kind: audit.KindPolicyChanged, Outcome: "applied", ContentDigest: d[:]}
			e.Report, _ = json.Marshal(map[string]string{"file": f, "change": "modified"})
			n.log.Info("configuration change applied", "file", f)
		case had && !has:
			e = audit.Entry{Kind: audit.KindPolicyChanged, Outcome: "applied"}
			e.Report, _ = json.Marshal(map[string]string{"file": f, "change": "deleted"})
			n.log.Warn("configuration file deleted; applied as empty", "file", f, "effect", "no permits: every peer is denied")
		default:
			continue
		}
		if _, err := n.audit.Append(context.Background(), e); err != nil {
			n.log.Error("audit append of a configuration change failed", "event", "audit.append_failed", "err", err)
		}
	}
}
