// Package raftengine is the consensus.Engine for groups inside one
// organisation: hashicorp/raft over the group's consensus.Network (pinned-key
// mutual TLS, one ALPN protocol per group), with its log, stable store and
// decision records in one SQLite file and its snapshots in files.
//
// It guarantees that every member applies the same entries in the same order
// to its fsm.Machine, exactly once, and that an entry Propose reported as
// applied survives the loss of any minority of members. Raft tolerates
// crashed members, not lying ones: the leader's time stamp is trusted and
// decision records carry no certificate (see ADR 0011).
package raftengine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// Limits and timings. They are fixed rather than configured (ADR 0011
// lists them); tests shorten only raft's clock (see timing).
const (
	// maxAppendEntries is raft's batch: entries per AppendEntries and per
	// StoreLogs transaction, and commands per ApplyBatch.
	maxAppendEntries = 256
	// transportPool is raft's idle connection pool per peer. With one
	// forwarding connection this stays within the transport's default 4
	// accepted connections per peer and protocol (no pipeline connection:
	// MaxRPCsInFlight is 1).
	transportPool = 2
	// rpcTimeout bounds one raft RPC (not InstallSnapshot, which scales).
	rpcTimeout = 10 * time.Second
	// snapshotRetain is how many snapshots stay on disk.
	snapshotRetain = 2
	// logCache is how many recent entries raft keeps in memory.
	logCache = 1024
	// changeTimeout bounds one AddVoter or RemoveServer.
	changeTimeout = 10 * time.Second
	// reconcileEvery re-checks raft's configuration against the group even
	// without a trigger (a change that failed is retried).
	reconcileEvery = 2 * time.Second
	// leaderPoll is how often a proposal waiting for a leader looks again.
	leaderPoll = 20 * time.Millisecond

	dbFile       = "raft.db"
	snapshotsDir = "snapshots"
	genesisKey   = "treaty-genesis"
)

// timing is raft's clock. New uses defaultTiming; tests shorten it.
type timing struct {
	heartbeat, election, lease, commit time.Duration
	trailingLogs                       uint64 // entries kept after a snapshot; 0: raft's default
}

func defaultTiming() timing {
	// CommitTimeout 10ms: how soon an idle follower learns the commit index,
	// which bounds a forwarded proposal's and a follower read's extra wait.
	return timing{heartbeat: time.Second, election: time.Second, lease: 500 * time.Millisecond, commit: 10 * time.Millisecond}
}

