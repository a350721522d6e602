package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// NewEngine builds one group's engine from a complete EngineConfig. The
// Manager holds one per mode, so the Raft and BFT engines plug in without
// this package importing them.
// ctx bounds the engine's start (replaying its stored state).
type NewEngine func(context.Context, EngineConfig) (Engine, error)

// NewNetwork builds the Network of one group; isMember is consulted on every
// connection. The Manager passes one that admits every key: it checks
// membership itself, after exchanging definitions (handshake.go).
type NewNetwork func(g fsm.Group, isMember func(identity.PublicKey) bool) (Network, error)

// ManagerConfig configures NewManager.
type ManagerConfig struct {
	Dir     string                 // required: HOME/groups (see store.go for its layout); created 0700
	Self    identity.PrivateKey    // required: signs this node's requests
	Engines map[fsm.Mode]NewEngine // required: the engine of each mode this build has
	Network NewNetwork             // required: connections between a group's members
	Now     func() time.Time       // nil: time.Now
	Log     *slog.Logger           // nil: slog.Default()
	// Timeout bounds how long a request waits for its commit. Zero: 10s.
	Timeout time.Duration
	// Outbound, if set, checks an operation before it is signed and leaves
	// this node (the outbound sanitizer); its error refuses the request.
	Outbound func(ctx context.Context, g fsm.Group, op fsm.Op) error
	// Admit, if set, is consulted for every connection to or from a member
	// (trust, budgets); its error refuses the connection.
	Admit func(g fsm.Group, member identity.PublicKey) error
	// OnApply, if set, sees every entry applied on this member, in order
	// per group; g is the group's definition before the entry. It must not
	// block for long (it runs on the engine's apply goroutine).
	OnApply func(g fsm.Group, a Applied)
	// OnEvidence, if set, receives misbehaviour the engines detect.
	OnEvidence func(g fsm.Group, member identity.PublicKey, kind, detail string)
	// AdmitRequest, if set, gates each request a member asks this node to
	// order for it (EngineConfig.AdmitRequest; meter.go).
	AdmitRequest func(g fsm.Group, member identity.PublicKey, size int) (release func(), err error)
	// FlushApplied, if set, makes what OnApply saw of group name durable
	// (EngineConfig.FlushApplied).
	FlushApplied func(name string) (position uint64, wait func() error)
}

// DefaultTimeout is how long a request waits for its commit by default.
const DefaultTimeout = 10 * time.Second

// startTimeout bounds an engine's start (replaying its stored state). A BFT
// member replays its whole history, every request verified again (about
// 0.1 ms each): a minute covered only about half a million entries, which a
// busy group reaches in days, and the group then never started again.
const startTimeout = 30 * time.Minute

// maxRetries bounds how often a request is signed again after the group
// refused it for a reason that concerns only its envelope: a sequence number
// overtaken by a concurrent request of this node (replay), or an epoch that
// changed while it was in flight (wrong-group). Neither applied anything.
const maxRetries = 16

// Manager runs the consensus groups this node belongs to: those declared in
// treaty.yaml and those created through the CLI (persisted in Dir). It signs
// this node's requests with a durable per-group sequence number and turns
// engine outcomes into typed errors (errors.go). Safe for concurrent use.
type Manager struct {
	cfg  ManagerConfig
	self identity.PublicKey
	log  *slog.Logger

	mu      sync.Mutex
	groups  map[string]*group
	failed  map[string]string // groups that could not start, with the reason
	created []createdGroup    // the content of groups.json
	closed  bool
}

// NewManager validates cfg and prepares the directory; Start runs the groups.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	switch {
	case cfg.Dir == "":
		return nil, errors.New("consensus: ManagerConfig.Dir is required")
	case cfg.Self.IsZero():
		return nil, errors.New("consensus: ManagerConfig.Self is required")
	case cfg.Engines == nil:
		return nil, errors.New("consensus: ManagerConfig.Engines is required")
	case cfg.Network == nil:
		return nil, errors.New("consensus: ManagerConfig.Network is required")
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("consensus: ManagerConfig.Timeout %v is negative", cfg.Timeout)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	created, err := readGroupsFile(cfg.Dir)
	if err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, self: cfg.Self.Public(), log: cfg.Log, groups: map[string]*group{},
		failed: map[string]string{}, created: created}, nil
}

