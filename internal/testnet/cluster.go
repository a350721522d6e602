package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/internal/api"
	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/policy"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// Options configures NewCluster. The zero value is a full mesh of nodes named
// n0, n1, ...
type Options struct {
	// Names are the nodes' nicknames, one per node; nil: n0, n1, ...
	Names []string
	// Config is YAML appended to a node's treaty.yaml before it opens, by name.
	Config map[string]string
	// Unfederated leaves the peer books empty; Federate and AddPeer fill them.
	Unfederated bool
	// ReloadInterval is how often nodes look for edited config files. Zero: 10ms.
	ReloadInterval time.Duration
}

// Cluster is N real nodes in this process: each has its own home (identity
// key, treaty.yaml, policy.cedar, SQLite audit log), its federation port on
// 127.0.0.1:0 with real mTLS, and its local API socket, so the client package
// and everything behind it run exactly as for an agent. All nodes share Clock.
// Everything is closed when the test ends; a failed test gets each node's log.
//
// The cluster writes every peer book entry itself (Federate, AddPeer, Start
// after Stop), so a fault layer can later route a link through a proxy by
// changing the address it writes.
type Cluster struct {
	Clock   *Clock
	Members []*Member

	dir    string
	reload time.Duration
}

// NewCluster starts n nodes side by side, federated with each other unless
// opts.Unfederated. A node takes about 0.1s to open under -race; the first in
// a process also compiles the sanitizer's rule set (seconds, once).
func NewCluster(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.Names != nil && len(opts.Names) != n {
		t.Fatalf("testnet: %d Names for %d nodes", len(opts.Names), n)
	}
	if opts.ReloadInterval == 0 {
		opts.ReloadInterval = 10 * time.Millisecond
	}
	// A short home path: the local API socket must fit in sun_path (108 bytes).
	dir, err := os.MkdirTemp("", "tn")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Clock: &Clock{}, dir: dir, reload: opts.ReloadInterval}
	t.Cleanup(func() { c.close(t) })
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		if opts.Names != nil {
			name = opts.Names[i]
		}
		c.Members = append(c.Members, c.create(t, name, opts.Config[name]))
	}
	// Opening a node is mostly CPU (keys, SQLite, rule sets): do it side by side.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range c.Members {
		wg.Go(func() { errs[i] = m.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if !opts.Unfederated {
		for _, m := range c.Members {
			var peers []*Member
			for _, p := range c.Members {
				if p != m {
					peers = append(peers, p)
				}
			}
			m.learn(t, peers...)
		}
	}
	return c
}

// Member returns the node named name, or nil.
func (c *Cluster) Member(name string) *Member {
	for _, m := range c.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Add starts one more node, known to nobody; yaml is appended to its treaty.yaml.
func (c *Cluster) Add(t testing.TB, name, yaml string) *Member {
	t.Helper()
	m := c.create(t, name, yaml)
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
	c.Members = append(c.Members, m)
	return m
}

// Federate puts a and b in each other's peer book.
func (c *Cluster) Federate(t testing.TB, a, b *Member) {
	t.Helper()
	a.learn(t, b)
	b.learn(t, a)
}

func (c *Cluster) create(t testing.TB, name, yaml string) *Member {
	t.Helper()
	m := &Member{Name: name, Home: filepath.Join(c.dir, name), c: c, log: &syncBuffer{}}
	id, err := home.Init(m.Home, name, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.ID = id
	if yaml != "" {
		if err := appendTo(filepath.Join(m.Home, config.FileName), yaml); err != nil {
			t.Fatal(err)
		}
	}
	m.cl = client.New(m.Home)
	sock := filepath.Join(m.Home, api.SocketName)
	m.socket = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	return m
}

func (c *Cluster) close(t testing.TB) {
	for _, m := range c.Members {
		if err := m.stop(); err != nil {
			t.Errorf("testnet: closing %s: %v", m.Name, err)
		}
	}
	if t.Failed() {
		for _, m := range c.Members {
			t.Logf("--- log of %s (%s):\n%s", m.Name, m.ID.Short(), tail(m.Log(), 32<<10))
		}
	}
	os.RemoveAll(c.dir)
}

// Member is one node of a Cluster. Methods that edit the home reload the node
// before they return, so their effect is in place for the next call.
type Member struct {
	Name string
	Home string
	ID   identity.PublicKey

	c   *Cluster
	log *syncBuffer
	cl  *client.Client
	// socket is a plain HTTP client of the local API, for what client.Client
	// takes from the environment (the delegation token).
	socket *http.Client

	mu       sync.Mutex // guards the fields below
	n        *node.Node // nil while stopped
	srv      *api.Server
	cancel   context.CancelFunc
	served   chan struct{}
	handlers []node.Handler // Go capabilities, registered again on restart
}

// Node returns the running node (nil while stopped).
func (m *Member) Node() *node.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

// Addr returns the federation address the node is bound to ("" while stopped).
func (m *Member) Addr() string {
	if n := m.Node(); n != nil {
		return n.Addr().String()
	}
	return ""
}

// Client returns a client of the node's local API, as an agent would use.
func (m *Member) Client() *client.Client { return m.cl }

// Log returns what the node has logged so far.
func (m *Member) Log() string { return m.log.String() }

// Start starts a stopped node. It binds a new port: every member whose peer
// book holds this node learns the new address.
func (m *Member) Start(t testing.TB) {
	t.Helper()
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
	for _, o := range m.c.Members {
		if o == m {
			continue
		}
		cfg, err := config.Load(o.Home)
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := cfg.Peer(m.ID.String()); ok {
			if err := home.AddPeer(o.Home, p.Name, m.Addr(), p.ID); err != nil {
				t.Fatal(err)
			}
			o.Reload(t)
		}
	}
}

// Stop closes the node and its local API, as a clean shutdown does.
func (m *Member) Stop(t testing.TB) {
	t.Helper()
	if err := m.stop(); err != nil {
		t.Fatal(err)
	}
}

func (m *Member) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n != nil {
		return fmt.Errorf("testnet: %s is already running", m.Name)
	}
	log := slog.New(slog.NewTextHandler(m.log, nil)).With("member", m.Name)
	n, err := node.Open(node.Options{Home: m.Home, Logger: log, Now: m.c.Clock.Now, ReloadInterval: m.c.reload,
		// One process runs every member's and every test's goroutines: under
		// -race on a loaded machine a client can take over the production
		// 500ms to send its ClientHello.
		ClientHelloTimeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("testnet: open %s: %w", m.Name, err)
	}
	for _, h := range m.handlers {
		if err := n.Register(h); err != nil {
			n.Close()
			return fmt.Errorf("testnet: %s: %w", m.Name, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := n.Start(ctx); err != nil {
		cancel()
		n.Close()
		return fmt.Errorf("testnet: start %s: %w", m.Name, err)
	}
	srv, err := api.Listen(n, log)
	if err != nil {
		cancel()
		n.Close()
		return fmt.Errorf("testnet: %s: %w", m.Name, err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ctx); err != nil {
			log.Error("local API stopped", "err", err)
		}
	}()
	m.n, m.srv, m.cancel, m.served = n, srv, cancel, served
	return nil
}

func (m *Member) stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		return nil
	}
	m.cancel()
	err := m.srv.Close()
	<-m.served
	err = errors.Join(err, m.n.Close())
	m.n, m.srv = nil, nil
	return err
}

// learn adds peers to m's peer book at their current addresses, in one edit.
func (m *Member) learn(t testing.TB, peers ...*Member) {
	t.Helper()
	cfg, err := config.Load(m.Home)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		entry := config.Peer{Name: p.Name, ID: p.ID.String(), Addr: p.Addr()}
		known := false
		for i := range cfg.Peers {
			if cfg.Peers[i].ID == entry.ID {
				cfg.Peers[i], known = entry, true
			}
		}
		if !known {
			cfg.Peers = append(cfg.Peers, entry)
		}
	}
	if err := config.Save(m.Home, cfg); err != nil {
		t.Fatal(err)
	}
	m.Reload(t)
}

// AddPeer puts peer in m's peer book (one way: peer does not learn m).
func (m *Member) AddPeer(t testing.TB, peer *Member) {
	t.Helper()
	m.learn(t, peer)
}

// AddPeerAt puts an arbitrary key and address in m's peer book, as
// `treaty peer add` does.
func (m *Member) AddPeerAt(t testing.TB, name, addr, id string) {
	t.Helper()
	if err := home.AddPeer(m.Home, name, addr, id); err != nil {
		t.Fatal(err)
	}
	m.Reload(t)
}

// Reload makes a running node re-read its files now.
func (m *Member) Reload(t testing.TB) {
	t.Helper()
	if n := m.Node(); n != nil {
		if err := n.Reload(); err != nil {
			t.Fatalf("testnet: reload %s: %v", m.Name, err)
		}
	}
}

// Expose adds or replaces a capability in treaty.yaml, as `treaty expose
// --replace` does.
func (m *Member) Expose(t testing.TB, cp config.Capability) {
	t.Helper()
	if err := home.Expose(m.Home, cp, true); err != nil {
		t.Fatal(err)
	}
	m.Reload(t)
}

// ExposeExec exposes name backed by a shell script (run with /bin/sh).
func (m *Member) ExposeExec(t testing.TB, name, script string) {
	t.Helper()
	m.Expose(t, config.Capability{Name: name, Exec: &config.ExecBackend{Command: WriteScript(t, script)}})
}

// Handle registers a Go capability; it survives restarts.
func (m *Member) Handle(t testing.TB, name string, f backend.Func) {
	t.Helper()
	h := node.Handler{Info: node.CapabilityInfo{Name: name}, Backend: f}
	m.mu.Lock()
	m.handlers = append(m.handlers, h)
	n := m.n
	m.mu.Unlock()
	if n != nil {
		if err := n.Register(h); err != nil {
			t.Fatal(err)
		}
	}
}

// Grant lets peer list and call capability, as `treaty grant` does.
func (m *Member) Grant(t testing.TB, peer, capability string) {
	t.Helper()
	if _, err := home.Grant(m.Home, peer, capability); err != nil {
		t.Fatal(err)
	}
	m.Reload(t)
}

// AppendConfig appends YAML to treaty.yaml and reloads.
func (m *Member) AppendConfig(t testing.TB, yaml string) {
	t.Helper()
	if err := appendTo(filepath.Join(m.Home, config.FileName), yaml); err != nil {
		t.Fatal(err)
	}
	m.Reload(t)
}

// AppendPolicy appends Cedar to policy.cedar and reloads.
func (m *Member) AppendPolicy(t testing.TB, cedar string) {
	t.Helper()
	if err := appendTo(filepath.Join(m.Home, policy.FileName), cedar); err != nil {
		t.Fatal(err)
	}
	m.Reload(t)
}

// Outcome is what `treaty call` would report: the output, the error, and the
// exit code the CLI maps that error to.
type Outcome struct {
	Out  string
	Err  error
	Code int
}

func (o Outcome) String() string {
	if o.Err != nil {
		return fmt.Sprintf("exit %d: %v", o.Code, o.Err)
	}
	return fmt.Sprintf("exit 0: %s", o.Out)
}

// Call calls capability on peer through the node's local API, like
// `treaty call`; input "" is {}.
func (m *Member) Call(t testing.TB, peer, capability, input string) Outcome {
	t.Helper()
	var in json.RawMessage
	if input != "" {
		in = json.RawMessage(input)
	}
	res, err := m.cl.Call(t.Context(), peer, capability, in)
	if err != nil {
		return Outcome{Err: err, Code: refusal.ExitCode(err)}
	}
	return Outcome{Out: string(res.Output)}
}

// MustCall is Call that fails the test unless the call succeeds.
func (m *Member) MustCall(t testing.TB, peer, capability, input string) string {
	t.Helper()
	o := m.Call(t, peer, capability, input)
	if o.Err != nil {
		t.Fatalf("%s: call %s %s: %v", m.Name, peer, capability, o)
	}
	return o.Out
}

// CallWithin calls capability on peer on behalf of the inbound call that
// token names (a backend's Invocation.CallToken), through the local API, as
// `treaty call` run by an exec backend with TREATY_CALL set does.
func (m *Member) CallWithin(ctx context.Context, token, peer, capability string, input json.RawMessage) (json.RawMessage, error) {
	body, err := json.Marshal(api.CallRequest{Peer: peer, Capability: capability, Input: input, Within: token})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://treaty/v1/call", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := m.socket.Do(req)
	if err != nil {
		return nil, fmt.Errorf("testnet: %s local API: %w", m.Name, err)
	}
	defer resp.Body.Close()
	var out struct {
		api.CallResponse
		Error *api.ErrorBody `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, api.MaxRequestBytes)).Decode(&out); err != nil {
		return nil, fmt.Errorf("testnet: %s local API answered HTTP %d: %w", m.Name, resp.StatusCode, err)
	}
	if out.Error != nil {
		return nil, &refusal.Error{Stage: refusal.Stage(out.Error.Stage), Reason: out.Error.Reason, Remote: out.Error.Remote}
	}
	return out.Output, nil
}

// Audit lists the node's audit log entries that match f, as `treaty audit ls`.
func (m *Member) Audit(t testing.TB, f audit.Filter) []audit.Entry {
	t.Helper()
	r, err := audit.OpenReader(t.Context(), filepath.Join(m.Home, node.AuditFile))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	entries, err := r.List(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// WriteScript writes an executable /bin/sh script (body without the #! line)
// and returns its path, for exec backends.
func WriteScript(t testing.TB, body string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "backend*.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.WriteString(f, "#!/bin/sh\n"+body); err != nil {
		t.Fatal(err)
	}
	if err := f.Chmod(0o700); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func appendTo(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}

// tail returns the last max bytes of s.
func tail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return "...\n" + s[len(s)-max:]
}

// syncBuffer is a bytes.Buffer safe for a writer and a test reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