// Engine runs one member of a Raft group. Its methods are safe for
// concurrent use.
type Engine struct {
	cfg     consensus.EngineConfig
	self    identity.PublicKey
	log     *slog.Logger
	genesis fsm.Group
	tm      timing
	// reported is the delivered mark stored before this start: OnApply is
	// not called again for entries up to it that the restart replays;
	// reportedCursor is the consumer's position stored with it. Written
	// before raft starts, read only by the apply goroutine.
	reported, reportedCursor uint64
	// lastCursor and pendingWait are the consumer's last FlushApplied
	// answer (apply goroutine, or the catch-up while it waits).
	lastCursor  uint64
	pendingWait func() error
	// marks feeds the marker (marker.go); stuck is set when the consumer
	// failed to flush: the mark stays where it was for the rest of this run.
	marks chan markJob
	stuck atomic.Bool
	// catching is the fetch of a snapshot's skipped records, if one runs
	// (catchup.go); only the apply goroutine reads or sets it.
	catching *catchUp
	ready    chan struct{} // closed once start has set raft
	// maybeReported is the highest index this member held at start (in its
	// log or its latest snapshot): entries above reported and up to it may
	// have reached OnApply before the restart.
	maybeReported uint64

	mu     sync.RWMutex // guards m and canon
	m      *fsm.Machine
	canon  *canonGroup // the group's canonical encoding for records, per epoch
	member atomic.Bool // Self is in m's group; set with every change of it

	store *store
	snaps *raft.FileSnapshotStore
	mux   *mux
	trans *raft.NetworkTransport
	raft  *raft.Raft
	watch *watch
	fwd   *forwarder

	submitMu  sync.Mutex // orders stamping and enqueueing of local proposals
	lastTime  int64      // the last stamp, under submitMu
	leaderKey atomic.Pointer[cachedKey]

	poke      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

var _ consensus.Engine = (*Engine)(nil)

// New starts the engine of cfg.Group for cfg.Self. On first start it keeps
// cfg.Group as the group's genesis and, if it is epoch 0 and lists Self,
// bootstraps raft with its members (every founding member does the same, so
// the bootstraps agree); a member added later starts from the genesis
// definition, not bootstrapped, and waits for the leader to add it. On
// restart the stored genesis and state are used and cfg.Group must name the
// same group (name and mode; an epoch-0 cfg.Group must equal the genesis).
// cfg.MaxSkew and cfg.OnEvidence are not used: Raft members trust the
// leader's clock and do not lie (ADR 0011). Close closes cfg.Net's listener.
func New(ctx context.Context, cfg consensus.EngineConfig) (*Engine, error) {
	return newEngine(ctx, cfg, defaultTiming())
}

func newEngine(ctx context.Context, cfg consensus.EngineConfig, tm timing) (*Engine, error) {
	if err := cfg.Group.Validate(); err != nil {
		return nil, fmt.Errorf("raftengine: EngineConfig.Group: %w", err)
	}
	switch {
	case cfg.Group.Mode != fsm.ModeRaft:
		return nil, fmt.Errorf("raftengine: EngineConfig.Group: mode %q, want %q", cfg.Group.Mode, fsm.ModeRaft)
	case cfg.Self.IsZero():
		return nil, errors.New("raftengine: EngineConfig.Self is required")
	case cfg.Dir == "":
		return nil, errors.New("raftengine: EngineConfig.Dir is required")
	case cfg.Net == nil:
		return nil, errors.New("raftengine: EngineConfig.Net is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, snapshotsDir), 0o700); err != nil {
		return nil, fmt.Errorf("raftengine: EngineConfig.Dir: %w", err)
	}
	e := &Engine{
		cfg:   cfg,
		self:  cfg.Self.Public(),
		log:   cfg.Log.With("group", cfg.Group.Name, "mode", string(fsm.ModeRaft)),
		tm:    tm,
		watch: newWatch(),
		poke:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		ready: make(chan struct{}),
		marks: make(chan markJob, markQueue),
	}
	st, err := openStore(ctx, filepath.Join(cfg.Dir, dbFile))
	if err != nil {
		return nil, err
	}
	e.store = st
	if e.reported, e.reportedCursor, err = st.delivered(ctx); err != nil {
		_ = st.close()
		return nil, err
	}
	e.lastCursor = e.reportedCursor
	e.wg.Add(1)
	go e.markLoop()
	if e.maybeReported, err = st.LastIndex(); err != nil {
		_ = st.close()
		return nil, err
	}
	if err := e.start(tm); err != nil {
		e.abort()
		return nil, err
	}
	e.wg.Add(1)
	go e.reconcileLoop()
	return e, nil
}

// start loads or records the genesis, opens raft and bootstraps it if needed.
func (e *Engine) start(tm timing) error {
	cfg := e.cfg
	switch b, err := e.store.Get([]byte(genesisKey)); {
	case errors.Is(err, errNotFound):
		if cfg.Group.Epoch != 0 {
			return fmt.Errorf("raftengine: EngineConfig.Group: a member's first start needs the group's epoch-0 definition (its genesis), got epoch %d", cfg.Group.Epoch)
		}
		if err := e.store.Set([]byte(genesisKey), cfg.Group.Canonical()); err != nil {
			return err
		}
		e.genesis = cfg.Group
	case err != nil:
		return err
	default:
		g, err := fsm.ParseGroup(b)
		if err != nil {
			return fmt.Errorf("raftengine: stored genesis: %w", err)
		}
		if g.Name != cfg.Group.Name || g.Mode != cfg.Group.Mode {
			return fmt.Errorf("raftengine: EngineConfig.Group is %s/%s but %s holds group %s/%s", cfg.Group.Name, cfg.Group.Mode, cfg.Dir, g.Name, g.Mode)
		}
		if cfg.Group.Epoch == 0 {
			if err := fsm.Compare(g, cfg.Group); err != nil {
				return fmt.Errorf("raftengine: EngineConfig.Group differs from the genesis stored in %s: %w", cfg.Dir, err)
			}
		}
		e.genesis = g
	}
	m, err := fsm.New(e.genesis, fsm.SignaturesVerifiedByLeader())
	if err != nil {
		return err
	}
	e.m = m
	e.member.Store(m.Group().IsMember(e.self))

	hl := newHCLogger(e.log)
	e.snaps, err = raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.Dir, snapshotsDir), snapshotRetain, hl.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("raftengine: snapshots: %w", err)
	}
	// A snapshot installed from another member covers entries adopted
	// (catchup.go) that may have been delivered before a crash.
	if metas, err := e.snaps.List(); err == nil && len(metas) > 0 {
		e.maybeReported = max(e.maybeReported, metas[0].Index)
	}
	e.mux = newMux(cfg.Net, e.self, e.log)
	e.fwd = newForwarder(e)
	e.mux.serveForward = e.fwd.serve
	e.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  e.mux.raftLayer(),
		MaxPool: transportPool,
		Timeout: rpcTimeout,
		Logger:  hl.Named("transport"),
		// No pipelined replication: raft v1.7's pipeline can wedge (its
		// decoder blocks handing back a response nobody reads once a
		// follower answered a conflict, and the next send blocks behind it),
		// so the leader stops replicating to that follower and Shutdown
		// waits for that goroutine forever. hashicorp/raft #612.
		MaxRPCsInFlight: 1,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(e.self.String())
	rc.Logger = hl
	rc.HeartbeatTimeout = tm.heartbeat
	rc.ElectionTimeout = tm.election
	rc.LeaderLeaseTimeout = tm.lease
	rc.CommitTimeout = tm.commit
	rc.MaxAppendEntries = maxAppendEntries
	rc.BatchApplyCh = true
	rc.ShutdownOnRemove = false
	if tm.trailingLogs > 0 {
		rc.TrailingLogs = tm.trailingLogs
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("raftengine: raft config: %w", err)
	}
	logs, err := raft.NewLogCache(logCache, e.store)
	if err != nil {
		return fmt.Errorf("raftengine: log cache: %w", err)
	}
	had, err := raft.HasExistingState(logs, e.store, e.snaps)
	if err != nil {
		return fmt.Errorf("raftengine: %w", err)
	}
	// Not only on the very first start: a crash between storing the genesis
	// and bootstrapping leaves no raft state, and the bootstrap must still
	// happen. Every founder writes the same configuration.
	if !had && e.genesis.Epoch == 0 && e.genesis.IsMember(e.self) {
		if err := raft.BootstrapCluster(rc, logs, e.store, e.snaps, e.trans, configuration(e.genesis)); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("raftengine: bootstrap: %w", err)
		}
	}
	e.raft, err = raft.NewRaft(rc, machine{e}, logs, e.store, e.snaps, e.trans)
	if err != nil {
		return fmt.Errorf("raftengine: start raft: %w", err)
	}
	close(e.ready)
	// Accept only now: a forwarded request needs e.raft.
	e.mux.start()
	obs := make(chan raft.Observation, 16)
	e.raft.RegisterObserver(raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}))
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			select {
			case <-obs:
				e.pokeReconcile()
			case <-e.done:
				return
			}
		}
	}()
	return nil
}