// Start runs the created groups and the declared ones. A group that cannot
// start (a definition that changed, an engine error) is logged and shown by
// Groups with the reason; the others run.
func (m *Manager) Start(declared []fsm.Group) {
	m.mu.Lock()
	created := slices.Clone(m.created)
	m.mu.Unlock()
	for _, c := range created {
		m.ensure(c.g, c.source())
	}
	m.Sync(declared)
}

// Sync starts the declared groups that are not running yet; it is called
// again when treaty.yaml changes. A group removed from the file keeps running
// until the node restarts.
func (m *Manager) Sync(declared []fsm.Group) {
	for _, g := range declared {
		m.ensure(g, SourceConfig)
	}
}

// Where a group's definition comes from.
const (
	SourceConfig = "config" // treaty.yaml
	SourceCLI    = "cli"    // group create (groups.json)
	SourceJoin   = "join"   // group create --join (groups.json): a member the group added
)

// ensure starts g unless a group of that name runs; a running group with a
// different definition is reported, not replaced.
func (m *Manager) ensure(g fsm.Group, source string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if gr, ok := m.groups[g.Name]; ok {
		err := fsm.Compare(gr.genesis, g)
		if err != nil && !gr.conflictLogged {
			gr.conflictLogged = true
			m.log.Error("consensus: the running group keeps its definition", "event", "consensus.conflict", "group", g.Name,
				"running", gr.source, "other", source, "err", err)
		}
		return
	}
	if err := m.startLocked(g, source); err != nil {
		if m.failed[g.Name] != err.Error() {
			m.log.Error("consensus: group not started", "event", "consensus.start_failed", "group", g.Name, "err", err)
		}
		m.failed[g.Name] = err.Error()
		return
	}
	delete(m.failed, g.Name)
}

// Create adds a group of which this node is a member, persists it and starts
// it. Every member's operator creates it with the same definition (or
// declares it in treaty.yaml); members that differ refuse each other.
func (m *Manager) Create(g fsm.Group) error {
	if err := g.Validate(); err != nil {
		return refusal.Wrap(refusal.StageUsage, err)
	}
	if !g.IsMember(m.self) {
		return refusal.New(refusal.StageUsage, "group %s: the members must include this node (%s); list every member, self included (or join a group that added this node)", g.Name, m.self)
	}
	return m.add(createdGroup{g: g})
}

// Join starts a group that added this node by a membership motion. genesis
// is the group as it was created (epoch 0), which does not list this node:
// the node starts from it, learns the group's entries (Raft: from the
// leader; BFT: decisions fetched and verified as a learner) and becomes a
// member when it applies the motion that added it.
func (m *Manager) Join(genesis fsm.Group) error {
	if err := genesis.Validate(); err != nil {
		return refusal.Wrap(refusal.StageUsage, err)
	}
	switch {
	case genesis.IsMember(m.self):
		return refusal.New(refusal.StageUsage, "group %s: this node is a founding member; create it, do not join it", genesis.Name)
	}
	return m.add(createdGroup{g: genesis, join: true})
}

func (m *Manager) add(c createdGroup) error {
	g := c.g
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return refusal.Wrap(refusal.StageInternal, ErrClosed)
	}
	if _, ok := m.groups[g.Name]; ok {
		return refusal.New(refusal.StageUsage, "group %s exists on this node", g.Name)
	}
	created := append(slices.Clone(m.created), c)
	if err := writeGroupsFile(m.cfg.Dir, created); err != nil {
		return err
	}
	if err := m.startLocked(g, c.source()); err != nil {
		if werr := writeGroupsFile(m.cfg.Dir, m.created); werr != nil {
			err = errors.Join(err, werr)
		}
		return err
	}
	m.created = created
	delete(m.failed, g.Name)
	return nil
}

