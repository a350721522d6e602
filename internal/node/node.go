// Package node is the federation pipeline: it wires identity, transport, wire
// protocol, trust, authorization, budgets, sanitization, screening, backends and
// the audit log into one call path, outbound and inbound, in the order of
// docs/architecture.md ("The call path"):
//
//	identity -> transport -> authorization -> budgets -> sanitization -> (consensus) -> audit
//
// Around that path it runs the node's consensus groups, gossip membership and
// admission, relays, and the witnessing of peers' audit logs.
//
// A Node reloads treaty.yaml and policy.cedar while it runs (within ReloadInterval),
// so CLI changes take effect without a restart; an invalid file is logged and the
// previous state is kept. Every refusal is a *refusal.Error naming its stage.
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/screen"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/internal/trust"
	"github.com/treaty-dev/treaty/internal/wire"
)

// KeyFile is the identity key inside a home directory.
const KeyFile = homedir.KeyFile

// VaultFile holds the pseudonym mapping (mode 0600) inside a home directory.
const VaultFile = homedir.VaultFile

// TrustFile holds the persisted trust scores inside a home directory.
const TrustFile = homedir.TrustFile

// ReplayJournalFile journals the nonces of accepted requests (mode 0600),
// with ReplayJournalFile+".old", inside a home directory.
const ReplayJournalFile = "replay.journal"

// Options configures Open. Home is required.
type Options struct {
	Home           string           // required: the node's home directory
	Logger         *slog.Logger     // nil: slog.Default()
	Now            func() time.Time // nil: time.Now
	ReloadInterval time.Duration    // zero: 200ms; how often config files are checked for changes
	// ClientHelloTimeout is how long an accepted connection may take to send
	// its ClientHello. Zero: the transport's default (500ms), which keeps a
	// silent client from holding a handshake slot; tests under -race on a
	// loaded machine raise it.
	ClientHelloTimeout time.Duration
}