func configuration(g fsm.Group) raft.Configuration {
	var c raft.Configuration
	for _, m := range g.Members {
		id := m.String()
		c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(id)})
	}
	return c
}

// abort releases what a failed start opened.
func (e *Engine) abort() {
	close(e.done)
	if e.raft != nil {
		_ = e.raft.Shutdown().Error()
	}
	if e.trans != nil {
		_ = e.trans.Close()
	}
	if e.mux != nil {
		e.mux.close()
	}
	e.wg.Wait()
	_ = e.store.close()
}

// Close implements consensus.Engine.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		close(e.done)
		errs := []error{e.raft.Shutdown().Error(), e.trans.Close()}
		e.fwd.close()
		e.mux.close()
		e.wg.Wait()
		errs = append(errs, e.store.close())
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

func (e *Engine) closed() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// Propose implements consensus.Engine. On a follower the request is
// forwarded to the leader. An error that wraps ErrNoQuorum and says the
// outcome is unknown means the entry may still commit: proposing the same
// bytes again is safe (the group refuses a replayed sequence number).
func (e *Engine) Propose(ctx context.Context, req []byte) (consensus.Applied, error) {
	return e.ProposeFunc(ctx, func() ([]byte, error) { return req, nil })
}

// ProposeFunc is Propose for a caller that numbers its requests: build is
// called just before the request is enqueued, under the lock that orders this
// member's submissions, so that requests built with increasing sequence
// numbers reach the leader's log in that order (concurrent Propose calls give
// no such order, and a later sequence applied first makes the earlier one a
// replay). build may be called again after a failure that certainly did not
// enqueue the request. It must not call into the engine.
func (e *Engine) ProposeFunc(ctx context.Context, build func() ([]byte, error)) (consensus.Applied, error) {
	for {
		if e.closed() {
			return consensus.Applied{}, fmt.Errorf("raftengine: propose: %w", consensus.ErrClosed)
		}
		if !e.isMember() {
			return consensus.Applied{}, fmt.Errorf("raftengine: propose: %s: %w", e.self.Short(), consensus.ErrNotMember)
		}
		leader, ok := e.leader()
		var a consensus.Applied
		var err error
		retry := true
		switch {
		case ok && leader == e.self:
			a, retry, err = e.proposeLocal(ctx, build)
		case ok:
			a, retry, err = e.fwd.propose(ctx, leader, build)
		}
		if !retry {
			return a, err
		}
		if err := e.pause(ctx); err != nil {
			return consensus.Applied{}, fmt.Errorf("raftengine: propose: no leader: %w (%w)", consensus.ErrNoQuorum, err)
		}
	}
}