func (m *Manager) startLocked(g fsm.Group, source string) (err error) {
	if len(m.groups) >= MaxGroups {
		return refusal.New(refusal.StageUsage, "this node runs %d groups, limit %d", len(m.groups), MaxGroups)
	}
	newEngine, ok := m.cfg.Engines[g.Mode]
	if !ok || newEngine == nil {
		return refusal.New(refusal.StageUsage, "group %s: no %s engine in this build", g.Name, g.Mode)
	}
	if !g.IsMember(m.self) && source != SourceJoin {
		return fmt.Errorf("consensus: group %s: this node (%s) is not among its members: %w", g.Name, m.self.Short(), ErrNotMember)
	}
	dir := filepath.Join(m.cfg.Dir, g.Name)
	if err := os.MkdirAll(filepath.Join(dir, engineDir), 0o700); err != nil {
		return fmt.Errorf("consensus: %w", err)
	}
	if err := checkGenesis(dir, g); err != nil {
		return err
	}
	seq, err := openSeq(dir)
	if err != nil {
		return err
	}
	gr := &group{m: m, name: g.Name, source: source, genesis: g, seq: seq,
		refused: map[identity.PublicKey]string{}, changed: make(chan struct{}, 1), next: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	gr.cur.Store(&g)
	// The checked network enforces membership after the definition
	// exchange, so that a peer with another definition learns why.
	inner, err := m.cfg.Network(g, func(identity.PublicKey) bool { return true })
	if err != nil {
		return fmt.Errorf("consensus: group %s: %w", g.Name, err)
	}
	gr.net = newCheckedNetwork(inner, gr.current, gr.admit, gr.noteRefused, newMeters(MemberByteRate, MemberByteBurst, func(k identity.PublicKey) {
		gr.onEvidence(k, "budget", fmt.Sprintf("sent more than %d bytes/s on the group's connections; slowed", MemberByteRate))
	}))
	defer func() {
		if err != nil {
			gr.net.Listener().Close()
		}
	}()
	log := m.log.With("group", g.Name)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	gr.eng, err = newEngine(ctx, EngineConfig{
		Group: g, Self: m.cfg.Self, Dir: filepath.Join(dir, engineDir), Net: gr.net, Now: m.cfg.Now,
		OnApply: gr.onApply, OnEvidence: gr.onEvidence, AdmitRequest: gr.admitRequest, FlushApplied: gr.flushApplied, Log: log,
	})
	if err != nil {
		return fmt.Errorf("consensus: group %s: %w", g.Name, err)
	}
	gr.refresh()
	go gr.watch()
	m.groups[g.Name] = gr
	log.Info("consensus: group running", "event", "consensus.started", "mode", g.Mode, "members", g.N(), "source", source)
	return nil
}

// Close stops every group; their durable state stays on disk.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	groups := m.groups
	m.groups = map[string]*group{}
	m.mu.Unlock()
	var err error
	for _, gr := range groups {
		err = errors.Join(err, gr.close())
	}
	return err
}

// lookup returns a running group or a usage refusal naming it.
func (m *Manager) lookup(name string) (*group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if gr, ok := m.groups[name]; ok {
		return gr, nil
	}
	if why, ok := m.failed[name]; ok {
		return nil, refusal.Wrap(refusal.StageUsage, fmt.Errorf("group %s is not running: %s: %w", name, why, ErrUnknownGroup))
	}
	return nil, refusal.Wrap(refusal.StageUsage, fmt.Errorf("group %q: %w (see 'treaty group ls')", name, ErrUnknownGroup))
}

// Put sets key to value once the group commits it. With ifVersion set it is
// a compare-and-set (0: the key must be absent); a mismatch is a
// *RejectedError matching ErrCASMismatch, carrying the current version.
func (m *Manager) Put(ctx context.Context, group, key string, value []byte, ifVersion *uint64) (Applied, error) {
	op := fsm.Put(key, value)
	if ifVersion != nil {
		op = fsm.CAS(key, value, *ifVersion)
	}
	return m.propose(ctx, group, op)
}