// Node is one treaty node. Its methods are safe for concurrent use.
type Node struct {
	home string
	key  identity.PrivateKey
	self identity.PublicKey
	log  *slog.Logger
	now  func() time.Time

	reloadEvery time.Duration
	tr          *transport.Transport
	client      *http.Client
	verifier    *wire.Verifier

	state          atomic.Pointer[state]
	audit          *audit.Log // the tamper-evident log of every cross-boundary action
	witnessMu      sync.Mutex
	witnessPending map[identity.PublicKey][]byte // latest checkpoint per peer, not yet judged
	witnessWake    chan struct{}
	sanitizer      *sanitize.Sanitizer                // outbound scrubbing and the pseudonym vault
	logSanitizer   atomic.Pointer[sanitize.Sanitizer] // sanitizer once Open made it, for backends' log lines
	screener       *screen.Screener                   // inbound screening
	trust          *trust.Book                        // behavioural trust per peer; persisted in trust.json
	budget         *budget.Limiter                    // rate, concurrency, bytes, cost, breakers
	groups         *nodeGroups                        // consensus groups (groups.go)

	reloadMu     sync.Mutex // serialises reloads (the watcher, Reload, Register)
	mu           sync.Mutex // guards funcs, cfgErr, peerLim, limitMax
	cfgErr       configError
	funcs        map[string]*Handler
	refusedSlots chan struct{}   // bounds concurrent audit appends of handshake refusals
	refusals     *refusalTallies // aggregates refusals anyone can cause (refusals.go)
	inFlight     inFlightCalls   // backend tokens -> requests being served (delegation)
	peerLim      *wire.PeerLimiter
	limitMax     int
	obs          observer  // metrics (metrics.go)
	adm          admission // invites, introductions, rotations, revocations (membership.go)
	gov          governor  // admission and revocation by the governing group (governor.go)
	moves        addrMoves // address moves learned by gossip, paced per peer (addrmoves.go)

	closeOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// Open loads the home directory and prepares the node; Start makes it serve.
func Open(opts Options) (_ *Node, err error) {
	if opts.Home == "" {
		return nil, errors.New("node: Options.Home is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReloadInterval == 0 {
		opts.ReloadInterval = 200 * time.Millisecond
	}
	if opts.ReloadInterval < 10*time.Millisecond || opts.ReloadInterval > time.Second {
		return nil, fmt.Errorf("node: Options.ReloadInterval %v outside [10ms, 1s]", opts.ReloadInterval)
	}
	if err := checkHomeMode(opts.Home); err != nil {
		return nil, err
	}
	if err := finishRotation(opts.Home); err != nil { // a key rotation waiting for a restart (rotate.go)
		return nil, err
	}
	key, err := identity.LoadKeyFile(filepath.Join(opts.Home, KeyFile))
	if err != nil {
		return nil, err
	}
	n := &Node{
		home:           opts.Home,
		key:            key,
		self:           key.Public(),
		log:            opts.Logger.With("node", key.Public().Short()),
		now:            opts.Now,
		reloadEvery:    opts.ReloadInterval,
		funcs:          map[string]*Handler{},
		refusedSlots:   make(chan struct{}, 64),
		refusals:       newRefusalTallies(refusalInterval, refusalMaxKeys),
		witnessPending: map[identity.PublicKey][]byte{},
		witnessWake:    make(chan struct{}, 1),
	}
	defer func() {
		if err != nil {
			n.closeParts() // whatever was opened before the failure
		}
	}()
	// Configuration first: it also opens the trust book and the budgets.
	if err := n.reload(); err != nil {
		return nil, err
	}
	st := n.state.Load()
	n.tr, err = transport.New(transport.Config{
		Identity:       key,
		Peers:          n,
		Listen:         st.cfg.Listen,
		MaxHeaderBytes: st.limits.MaxHeaderBytes,
		DisableTreaty2: st.cfg.FederationProtocol == "treaty/1",
		Now:            opts.Now,
		Logger:         n.log,
		OnRefused:      n.handshakeRefused,
		KnownAddrs:     newPeerAddrs(n),

		ClientHelloTimeout: opts.ClientHelloTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.client = &http.Client{Transport: n.tr.RoutedRoundTripper(n.route)} // relay.go
	// The wire layer enforces the hard cap on chain length and checks every
	// hop's signature; budget.max_depth (live-reloadable) is applied per call.
	// The replay window is journaled in the home, so a restart does not
	// forget the requests already served (ADR 0024).
	journal, err := wire.OpenReplayJournal(wire.ReplayJournalConfig{Path: filepath.Join(opts.Home, ReplayJournalFile), Now: opts.Now(), Logger: n.log})
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if n.verifier, err = wire.NewVerifier(wire.VerifierConfig{Self: n.self, MaxDepth: wire.MaxChainHops, Journal: journal}); err != nil {
		journal.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	ac := st.cfg.Audit // space limits apply from Open; changing them needs a restart
	if n.audit, err = audit.Open(context.Background(), audit.Config{Path: filepath.Join(opts.Home, AuditFile), Identity: key, Logger: n.log,
		MaxBytes: ac.MaxBytes, MinFreeBytes: ac.MinFreeBytes}); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.trust.OnLevelChange(n.auditLevelChange)
	pkey, err := key.DeriveKey("pseudonym")
	if err != nil {
		return nil, err
	}
	if n.sanitizer, err = sanitize.New(sanitizerConfig(key, pkey, filepath.Join(opts.Home, VaultFile), st.cfg, opts.Now)); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.logSanitizer.Store(n.sanitizer) // logscrub.go
	if n.screener, err = screen.New(screen.Config{}); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := n.openGroups(); err != nil {
		return nil, err
	}
	return n, nil
}

// checkHomeMode refuses a home that group or others can write: they could
// replace treaty.yaml, policy.cedar or audit.db under the node.
func checkHomeMode(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("node: home: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("node: home %s is not a directory", dir)
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		return fmt.Errorf("node: home %s is writable by group or others (mode %04o); fix it with: chmod 700 %s", dir, m, dir)
	}
	return nil
}

// closeParts closes what Open opened, in reverse order; nil parts are skipped.
func (n *Node) closeParts() error {
	var err error
	if n.tr != nil {
		err = n.tr.Close()
	}
	if n.sanitizer != nil {
		err = errors.Join(err, n.sanitizer.Close())
	}
	if n.audit != nil {
		err = errors.Join(err, n.audit.Close())
	}
	if n.verifier != nil {
		err = errors.Join(err, n.verifier.Close())
	}
	if n.trust != nil {
		err = errors.Join(err, n.trust.Close())
	}
	return err
}

// ID returns this node's peer ID.
func (n *Node) ID() identity.PublicKey { return n.self }

// Name returns this node's nickname.
func (n *Node) Name() string { return n.state.Load().cfg.Name }

// Home returns the home directory.
func (n *Node) Home() string { return n.home }

// Addr returns the bound federation address, or nil before Start.
func (n *Node) Addr() net.Addr { return n.tr.Addr() }

// Start binds the federation port and serves until ctx ends or Close.
func (n *Node) Start(ctx context.Context) error {
	ctx, n.cancel = context.WithCancel(ctx)
	n.startGovernor(ctx) // before the groups, which report passed motions to it
	n.startGroups()      // their protocols are registered before the port opens
	if err := n.startMetrics(ctx); err != nil {
		n.cancel()
		return fmt.Errorf("node: %w", err)
	}
	if err := n.startAdmission(ctx); err != nil {
		n.cancel()
		return err
	}
	runRelay, err := n.prepareRelay() // relay.go: its protocol is registered before the port opens
	if err != nil {
		n.cancel()
		return err
	}
	if err := n.tr.Start(ctx); err != nil {
		n.cancel()
		return fmt.Errorf("node: %w", err)
	}
	if runRelay != nil {
		runRelay(ctx)
	}
	if err := n.startGossip(ctx); err != nil {
		n.cancel()
		return err
	}
	n.wg.Add(5)
	go func() {
		defer n.wg.Done()
		n.runRefusalFlush(ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.runWitness(ctx, n.witnessInterval())
	}()
	go func() {
		defer n.wg.Done()
		n.runRetention(ctx)
	}()
	go func() {
		defer n.wg.Done()
		if err := n.tr.ServeHTTP(ctx, http.HandlerFunc(n.serveFederation)); err != nil && ctx.Err() == nil {
			n.log.Error("federation server stopped", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		n.watch(ctx)
	}()
	n.log.Info("node up", "id", n.self, "addr", n.tr.Addr())
	return nil
}

// Close stops serving and releases the port. It is idempotent.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		if n.cancel != nil {
			n.cancel()
		}
		if n.adm.left != nil {
			<-n.adm.left // the goodbye needs the transport: members then see a leave, not a failure
		}
		err = n.closeGroups()                // engines first: they use the transport and the audit log
		err = errors.Join(err, n.tr.Close()) // stop serving first; a handler still running finds the log closed and refuses
		n.wg.Wait()
		err = errors.Join(err, n.adm.closeHeld())   // after every handler: the last save of held statements (membership.go)
		n.flushRefusals(context.Background(), true) // the counts of the last interval
		err = errors.Join(err, n.closeParts())
	})
	return err
}

// Admitted implements transport.PeerSource: only keys in the peer book may
// finish a handshake.
func (n *Node) Admitted(k identity.PublicKey) bool {
	_, ok := n.state.Load().peers[k]
	return ok && n.adm.refusedWhy(k) == "" // revoked or superseded keys: membership.go
}

// handshakeRefused audits a refused handshake (the transport has logged it),
// aggregated per source address (refusals.go): strangers can cause refusals
// at will. It must not block the handshake, so the append runs on its own
// goroutine, bounded so that refusals cannot pile up goroutines.
func (n *Node) handshakeRefused(e transport.HandshakeError) {
	k := refusalKey{source: strangerSource(e.Addr), kind: audit.KindHandshakeRefused, direction: "in", stage: string(refusal.StageTransport)}
	if e.Side == "client" {
		k.direction = "out"
	}
	if !n.refusalAdmitted(k, e.Reason.String()) {
		return // counted into the key's next aggregated entry
	}
	select {
	case n.refusedSlots <- struct{}{}:
	default:
		n.log.Warn("audit: too many handshake refusals in flight; not recording one", "event", "audit.refusal_dropped", "addr", e.Addr, "reason", e.Reason)
		return
	}
	go func() {
		defer func() { <-n.refusedSlots }()
		entry := audit.Entry{Kind: k.kind, Direction: k.direction, Outcome: "refused", Stage: k.stage}
		if !e.Peer.IsZero() {
			entry.Peer = e.Peer.String()
		}
		entry.Report, _ = json.Marshal(map[string]any{"side": e.Side, "addr": e.Addr, "reason": e.Reason.String()})
		if _, err := n.audit.Append(context.Background(), entry); err != nil {
			n.log.Error("audit append of a handshake refusal failed", "event", "audit.append_failed", "err", err)
		}
	}()
}

func (n *Node) resolveAddr(_ context.Context, k identity.PublicKey) (string, error) {
	p, ok := n.state.Load().peers[k]
	if !ok {
		return "", refusal.New(refusal.StageResolve, "peer %s is not in the peer book", k.Short())
	}
	return p.Addr, nil
}

// Peer is a resolved entry of the peer book.
type Peer struct {
	Name    string
	ID      identity.PublicKey
	Addr    string
	Breaker string // outbound circuit breaker: closed, open or half-open (Peers only)
}

// Resolve finds a peer by did:key or nickname; it must be in the peer book.
func (n *Node) Resolve(ref string) (Peer, error) {
	st := n.state.Load()
	if k, ok := st.byName[ref]; ok {
		p := st.peers[k]
		return Peer{Name: p.Name, ID: k, Addr: p.Addr}, nil
	}
	k, err := identity.ParseDID(ref)
	if err != nil {
		return Peer{}, refusal.New(refusal.StageResolve, "unknown peer %q (not a nickname in the peer book, nor a did:key)", ref)
	}
	p, ok := st.peers[k]
	if !ok {
		return Peer{}, refusal.New(refusal.StageResolve, "peer %s is not in the peer book", k.Short())
	}
	return Peer{Name: p.Name, ID: k, Addr: p.Addr}, nil
}

// Peers lists the peer book, sorted by name.
func (n *Node) Peers() []Peer {
	st := n.state.Load()
	out := make([]Peer, 0, len(st.peers))
	now := n.now()
	for k, p := range st.peers {
		out = append(out, Peer{Name: p.Name, ID: k, Addr: p.Addr, Breaker: n.budget.BreakerState(k.String(), now)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Reload re-reads treaty.yaml and policy.cedar now.
func (n *Node) Reload() error { return n.reload() }

// watch applies changes of the configuration files, and the peer address
// moves gossip held back (addrmoves.go), on every tick.
func (n *Node) watch(ctx context.Context) {
	t := time.NewTicker(n.reloadEvery)
	defer t.Stop()
	var w watcher
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.applyDueMoves(ctx)
			n.watchTick(&w)
		}
	}
}

// watcher is what watch remembers between ticks.
type watcher struct {
	last string // the files' stamp at the last read
	cand string // content read at the last tick and not yet applied; "" none
}

// watchTick is one check of the configuration files. A cheap stat of each
// file comes first; only when it changed, or the file is younger than
// recentlyWritten (timestamps are coarse and inodes reused, so two quick
// writes of the same size can look alike), are the files read and compared by
// digest. New content is applied only once two consecutive ticks read it the
// same: an editor that truncates and rewrites a file in place can be caught
// half-way, and a torn file can still parse (a list cut short drops a peer or
// a rule). Content that failed once is not retried until it changes, so an
// invalid edit is logged once, not on every tick.
func (n *Node) watchTick(w *watcher) {
	stamp, recent := n.statFiles()
	if stamp == w.last && !recent && w.cand == "" {
		return
	}
	w.last = stamp
	files := readHomeFiles(n.home)
	key := files.key()
	n.mu.Lock()
	failed := n.cfgErr.key == key
	inForce := key == n.state.Load().filesKey()
	if inForce && n.cfgErr.msg != "" {
		n.cfgErr = configError{} // the files were put back as they are in force
		n.log.Info("configuration files match the running configuration again")
	}
	n.mu.Unlock()
	if failed || inForce {
		w.cand = ""
		return
	}
	if key != w.cand {
		w.cand = key // read it again at the next tick
		return
	}
	w.cand = ""
	n.reloadFiles(files) // a failure is logged and kept by refuseConfig
}

// recentlyWritten is how long after its last change a file is compared by
// content on every tick, not only by its stat.
const recentlyWritten = 2 * time.Second

// statFiles summarises the files' size, times and inode, and reports whether
// one changed within recentlyWritten.
func (n *Node) statFiles() (stamp string, recent bool) {
	now := time.Now()
	for _, f := range watchedFiles {
		fi, err := os.Stat(filepath.Join(n.home, f))
		if err != nil {
			stamp += f + ":-;"
			continue
		}
		var ino uint64
		var ctime int64
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino, ctime = sys.Ino, sys.Ctim.Nano()
		}
		stamp += fmt.Sprintf("%s:%d:%d:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano(), ctime, ino)
		if now.Sub(fi.ModTime()) < recentlyWritten || now.Sub(time.Unix(0, ctime)) < recentlyWritten {
			recent = true
		}
	}
	return stamp, recent
}