// pause waits leaderPoll, or fails when ctx ends or the engine closes.
func (e *Engine) pause(ctx context.Context) error {
	t := time.NewTimer(leaderPoll)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-e.done:
		return consensus.ErrClosed
	}
}

// isMember reports whether this member is in the group as last applied,
// without waiting for the apply lock.
func (e *Engine) isMember() bool { return e.member.Load() }

// leader is the leader raft knows, if any.
func (e *Engine) leader() (identity.PublicKey, bool) {
	_, id := e.raft.LeaderWithID()
	if id == "" {
		return identity.PublicKey{}, false
	}
	if c := e.leaderKey.Load(); c != nil && c.id == id {
		return c.key, true
	}
	k, err := identity.ParseDID(string(id))
	if err != nil {
		return identity.PublicKey{}, false
	}
	e.leaderKey.Store(&cachedKey{id: id, key: k})
	return k, true
}

// cachedKey is the last leader ID parsed: parsing a DID on every proposal
// costs more than the rest of the submission.
type cachedKey struct {
	id  raft.ServerID
	key identity.PublicKey
}

// enqueue stamps and appends a request on this member as leader, returning
// raft's future. Callers hold submitMu and have passed req through
// checkRequest: the entry is marked verified by the leader.
func (e *Engine) enqueue(req []byte) raft.ApplyFuture {
	// Stamps never go backwards here (the agreed clock is a maximum anyway).
	now := max(e.cfg.Now().UnixNano(), e.lastTime)
	e.lastTime = now
	return e.raft.Apply(encodeEntry(fsm.Entry{Time: now, Request: req, LeaderVerified: true}), rpcTimeout)
}

// errUnknown marks a failure after the request may have been appended.
var errUnknown = errors.New("outcome unknown; proposing the same bytes again is safe")

// proposeLocal appends on this member as leader and waits for the result.
// retry is true only when the request certainly was not appended.
func (e *Engine) proposeLocal(ctx context.Context, build func() ([]byte, error)) (consensus.Applied, bool, error) {
	e.submitMu.Lock()
	req, err := build()
	if err != nil {
		e.submitMu.Unlock()
		return consensus.Applied{}, false, fmt.Errorf("raftengine: propose: %w", err)
	}
	if len(req) > fsm.MaxRequestSize {
		e.submitMu.Unlock()
		return consensus.Applied{}, false, fmt.Errorf("raftengine: propose: request of %d bytes, limit %d", len(req), fsm.MaxRequestSize)
	}
	// Under the lock, so that build's order is the log's order.
	if why := checkRequest(req); why != "" {
		e.submitMu.Unlock()
		return consensus.Applied{}, false, e.badSignature(why)
	}
	f := e.enqueue(req)
	e.submitMu.Unlock()
	a, err := e.await(ctx, f)
	switch {
	case err == nil:
		return a, false, nil
	case isRetry(err):
		return consensus.Applied{}, true, err
	default:
		return consensus.Applied{}, false, err
	}
}