// OpenMotion opens a motion that passes with quorum yes votes; a positive
// deadline is turned into agreed time (this node's clock plus deadline).
func (m *Manager) OpenMotion(ctx context.Context, group, name string, quorum uint32, deadline time.Duration, text string) (Applied, error) {
	if deadline < 0 {
		return Applied{}, refusal.New(refusal.StageUsage, "deadline %v is negative", deadline)
	}
	var at int64
	if deadline > 0 {
		at = m.cfg.Now().Add(deadline).UnixNano()
	}
	return m.propose(ctx, group, fsm.OpenMotion(name, quorum, at, text))
}

// Vote votes on a motion (a member's name or a membership motion's #INDEX).
func (m *Manager) Vote(ctx context.Context, group, motion string, yes bool) (Applied, error) {
	return m.propose(ctx, group, fsm.Vote(motion, yes))
}

// ChangeMember opens the group's motion to add or remove member; it passes
// with the group's quorum, like any decision of the group.
func (m *Manager) ChangeMember(ctx context.Context, group string, member identity.PublicKey, add bool, text string) (Applied, error) {
	op := fsm.RemoveMember(member, 0, text)
	if add {
		op = fsm.AddMember(member, 0, text)
	}
	return m.propose(ctx, group, op)
}

func (m *Manager) propose(ctx context.Context, name string, op fsm.Op) (Applied, error) {
	gr, err := m.lookup(name)
	if err != nil {
		return Applied{}, err
	}
	cur := gr.current()
	if !cur.IsMember(m.self) {
		return Applied{}, asRefusal(fmt.Errorf("group %s: this node is not a member at epoch %d (a joining node becomes one when it has applied the motion that added it): %w", name, cur.Epoch, ErrNotMember))
	}
	// An invalid operation is the caller's mistake: refuse it before it
	// is scanned or reaches the engine.
	if _, err := fsm.SignRequest(m.cfg.Self, cur.ID(), 0, op); err != nil {
		return Applied{}, refusal.Wrap(refusal.StageUsage, err)
	}
	if m.cfg.Outbound != nil {
		if err := m.cfg.Outbound(ctx, cur, op); err != nil {
			return Applied{}, err
		}
	}
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	ctx, leave := gr.whileMember(ctx, name)
	defer leave()
	for range maxRetries {
		var a Applied
		var err error
		switch e := gr.eng.(type) {
		case opProposer:
			a, err = e.ProposeOp(ctx, op)
		case funcProposer:
			id := cur.ID()
			a, err = e.ProposeFunc(ctx, func() ([]byte, error) { return gr.sign(m.cfg.Self, id, op) })
		default:
			var req []byte
			if req, err = gr.sign(m.cfg.Self, cur.ID(), op); err != nil {
				return Applied{}, err
			}
			a, err = gr.eng.Propose(ctx, req)
		}
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, ErrNotMember) {
				// The removal may be this very vote's doing: the engine
				// applied it, and the cancellation it caused won the race
				// with the engine's answer.
				if a, ok := gr.ownRemoval(caller, op); ok {
					return a, nil
				}
				return Applied{}, asRefusal(cause)
			}
			return Applied{}, asRefusal(fmt.Errorf("group %s: %w", name, gr.explain(err)))
		}
		switch a.Result.Code {
		case fsm.CodeOK:
			if passedChange(a) {
				gr.refresh()
				a.Removed = !gr.current().IsMember(m.self)
			}
			return a, nil
		case fsm.CodeReplay:
			continue // overtaken by a concurrent request of ours; nothing applied
		case fsm.CodeWrongGroup:
			gr.refresh() // the epoch changed while it was in flight
			if cur = gr.current(); !cur.IsMember(m.self) {
				return a, asRefusal(fmt.Errorf("group %s: this node is no longer a member: %w", name, ErrNotMember))
			}
			continue
		}
		return a, asRefusal(&RejectedError{Group: name, Index: a.Index, Code: a.Result.Code, Reason: a.Result.Reason, Version: a.Result.Version})
	}
	return Applied{}, refusal.New(refusal.StageInternal, "group %s: request refused %d times for its sequence number or epoch", name, maxRetries)
}