// isRetry reports a raft error that certainly appended nothing.
func isRetry(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrEnqueueTimeout)
}

// await waits for an apply future; errors other than not-leader mean the
// outcome is unknown.
func (e *Engine) await(ctx context.Context, f raft.ApplyFuture) (consensus.Applied, error) {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		switch {
		case err == nil:
			a, ok := f.Response().(consensus.Applied)
			if !ok {
				return consensus.Applied{}, fmt.Errorf("raftengine: propose: %w: no result", consensus.ErrNoQuorum)
			}
			return a, nil
		case isRetry(err):
			return consensus.Applied{}, err
		case errors.Is(err, raft.ErrRaftShutdown) && e.closed():
			return consensus.Applied{}, fmt.Errorf("raftengine: propose: %w (%w)", consensus.ErrClosed, errUnknown)
		default:
			return consensus.Applied{}, fmt.Errorf("raftengine: propose: %w: %w (%w)", consensus.ErrNoQuorum, err, errUnknown)
		}
	case <-ctx.Done():
		return consensus.Applied{}, fmt.Errorf("raftengine: propose: %w (%w)", ctx.Err(), errUnknown)
	case <-e.done:
		return consensus.Applied{}, fmt.Errorf("raftengine: propose: %w (%w)", consensus.ErrClosed, errUnknown)
	}
}

// readIndex is the index every entry committed before the call precedes: on
// the leader, a barrier commits an entry of this term and waits until all
// before it are applied; a follower asks the leader.
func (e *Engine) readIndex(ctx context.Context) (uint64, error) {
	for {
		if e.closed() {
			return 0, consensus.ErrClosed
		}
		leader, ok := e.leader()
		switch {
		case ok && leader == e.self:
			idx, err := e.barrier(ctx)
			if err == nil || !isRetry(err) {
				return idx, err
			}
		case ok:
			idx, retry, err := e.fwd.readIndex(ctx, leader)
			if !retry {
				return idx, err
			}
		}
		if err := e.pause(ctx); err != nil {
			return 0, fmt.Errorf("no leader: %w (%w)", consensus.ErrNoQuorum, err)
		}
	}
}

// barrier runs raft's barrier and returns the last applied command index.
func (e *Engine) barrier(ctx context.Context) (uint64, error) {
	timeout := rpcTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	f := e.raft.Barrier(timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			if errors.Is(err, raft.ErrNotLeader) {
				return 0, err
			}
			return 0, fmt.Errorf("%w: %w", consensus.ErrNoQuorum, err)
		}
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-e.done:
		return 0, consensus.ErrClosed
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.m.LastIndex(), nil
}

// Read implements consensus.Engine.
func (e *Engine) Read(ctx context.Context, fn func(m *fsm.Machine)) error {
	idx, err := e.readIndex(ctx)
	if err != nil {
		return fmt.Errorf("raftengine: read: %w", err)
	}
	if err := e.waitApplied(ctx, idx); err != nil {
		return fmt.Errorf("raftengine: read: %w", err)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	fn(e.m)
	return nil
}

func (e *Engine) waitApplied(ctx context.Context, idx uint64) error {
	err := e.watch.wait(ctx, e.done, idx)
	if errors.Is(err, errWatchClosed) {
		return consensus.ErrClosed
	}
	return err
}

// Record implements consensus.Engine.
func (e *Engine) Record(ctx context.Context, index uint64) (fsm.Record, error) {
	if e.closed() {
		return fsm.Record{}, fmt.Errorf("raftengine: record: %w", consensus.ErrClosed)
	}
	// ApplyBatch updates the machine before it stores the batch's records
	// and advances the watch after: for an entry the machine holds, wait
	// for the watch, or its record may not be stored yet.
	e.mu.RLock()
	applied := e.m.LastIndex()
	e.mu.RUnlock()
	if index <= applied {
		if err := e.waitApplied(ctx, index); err != nil {
			return fsm.Record{}, fmt.Errorf("raftengine: record %d: %w", index, err)
		}
	}
	sr, found, err := e.store.record(ctx, index)
	if err != nil {
		return fsm.Record{}, err
	}
	if !found {
		return fsm.Record{}, fmt.Errorf("raftengine: record %d: %w", index, consensus.ErrNoRecord)
	}
	g, err := fsm.ParseGroup(sr.group)
	if err != nil {
		return fsm.Record{}, fmt.Errorf("raftengine: record %d: group: %w", index, err)
	}
	var res fsm.Result
	if err := json.Unmarshal(sr.res, &res); err != nil {
		return fsm.Record{}, fmt.Errorf("raftengine: record %d: result: %w", index, err)
	}
	return fsm.NewRecord(g, index, fsm.Entry{Time: sr.time, Request: sr.req}, res, nil), nil
}

// Status implements consensus.Engine.
func (e *Engine) Status() consensus.Status {
	e.mu.RLock()
	g, last := e.m.Group(), e.m.LastIndex()
	e.mu.RUnlock()
	s := consensus.Status{Group: g, Term: e.raft.CurrentTerm(), LastIndex: last}
	leader, ok := e.leader()
	if ok {
		s.Leader = leader
	}
	fresh := 3 * e.tm.heartbeat
	now := time.Now()
	switch {
	case !ok:
	case leader == e.self:
		s.Healthy = e.raft.State() == raft.Leader
	default:
		s.Healthy = now.Sub(e.raft.LastContact()) < fresh
	}
	for _, k := range g.Members {
		ms := consensus.MemberStatus{Key: k}
		if k == e.self {
			ms.Reachable, ms.LastContact = true, now
		} else if t := e.mux.lastContact(k); !t.IsZero() {
			ms.LastContact = t
			ms.Reachable = now.Sub(t) < fresh
		}
		s.Members = append(s.Members, ms)
	}
	return s
}

func (e *Engine) pokeReconcile() {
	select {
	case e.poke <- struct{}{}:
	default:
	}
}

// reconcileLoop makes raft's voters the group's members, on the leader: a
// passed membership motion changes the group when applied, and the leader
// then adds or removes the voter. One change at a time, additions first, so
// a removal never leaves the configuration smaller than needed.
func (e *Engine) reconcileLoop() {
	defer e.wg.Done()
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-e.poke:
		case <-t.C:
		}
		for e.reconcileOnce() {
			if e.closed() {
				return
			}
		}
	}
}

// reconcileOnce makes at most one change and reports whether it made one.
func (e *Engine) reconcileOnce() bool {
	if e.raft.State() != raft.Leader {
		return false
	}
	e.mu.RLock()
	g := e.m.Group()
	e.mu.RUnlock()
	f := e.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	have := map[raft.ServerID]bool{}
	for _, s := range f.Configuration().Servers {
		have[s.ID] = true
	}
	for _, m := range g.Members {
		id := m.String()
		if !have[raft.ServerID(id)] {
			err := e.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(id), f.Index(), changeTimeout).Error()
			e.logChange("add", m, g, err)
			return err == nil
		}
	}
	for id := range have {
		k, err := identity.ParseDID(string(id))
		if err == nil && g.IsMember(k) {
			continue
		}
		err = e.raft.RemoveServer(id, f.Index(), changeTimeout).Error()
		e.logChange("remove", k, g, err)
		return err == nil
	}
	return false
}

func (e *Engine) logChange(op string, k identity.PublicKey, g fsm.Group, err error) {
	if err != nil {
		e.log.Warn("raftengine: voter change failed; retrying", "event", "consensus.voter_change", "op", op, "member", k.Short(), "epoch", g.Epoch, "err", err)
		return
	}
	e.log.Info("raftengine: voter changed", "event", "consensus.voter_change", "op", op, "member", k.Short(), "epoch", g.Epoch)
}

// watch lets goroutines wait until the machine has applied an index.
type watch struct {
	mu  sync.Mutex
	idx uint64
	ch  chan struct{} // closed and replaced on every advance
}

var errWatchClosed = errors.New("raftengine: engine closed")

func newWatch() *watch { return &watch{ch: make(chan struct{})} }

func (w *watch) advance(idx uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.idx = idx
	close(w.ch)
	w.ch = make(chan struct{})
}

func (w *watch) wait(ctx context.Context, done <-chan struct{}, idx uint64) error {
	for {
		w.mu.Lock()
		at, ch := w.idx, w.ch
		w.mu.Unlock()
		if at >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return errWatchClosed
		}
	}
}