// opProposer is an engine that signs and numbers this member's requests
// itself, handing them to the group in number order (bftengine).
type opProposer interface {
	ProposeOp(ctx context.Context, op fsm.Op) (Applied, error)
}

// funcProposer is an engine that orders this member's requests when it
// builds them under its own submission lock (raftengine): requests numbered
// in increasing order then reach the log in that order, and none is refused
// as a replay for being overtaken.
type funcProposer interface {
	ProposeFunc(ctx context.Context, build func() ([]byte, error)) (Applied, error)
}

func (m *Manager) read(ctx context.Context, name string, fn func(*fsm.Machine)) error {
	gr, err := m.lookup(name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	if err := gr.eng.Read(ctx, fn); err != nil {
		return asRefusal(fmt.Errorf("group %s: %w", name, gr.explain(err)))
	}
	return nil
}

// Get returns key's item, linearizably; ok is false when the key is absent.
func (m *Manager) Get(ctx context.Context, group, key string) (it fsm.Item, ok bool, err error) {
	err = m.read(ctx, group, func(fm *fsm.Machine) { it, ok = fm.Get(key) })
	return it, ok, err
}

// List returns the keys with prefix, sorted, at most limit (0: all);
// truncated says more keys have the prefix.
func (m *Manager) List(ctx context.Context, group, prefix string, limit int) (keys []string, truncated bool, err error) {
	err = m.read(ctx, group, func(fm *fsm.Machine) {
		keys = fm.Keys(prefix)
		if limit > 0 && len(keys) > limit {
			keys, truncated = keys[:limit], true
		}
	})
	return keys, truncated, err
}

// Motion returns the motion called name; an unknown one is a usage refusal.
func (m *Manager) Motion(ctx context.Context, group, name string) (mo fsm.Motion, err error) {
	var ok bool
	if err = m.read(ctx, group, func(fm *fsm.Machine) { mo, ok = fm.Motion(name) }); err != nil {
		return mo, err
	}
	if !ok {
		return mo, refusal.New(refusal.StageUsage, "group %s has no motion %q (decided motions are kept until %d newer ones are decided)", group, name, fsm.MaxDecidedMotions)
	}
	return mo, nil
}

// Motions lists the motions the group keeps, in the order they were opened.
func (m *Manager) Motions(ctx context.Context, group string) (ms []fsm.Motion, err error) {
	err = m.read(ctx, group, func(fm *fsm.Machine) { ms = fm.Motions() })
	return ms, err
}

// Record returns the decision record of an applied index.
func (m *Manager) Record(ctx context.Context, group string, index uint64) (fsm.Record, error) {
	gr, err := m.lookup(group)
	if err != nil {
		return fsm.Record{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	r, err := gr.eng.Record(ctx, index)
	if errors.Is(err, ErrNoRecord) {
		// The index may be committed and not yet applied here: wait for
		// this member to catch up (a linearizable read), then look again.
		if rerr := gr.eng.Read(ctx, func(*fsm.Machine) {}); rerr == nil {
			r, err = gr.eng.Record(ctx, index)
		}
	}
	if errors.Is(err, ErrNoRecord) {
		return r, refusal.Wrap(refusal.StageUsage, fmt.Errorf("group %s: index %d: %w", group, index, err))
	}
	if err != nil {
		return r, asRefusal(fmt.Errorf("group %s: %w", group, err))
	}
	return r, nil
}

// Info is one group as `treaty group ls` shows it.
type Info struct {
	Name    string
	Source  string // SourceConfig or SourceCLI
	Status  Status // the engine's view; Status.Group is the current epoch
	Refused map[identity.PublicKey]string
	Error   string // set when the group could not start (then Status is zero but for the name)
}

// Groups lists the groups, running and failed, sorted by name.
func (m *Manager) Groups() []Info {
	m.mu.Lock()
	running := make([]*group, 0, len(m.groups))
	for _, gr := range m.groups {
		running = append(running, gr)
	}
	var out []Info
	for name, why := range m.failed {
		out = append(out, Info{Name: name, Error: why})
	}
	m.mu.Unlock()
	for _, gr := range running {
		out = append(out, gr.info())
	}
	slices.SortFunc(out, func(a, b Info) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		return len(a.Error) - len(b.Error) // the running group first
	})
	return out
}

// group is one running group.
type group struct {
	m       *Manager
	name    string
	source  string
	genesis fsm.Group
	eng     Engine
	net     *checkedNetwork
	cur     atomic.Pointer[fsm.Group]

	seqMu sync.Mutex
	seq   *seqCounter

	refMu   sync.Mutex
	refused map[identity.PublicKey]string // members whose last connection was refused, and why

	conflictLogged bool // another source defines the group differently (guarded by Manager.mu)

	changed chan struct{} // a membership change may have applied

	// lastChange is this member's latest own vote that passed a membership
	// motion (onApply records it): if that removed this node, the vote
	// succeeded though a request in flight then ends as not-a-member.
	lastChange atomic.Pointer[Applied]
	// delivered is the highest index onApply saw; deliveredWake, made by a
	// waiter (waitDelivered), is closed and cleared when it grows.
	deliveredMu   sync.Mutex
	delivered     uint64
	deliveredWake chan struct{}

	nextMu sync.Mutex
	next   chan struct{} // closed when the definition changes, then replaced

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (gr *group) current() fsm.Group { return *gr.cur.Load() }

func (gr *group) sign(k identity.PrivateKey, id fsm.ID, op fsm.Op) ([]byte, error) {
	gr.seqMu.Lock()
	seq, err := gr.seq.take()
	gr.seqMu.Unlock()
	if err != nil {
		return nil, refusal.Wrap(refusal.StageInternal, err)
	}
	q, err := fsm.SignRequest(k, id, seq, op)
	if err != nil {
		return nil, refusal.Wrap(refusal.StageUsage, err)
	}
	return q.Encode(), nil
}

func (gr *group) admit(k identity.PublicKey) error {
	if gr.m.cfg.Admit == nil {
		return nil
	}
	return gr.m.cfg.Admit(gr.current(), k)
}

// noteRefused keeps the last refusal per member for Info and logs a change
// once, not at every reconnection attempt.
func (gr *group) noteRefused(k identity.PublicKey, err error) {
	gr.refMu.Lock()
	defer gr.refMu.Unlock()
	if err == nil {
		delete(gr.refused, k)
		return
	}
	msg := err.Error()
	if gr.refused[k] == msg {
		return
	}
	gr.refused[k] = msg
	gr.m.log.Warn("consensus: member connection refused", "event", "consensus.refused", "group", gr.name, "peer", k.Short(), "err", msg)
}

// explain adds the refusals behind a lost quorum, so that "no quorum" says
// which member defines the group differently. Only members' refusals count:
// any peer of the node may probe the group's protocol.
func (gr *group) explain(err error) error {
	if !errors.Is(err, ErrNoQuorum) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	cur := gr.current()
	gr.refMu.Lock()
	defer gr.refMu.Unlock()
	var why []string
	for k, msg := range gr.refused {
		if cur.IsMember(k) {
			why = append(why, msg)
		}
	}
	if len(why) == 0 {
		return err
	}
	slices.Sort(why)
	return fmt.Errorf("%w (refused: %s)", err, why[0])
}

func (gr *group) onApply(a Applied) {
	if f := gr.m.cfg.OnApply; f != nil {
		f(gr.current(), a)
	}
	if passedChange(a) {
		if q, err := fsm.DecodeRequest(a.Entry.Request); err == nil && q.Proposer == gr.m.self && q.Op.Kind == fsm.OpMotionVote {
			gr.lastChange.Store(&a)
		}
	}
	gr.deliveredMu.Lock()
	if a.Index > gr.delivered {
		gr.delivered = a.Index
		if gr.deliveredWake != nil {
			close(gr.deliveredWake)
			gr.deliveredWake = nil
		}
	}
	gr.deliveredMu.Unlock()
	if len(a.Result.Closed) > 0 {
		select {
		case gr.changed <- struct{}{}:
		default:
		}
	}
}

func (gr *group) onEvidence(k identity.PublicKey, kind, detail string) {
	if f := gr.m.cfg.OnEvidence; f != nil {
		f(gr.current(), k, kind, detail)
	}
}

// refresh takes the current definition from the engine, which changes it
// when a membership motion passes.
func (gr *group) refresh() {
	g := gr.eng.Status().Group
	if g.Validate() != nil || g.Name != gr.name {
		return
	}
	if old := gr.current(); g.Epoch > old.Epoch {
		gr.cur.Store(&g)
		gr.nextMu.Lock()
		close(gr.next)
		gr.next = make(chan struct{})
		gr.nextMu.Unlock()
		gr.m.log.Info("consensus: membership changed", "event", "consensus.epoch", "group", gr.name, "epoch", g.Epoch, "members", g.N())
	}
}

// passedChange reports whether a applied a request that passed a membership
// motion (named "#INDEX"; other motions cannot be).
func passedChange(a Applied) bool {
	return a.Result.OK() && a.Result.Outcome == fsm.OutcomePassed && strings.HasPrefix(a.Result.Motion, "#")
}

// ownRemoval returns the decision of this member's vote op if the group
// applied it and it passed a membership motion, marked Removed: called once
// this node is no longer a member, that motion (or one it passed in turn)
// removed it. Votes are final, so the vote applied is this one's or an
// earlier identical one's, and either way it counted. An engine may show
// the new definition before it has handed this member every entry it
// applied, so ownRemoval first waits (at most removalWait, or until ctx
// ends) for the entries applied so far.
func (gr *group) ownRemoval(ctx context.Context, op fsm.Op) (Applied, bool) {
	if op.Kind != fsm.OpMotionVote {
		return Applied{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, removalWait)
	defer cancel()
	gr.waitDelivered(ctx, gr.eng.Status().LastIndex)
	a := gr.lastChange.Load()
	if a == nil || a.Result.Motion != op.Motion {
		return Applied{}, false
	}
	out := *a
	out.Removed = true
	return out, true
}

// removalWait bounds how long a vote that ended as not-a-member waits for
// the entries its engine applied to be handed over, to learn whether the
// vote itself passed the removal.
const removalWait = 2 * time.Second

// waitDelivered waits until onApply has seen index, or ctx ends.
func (gr *group) waitDelivered(ctx context.Context, index uint64) {
	for {
		gr.deliveredMu.Lock()
		if gr.delivered >= index {
			gr.deliveredMu.Unlock()
			return
		}
		if gr.deliveredWake == nil {
			gr.deliveredWake = make(chan struct{})
		}
		wake := gr.deliveredWake
		gr.deliveredMu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return
		}
	}
}

// whileMember returns ctx cancelled, with a cause matching ErrNotMember, when
// a definition without this node takes effect: a removed member's request in
// flight is then refused at once, not left waiting for a commit it can no
// longer see until its timeout.
func (gr *group) whileMember(ctx context.Context, name string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		for {
			gr.nextMu.Lock()
			next := gr.next
			gr.nextMu.Unlock()
			if cur := gr.current(); !cur.IsMember(gr.m.self) {
				cancel(fmt.Errorf("group %s: this node is no longer a member at epoch %d: %w", name, cur.Epoch, ErrNotMember))
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-next:
			}
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// watch refreshes the definition after entries that decided motions
// (outside the apply goroutine, which must not call into the engine).
func (gr *group) watch() {
	defer close(gr.done)
	for {
		select {
		case <-gr.stop:
			return
		case <-gr.changed:
			gr.refresh()
		}
	}
}

func (gr *group) close() error {
	var err error
	gr.closeOnce.Do(func() {
		close(gr.stop)
		<-gr.done
		err = gr.eng.Close()
		gr.net.Listener().Close()
	})
	return err
}

func (gr *group) info() Info {
	st := gr.eng.Status()
	if st.Group.Validate() != nil {
		st.Group = gr.current()
	}
	gr.refMu.Lock()
	refused := make(map[identity.PublicKey]string, len(gr.refused))
	for k, v := range gr.refused {
		refused[k] = v
	}
	gr.refMu.Unlock()
	return Info{Name: gr.name, Source: gr.source, Status: st, Refused: refused}
}
