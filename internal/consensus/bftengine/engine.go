// Package bftengine is treaty's BFT consensus engine: a consensus.Engine on
// SmartBFT (github.com/hyperledger-labs/SmartBFT v1.0.1) over the group's
// Network, for groups whose members may lie (n ≥ 3f+1 tolerates f).
//
// It guarantees, with at most f lying members: every honest member applies the
// same entries in the same order to its fsm.Machine (entries are the requests
// of decided proposals, one index each); no request is applied unless a member
// signed it for this group (checked before agreeing and again by the machine);
// an entry acknowledged by Propose is stored durably; and every applied index
// has a decision record whose certificate holds Quorum member attestations of
// the entry and its result (fsm.Verify checks it offline).
//
// Node IDs are member index+1 in the group's sorted member list. Membership
// changes passed by the group change the machine's group (epoch, ID) but not
// the engine's node set, which is the one of the definition the group was
// created with: a BFT group can lose members but not gain them (ADR 0012,
// "Growing a BFT group", lists what that needs).
package bftengine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
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

	smartbft "github.com/hyperledger-labs/SmartBFT/pkg/consensus"
	"github.com/hyperledger-labs/SmartBFT/pkg/types"
	"github.com/hyperledger-labs/SmartBFT/pkg/wal"
	protos "github.com/hyperledger-labs/SmartBFT/smartbftprotos"
	"google.golang.org/protobuf/proto"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// ErrDuplicate is Propose's refusal of request bytes this group already
// decided recently (SmartBFT remembers them); a new request needs a new
// sequence number.
var ErrDuplicate = errors.New("bftengine: request already decided")

// Engine is a BFT consensus.Engine. Its methods are safe for concurrent use.
type Engine struct {
	cfg    consensus.EngineConfig
	opts   options
	group  fsm.Group // the member list the engine was built for: fixes node IDs
	nodes  []uint64
	selfID uint64
	log    *slog.Logger
	now    func() time.Time

	st      *store
	wal     *wal.WriteAheadLogFile
	comm    *comm
	bft     *smartbft.Consensus
	tickers []*time.Ticker
	started atomic.Bool
	done    chan struct{}
	closing sync.Once

	dmu      sync.Mutex // decisions: the last one stored and the index its entries will end at
	lastSeq  uint64
	last     types.Decision
	nextIdx  uint64 // entries of stored decisions, applied or not
	applyQ   chan applyJob
	applying sync.WaitGroup

	mu       sync.Mutex // apply: machine, waiters
	m        *fsm.Machine
	lastView atomic.Uint64
	lastIdx  atomic.Uint64
	curGroup atomic.Pointer[fsm.Group]
	waiters  map[[32]byte][]chan consensus.Applied
	seqMu    sync.Mutex // ProposeOp: signs and enqueues in sequence order
	verMu    sync.Mutex
	verified map[[32]byte]bool // items whose signature checkItem verified (the leader checks a forwarded request, then its proposal)
	seq      uint64

	attMu    sync.Mutex
	atts     map[uint64]map[uint64][]byte // index → member ID → its attestation, unverified
	attWake  chan struct{}                // closed and replaced when an attestation arrives
	syncMu   sync.Mutex
	syncIn   atomic.Pointer[chan syncMsg]
	screenMu sync.Mutex
	wits     map[[2]uint64]witness // (view, seq) → what its leader proposed, as seen here
	evMu     sync.Mutex
	evLast   map[string]time.Time
}

// options are the knobs tests and benchmarks set; New uses the defaults.
type options struct {
	config types.Configuration
	tick   time.Duration
	// tamperSend and observeRecv turn a member into a maverick or cut it
	// off (tests only): tamperSend replaces each frame it sends; observeRecv
	// sees each frame it reads and may drop it.
	tamperSend  func(to uint64, frame []byte) [][]byte
	observeRecv func(from uint64, frame []byte) (drop bool)
}

// Defaults, for members on a LAN or a well-connected WAN (RTT up to ~100ms):
// a leader silent for LeaderHeartbeatTimeout is replaced; requests are batched
// for at most RequestBatchMaxInterval.
func defaultOptions() options {
	c := types.DefaultConfig
	c.RequestBatchMaxCount = maxBatchCount
	c.RequestBatchMaxBytes = maxBatchBytes
	c.RequestBatchMaxInterval = 2 * time.Millisecond
	c.IncomingMessageBufferSize = 1024
	c.RequestPoolSize = 8 * maxBatchCount
	c.RequestForwardTimeout = 2 * time.Second
	c.RequestComplainTimeout = 10 * time.Second
	c.RequestAutoRemoveTimeout = 3 * time.Minute
	c.ViewChangeResendInterval = time.Second
	c.ViewChangeTimeout = 5 * time.Second
	c.LeaderHeartbeatTimeout = 3 * time.Second
	c.LeaderHeartbeatCount = 10
	c.NumOfTicksBehindBeforeSyncing = 10
	c.CollectTimeout = 500 * time.Millisecond
	c.SyncOnStart = true
	c.SpeedUpViewChange = false
	c.LeaderRotation = false
	c.DecisionsPerLeader = 0
	c.RequestMaxBytes = fsm.MaxRequestSize
	c.RequestPoolSubmitTimeout = 5 * time.Second
	return options{config: c, tick: 50 * time.Millisecond}
}

// Sync and certificate timing.
const (
	syncBudget      = 5 * time.Second        // one Sync call, all fetches included
	syncHeightWait  = 300 * time.Millisecond // for members to report their heights
	syncFetchWait   = time.Second            // for one member to serve one decision
	attestWindow    = 1 << 14                // indexes ahead of/behind ours whose attestations are kept in memory
	attestRetry     = 200 * time.Millisecond // Record asks again this often
	evidenceRepeat  = 10 * time.Second       // one (member, kind) is reported at most this often
	witnessesKept   = 256                    // (view, seq) pairs remembered for equivocation
	defaultMaxSkew  = 5 * time.Second
	reachableWithin = 3    // heartbeat timeouts: a member heard from within this many counts as reachable
	verifiedKept    = 8192 // request hashes remembered as verified; the set is cleared when full
	applyQueue      = 64   // decisions stored but not yet applied; Deliver waits beyond it
	resendEvery     = time.Second
	walBuffer       = 16 << 10 // SmartBFT WAL marshal buffer; a bigger record grows it
)

// New validates cfg, opens (or creates) the engine's state in cfg.Dir,
// replays the decisions stored there into a fresh machine, and starts the
// member. ctx bounds the replay only.
func New(ctx context.Context, cfg consensus.EngineConfig) (*Engine, error) {
	return newEngine(ctx, cfg, defaultOptions())
}

func newEngine(ctx context.Context, cfg consensus.EngineConfig, opts options) (*Engine, error) {
	if err := cfg.Group.Validate(); err != nil {
		return nil, fmt.Errorf("bftengine: EngineConfig.Group: %w", err)
	}
	switch {
	case cfg.Group.Mode != fsm.ModeBFT:
		return nil, fmt.Errorf("bftengine: EngineConfig.Group: mode %q, want %q", cfg.Group.Mode, fsm.ModeBFT)
	case cfg.Self.IsZero():
		return nil, errors.New("bftengine: EngineConfig.Self is required")
	case !cfg.Group.IsMember(cfg.Self.Public()):
		return nil, fmt.Errorf("bftengine: EngineConfig.Self %s: %w", cfg.Self.Public().Short(), consensus.ErrNotMember)
	case cfg.Dir == "":
		return nil, errors.New("bftengine: EngineConfig.Dir is required")
	case cfg.Net == nil:
		return nil, errors.New("bftengine: EngineConfig.Net is required")
	case cfg.MaxSkew < 0:
		return nil, fmt.Errorf("bftengine: EngineConfig.MaxSkew %v is negative", cfg.MaxSkew)
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = defaultMaxSkew
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	e := &Engine{
		cfg: cfg, opts: opts, group: cfg.Group, log: cfg.Log.With("group", cfg.Group.Name), now: cfg.Now,
		done: make(chan struct{}), waiters: map[[32]byte][]chan consensus.Applied{},
		atts: map[uint64]map[uint64][]byte{}, attWake: make(chan struct{}),
		wits: map[[2]uint64]witness{}, evLast: map[string]time.Time{}, verified: map[[32]byte]bool{},
		applyQ: make(chan applyJob, applyQueue),
	}
	for i := range cfg.Group.Members {
		e.nodes = append(e.nodes, uint64(i+1))
	}
	e.selfID = e.idOf(cfg.Self.Public())
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("bftengine: EngineConfig.Dir: %w", err)
	}
	var err error
	if e.st, err = openStore(cfg.Dir, cfg.Group); err != nil {
		return nil, err
	}
	// The machine starts from the definition the stored history started
	// from; after replay it must have reached the one the caller passed.
	genesis, err := e.st.genesis()
	if err == nil {
		e.m, err = fsm.New(genesis)
	}
	if err != nil {
		e.st.close()
		return nil, fmt.Errorf("bftengine: %w", err)
	}
	g := e.m.Group()
	e.curGroup.Store(&g)
	if err := e.replay(ctx); err != nil {
		e.st.close()
		return nil, err
	}
	// The caller passes either the definition the history started from (the
	// group manager always does: node IDs and the signing domain come from
	// it, so they stay what the running members use) or the one it reached.
	if fsm.Compare(genesis, cfg.Group) != nil {
		if err := fsm.Compare(e.currentGroup(), cfg.Group); err != nil {
			e.st.close()
			return nil, fmt.Errorf("bftengine: EngineConfig.Group is neither the definition group %s started from nor the one its history reached: %w", cfg.Dir, err)
		}
	}
	lg := bftLogger{e.log}
	// SmartBFT's WAL allocates its buffer size for every record it appends
	// (1 MiB by default, most of the engine's garbage); records are small.
	walOpts := wal.DefaultOptions()
	walOpts.BufferSizeBytes = walBuffer
	w, walEntries, err := wal.InitializeAndReadAll(lg, filepath.Join(cfg.Dir, "wal"), walOpts)
	if err != nil {
		e.st.close()
		return nil, fmt.Errorf("bftengine: WAL: %w", err)
	}
	e.wal = w
	md := &protos.ViewMetadata{}
	if len(e.last.Proposal.Metadata) > 0 {
		if err := proto.Unmarshal(e.last.Proposal.Metadata, md); err != nil {
			e.closeStores()
			return nil, fmt.Errorf("bftengine: last decision metadata: %w", err)
		}
	}
	conf := opts.config
	conf.SelfID = e.selfID
	// A member with nothing decided and an empty WAL is new: there is
	// nothing to catch up with before it starts.
	conf.SyncOnStart = conf.SyncOnStart && (e.lastSeq > 0 || len(walEntries) > 0)
	e.comm = newComm(e)
	sched, vct := time.NewTicker(opts.tick), time.NewTicker(opts.tick)
	e.tickers = []*time.Ticker{sched, vct}
	a := app{e}
	e.bft = &smartbft.Consensus{
		Config: conf, Application: a, Assembler: a, WAL: w, WALInitialContent: walEntries,
		Comm: e.comm, Signer: a, Verifier: a, MembershipNotifier: a, RequestInspector: a, Synchronizer: a,
		Logger: lg, Metadata: md, LastProposal: e.last.Proposal, LastSignatures: e.last.Signatures,
		Scheduler: sched.C, ViewChangerTicker: vct.C,
	}
	e.applying.Add(1)
	go e.applyLoop()
	e.comm.start()
	if err := e.bft.Start(); err != nil {
		close(e.done)
		e.applying.Wait()
		e.comm.close()
		e.stopTickers()
		e.closeStores()
		return nil, fmt.Errorf("bftengine: start: %w", err)
	}
	e.started.Store(true)
	e.log.Info("bft engine started", "event", "consensus.bft.start", "self", e.selfID, "n", e.group.N(), "f", e.group.F(),
		"seq", e.lastSeq, "index", e.lastIdx.Load())
	return e, nil
}

// replay applies the stored decisions to the fresh machine, and stores the
// entries of decisions that were stored but not yet applied when the member
// stopped. OnApply is not called: applied entries were reported before.
func (e *Engine) replay(ctx context.Context) error {
	have, err := e.st.lastEntrySeq()
	if err != nil {
		return err
	}
	type entriesOf struct {
		seq uint64
		es  []storedEntry
	}
	var missing []entriesOf // stored after the scan: the store has one connection
	err = e.st.eachDecision(ctx, func(seq uint64, d *decision) error {
		if seq != e.lastSeq+1 {
			return fmt.Errorf("bftengine: stored decisions jump from %d to %d", e.lastSeq, seq)
		}
		p := d.proposal()
		b, err := decodeBatch(p.Payload)
		if err != nil {
			return fmt.Errorf("bftengine: stored decision %d: %w", seq, err)
		}
		md := &protos.ViewMetadata{}
		if err := proto.Unmarshal(p.Metadata, md); err != nil {
			return fmt.Errorf("bftengine: stored decision %d: %w", seq, err)
		}
		stored, _ := e.applyBatch(b)
		if seq > have {
			missing = append(missing, entriesOf{seq, stored})
		}
		e.lastSeq = seq
		e.last = types.Decision{Proposal: p, Signatures: d.signatures()}
		e.lastView.Store(md.ViewId)
		return nil
	})
	if err != nil {
		return err
	}
	for _, x := range missing {
		if err := e.st.putEntries(x.seq, x.es); err != nil {
			return err
		}
	}
	e.nextIdx = e.m.LastIndex()
	e.lastIdx.Store(e.nextIdx)
	g := e.m.Group()
	e.curGroup.Store(&g)
	return nil
}

func entryOf(t int64, item []byte) fsm.Entry {
	if isBarrier(item) {
		return fsm.Entry{Time: t}
	}
	return fsm.Entry{Time: t, Request: item}
}

func (d *decision) proposal() types.Proposal {
	return types.Proposal{Payload: d.payload, Header: d.header, Metadata: d.metadata, VerificationSequence: int64(d.verSeq)}
}

func (d *decision) signatures() []types.Signature {
	out := make([]types.Signature, len(d.sigs))
	for i, s := range d.sigs {
		out[i] = types.Signature{ID: s.id, Value: s.value, Msg: s.msg}
	}
	return out
}

func decisionOf(p types.Proposal, sigs []types.Signature) *decision {
	d := &decision{payload: p.Payload, header: p.Header, metadata: p.Metadata, verSeq: uint64(p.VerificationSequence)}
	for _, s := range sigs {
		d.sigs = append(d.sigs, sig{id: s.ID, value: s.Value, msg: s.Msg})
	}
	return d
}

// deliver takes a decided proposal: it stores the decision (before Deliver
// returns, as SmartBFT requires) and queues it for the apply loop, so that
// applying one decision overlaps agreeing on the next.
func (e *Engine) deliver(p types.Proposal, sigs []types.Signature, live bool) {
	md := &protos.ViewMetadata{}
	if err := proto.Unmarshal(p.Metadata, md); err != nil {
		e.log.Error("bftengine: decided proposal has bad metadata", "err", err)
		return
	}
	b, err := decodeBatch(p.Payload)
	if err != nil {
		e.log.Error("bftengine: decided proposal has a bad payload", "seq", md.LatestSequence, "err", err)
		b = batch{}
	}
	e.dmu.Lock()
	if md.LatestSequence <= e.lastSeq {
		e.dmu.Unlock()
		return
	}
	if md.LatestSequence != e.lastSeq+1 {
		e.dmu.Unlock()
		e.log.Error("bftengine: decision out of order", "have", e.lastSeq, "got", md.LatestSequence)
		return
	}
	first := e.nextIdx + 1
	if err := e.st.putDecision(md.LatestSequence, first, len(b.items), decisionOf(p, sigs)); err != nil {
		// The decision is in SmartBFT's hands and other members hold it: a
		// restart replays what was stored and synchronizes the rest.
		e.log.Error("bftengine: decision not stored", "seq", md.LatestSequence, "err", err)
	}
	e.lastSeq = md.LatestSequence
	e.last = types.Decision{Proposal: p, Signatures: sigs}
	e.nextIdx += uint64(len(b.items))
	e.lastView.Store(md.ViewId)
	e.dmu.Unlock()
	select {
	case e.applyQ <- applyJob{seq: md.LatestSequence, b: b, live: live}:
	case <-e.done:
	}
}

type applyJob struct {
	seq  uint64
	b    batch
	live bool
}

// applyLoop applies queued decisions in order: each item is one entry; the
// entries (with their results and the group in force) are stored in one
// transaction before waiters and OnApply hear of them. Attestations are
// signed from the stored entries when asked for.
func (e *Engine) applyLoop() {
	defer e.applying.Done()
	for {
		select {
		case <-e.done:
			return
		case j := <-e.applyQ:
			e.apply(j)
		}
	}
}

func (e *Engine) apply(j applyJob) {
	e.mu.Lock()
	stored, applied := e.applyBatch(j.b)
	if err := e.st.putEntries(j.seq, stored); err != nil {
		e.log.Error("bftengine: entries not stored", "seq", j.seq, "err", err)
	}
	e.lastIdx.Store(e.m.LastIndex())
	g := e.m.Group()
	e.curGroup.Store(&g)
	var wake []chan consensus.Applied
	var got []consensus.Applied
	for i, it := range j.b.items {
		k := sha256.Sum256(it)
		for _, ch := range e.waiters[k] {
			wake = append(wake, ch)
			got = append(got, applied[i])
		}
		delete(e.waiters, k)
	}
	e.mu.Unlock()
	e.prunePool(j.b.items)
	for i, ch := range wake {
		ch <- got[i] // buffered, one send per waiter
	}
	if j.live && e.cfg.OnApply != nil {
		for _, a := range applied {
			e.cfg.OnApply(a)
		}
	}
}

// prunePool removes applied items from SmartBFT's pool. SmartBFT removes
// the requests of the decisions it delivers itself, but not of those a
// member fetched while catching up (Sync); left there, they would be
// forwarded to a leader that already ordered them, and their timeouts would
// make this member complain about a leader that did its job.
func (e *Engine) prunePool(items [][]byte) {
	pool := e.bft.Pool
	if pool == nil {
		return
	}
	for _, it := range items {
		_ = pool.RemoveRequest(requestInfo(it)) // absent: never here, or already removed
	}
}

// applyBatch applies b's items to the machine; e.mu is held.
func (e *Engine) applyBatch(b batch) ([]storedEntry, []consensus.Applied) {
	stored := make([]storedEntry, 0, len(b.items))
	applied := make([]consensus.Applied, 0, len(b.items))
	for _, it := range b.items {
		g := e.m.Group()
		idx := e.m.LastIndex() + 1
		en := entryOf(b.time, it)
		res := e.m.Apply(idx, en)
		stored = append(stored, storedEntry{index: idx, entry: en, result: res, group: g})
		applied = append(applied, consensus.Applied{Index: idx, Entry: en, Result: res})
	}
	return stored, applied
}

func (e *Engine) currentGroup() fsm.Group { return *e.curGroup.Load() }

// Propose implements consensus.Engine. The request is checked here as every
// member checks it before agreeing (decodes, this group's epoch, a member's
// valid signature), submitted to SmartBFT's pool and sent straight to the
// leader, and Propose returns when this member has applied it.
func (e *Engine) Propose(ctx context.Context, req []byte) (consensus.Applied, error) {
	if e.isClosed() {
		return consensus.Applied{}, fmt.Errorf("bftengine: propose: %w", consensus.ErrClosed)
	}
	if isBarrier(req) {
		return consensus.Applied{}, errors.New("bftengine: propose: a barrier is not a request")
	}
	if err := e.checkItem(req); err != nil {
		return consensus.Applied{}, fmt.Errorf("bftengine: propose: %w", err)
	}
	return e.submit(ctx, req)
}

func (e *Engine) submit(ctx context.Context, item []byte) (consensus.Applied, error) {
	ch, k, err := e.enqueue(item)
	if err != nil {
		return consensus.Applied{}, err
	}
	defer e.unwait(k, ch)
	return e.await(ctx, ch, item)
}

// enqueue registers a waiter for item and hands it to SmartBFT's pool and to
// the leader. Items enqueued one after another reach the leader in that order.
func (e *Engine) enqueue(item []byte) (chan consensus.Applied, [32]byte, error) {
	k := sha256.Sum256(item)
	ch := make(chan consensus.Applied, 1)
	e.mu.Lock()
	e.waiters[k] = append(e.waiters[k], ch)
	e.mu.Unlock()
	if err := e.bft.SubmitRequest(item); err != nil {
		switch {
		case strings.Contains(err.Error(), "already exists"):
			// The same bytes are pending: wait for them.
		case strings.Contains(err.Error(), "already processed"):
			e.unwait(k, ch)
			return nil, k, ErrDuplicate
		default:
			e.unwait(k, ch)
			return nil, k, fmt.Errorf("bftengine: propose: %w: %v", consensus.ErrNoQuorum, err)
		}
	}
	// SmartBFT's pool forwards to the leader only after RequestForwardTimeout;
	// send it now so a follower's request costs one hop, not a timeout.
	if l := e.bft.GetLeaderID(); l != 0 && l != e.selfID {
		e.comm.SendTransaction(l, item)
	}
	return ch, k, nil
}

// await waits for item to be applied here. Every resendEvery it sends the
// item to the leader again: a forwarded copy can be lost with a connection,
// and a leader that already ordered it refuses the copy (or, if the copy
// comes late, orders it again and the machine refuses it as a replay).
func (e *Engine) await(ctx context.Context, ch chan consensus.Applied, item []byte) (consensus.Applied, error) {
	tick := time.NewTicker(resendEvery)
	defer tick.Stop()
	for {
		select {
		case a := <-ch:
			return a, nil
		case <-tick.C:
			if l := e.bft.GetLeaderID(); l != 0 && l != e.selfID {
				e.comm.SendTransaction(l, item)
			}
		case <-e.done:
			return consensus.Applied{}, fmt.Errorf("bftengine: propose: %w", consensus.ErrClosed)
		case <-ctx.Done():
			if !e.Status().Healthy {
				return consensus.Applied{}, fmt.Errorf("bftengine: propose: %w: %w", consensus.ErrNoQuorum, ctx.Err())
			}
			return consensus.Applied{}, fmt.Errorf("bftengine: propose: %w", ctx.Err())
		}
	}
}

// ProposeOp signs op as this member and proposes it. Concurrent calls are
// safe: each gets a sequence number above the last (at least the current
// unix nanosecond, so numbers stay fresh across restarts) and is handed to
// the leader in that order, so the machine does not refuse one as a replay
// for overtaking another. (Propose with requests signed elsewhere cannot
// promise that: their order of arrival is the caller's.)
func (e *Engine) ProposeOp(ctx context.Context, op fsm.Op) (consensus.Applied, error) {
	if e.isClosed() {
		return consensus.Applied{}, fmt.Errorf("bftengine: propose: %w", consensus.ErrClosed)
	}
	e.seqMu.Lock()
	e.seq = max(e.seq+1, uint64(time.Now().UnixNano()))
	q, err := fsm.SignRequest(e.cfg.Self, e.currentGroup().ID(), e.seq, op)
	if err != nil {
		e.seqMu.Unlock()
		return consensus.Applied{}, fmt.Errorf("bftengine: propose: %w", err)
	}
	item := q.Encode()
	e.markVerified(sha256.Sum256(item)) // signed here
	ch, k, err := e.enqueue(item)
	e.seqMu.Unlock()
	if err != nil {
		return consensus.Applied{}, err
	}
	defer e.unwait(k, ch)
	return e.await(ctx, ch, item)
}

func (e *Engine) unwait(k [32]byte, ch chan consensus.Applied) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws := slices.DeleteFunc(e.waiters[k], func(c chan consensus.Applied) bool { return c == ch })
	if len(ws) == 0 {
		delete(e.waiters, k)
	} else {
		e.waiters[k] = ws
	}
}

// Read implements consensus.Engine. It orders a barrier (an item that applies
// as an empty entry) and runs fn once the barrier is applied here: everything
// decided before Read was called was ordered before the barrier.
func (e *Engine) Read(ctx context.Context, fn func(m *fsm.Machine)) error {
	if e.isClosed() {
		return fmt.Errorf("bftengine: read: %w", consensus.ErrClosed)
	}
	item := make([]byte, 0, barrierLen)
	item = append(item, barrierMagic...)
	item = append(item, e.cfg.Self.Public().Bytes()...)
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	item = append(item, nonce...)
	if _, err := e.submit(ctx, item); err != nil {
		return fmt.Errorf("bftengine: read: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	fn(e.m)
	return nil
}

// Record implements consensus.Engine. The certificate is assembled from this
// member's attestation and the other members', asked for here and each
// checked against the statement this member computed from its own result;
// once Quorum hold, it is stored.
func (e *Engine) Record(ctx context.Context, index uint64) (fsm.Record, error) {
	if index == 0 || index > e.lastIdx.Load() {
		return fsm.Record{}, fmt.Errorf("bftengine: record %d: %w", index, consensus.ErrNoRecord)
	}
	x, ok, err := e.st.entry(index)
	if err != nil {
		return fsm.Record{}, err
	}
	if !ok {
		return fsm.Record{}, fmt.Errorf("bftengine: record %d: %w", index, consensus.ErrNoRecord)
	}
	q := x.group.Quorum()
	cert, err := e.st.cert(index)
	if err != nil {
		return fsm.Record{}, err
	}
	if len(cert) >= q {
		return fsm.NewRecord(x.group, index, x.entry, x.result, cert), nil
	}
	stmt := fsm.Statement(x.group.ID(), index, x.entry.Digest(), x.result.Digest())
	valid := map[identity.PublicKey][]byte{e.cfg.Self.Public(): e.cfg.Self.Sign(stmt)}
	tick := time.NewTicker(attestRetry)
	defer tick.Stop()
	ask := encodeFrame(frame{kind: kindAttestReq, seq: index})
	for first := true; ; first = false {
		e.attMu.Lock()
		for id, s := range e.atts[index] {
			k, ok := e.keyOf(id)
			if _, have := valid[k]; !ok || have || !x.group.IsMember(k) {
				continue
			}
			if k.Verify(stmt, s) {
				valid[k] = s
				continue
			}
			delete(e.atts[index], id)
			e.evidence(k, "bad-attestation", fmt.Sprintf("attestation of index %d does not verify against this member's result", index))
		}
		wake := e.attWake
		e.attMu.Unlock()
		if len(valid) >= q {
			break
		}
		if first {
			e.comm.broadcast(ask)
		}
		select {
		case <-wake:
		case <-tick.C:
			e.comm.broadcast(ask)
		case <-e.done:
			return fsm.Record{}, fmt.Errorf("bftengine: record %d: %w", index, consensus.ErrClosed)
		case <-ctx.Done():
			return fsm.Record{}, fmt.Errorf("bftengine: record %d: certificate has %d of %d attestations: %w", index, len(valid), q, ctx.Err())
		}
	}
	cert = make([]fsm.Attestation, 0, len(valid))
	for k, s := range valid {
		cert = append(cert, fsm.Attestation{Signer: k, Sig: s})
	}
	slices.SortFunc(cert, func(a, b fsm.Attestation) int {
		return strings.Compare(string(a.Signer.Bytes()), string(b.Signer.Bytes()))
	})
	if err := e.st.putCert(index, cert); err != nil {
		e.log.Warn("bftengine: certificate not stored", "index", index, "err", err)
	}
	e.attMu.Lock()
	delete(e.atts, index)
	e.attMu.Unlock()
	return fsm.NewRecord(x.group, index, x.entry, x.result, cert), nil
}

// Status implements consensus.Engine. Term is the view of the last decision,
// advanced to the first later view the current leader leads.
func (e *Engine) Status() consensus.Status {
	s := consensus.Status{Group: e.currentGroup(), LastIndex: e.lastIdx.Load()}
	var leader uint64
	if e.started.Load() && !e.isClosed() {
		leader = e.bft.GetLeaderID()
	}
	view := e.lastView.Load()
	if leader != 0 {
		n := uint64(len(e.nodes))
		s.Leader, _ = e.keyOf(leader)
		s.Term = view + (leader-1+n-view%n)%n
	}
	within := time.Duration(reachableWithin) * e.opts.config.LeaderHeartbeatTimeout
	now := time.Now()
	reach := 0
	for i, k := range e.group.Members {
		ms := consensus.MemberStatus{Key: k}
		if uint64(i+1) == e.selfID {
			ms.Reachable, ms.LastContact = true, now
		} else if l := e.comm.links[uint64(i+1)]; l != nil {
			if t := l.lastContact.Load(); t != 0 {
				ms.LastContact = time.Unix(0, t)
				ms.Reachable = now.Sub(ms.LastContact) < within
			}
		}
		if ms.Reachable {
			reach++
		}
		s.Members = append(s.Members, ms)
	}
	s.Healthy = leader != 0 && reach >= e.group.Quorum()
	return s
}

// Close implements consensus.Engine. It also closes the Network's listener.
func (e *Engine) Close() error {
	var err error
	e.closing.Do(func() {
		close(e.done)
		e.bft.Stop()
		e.comm.close()
		e.applying.Wait()
		e.stopTickers()
		err = e.closeStores()
	})
	return err
}

func (e *Engine) isClosed() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

func (e *Engine) stopTickers() {
	for _, t := range e.tickers {
		t.Stop()
	}
}

func (e *Engine) closeStores() error {
	err := e.wal.Close()
	if serr := e.st.close(); err == nil {
		err = serr
	}
	return err
}

// evidence reports misbehaviour by a member: logged, and passed to
// OnEvidence at most once per evidenceRepeat for one member and kind.
func (e *Engine) evidence(k identity.PublicKey, kind, detail string) {
	key := string(k.Bytes()) + kind
	now := time.Now()
	e.evMu.Lock()
	if t, ok := e.evLast[key]; ok && now.Sub(t) < evidenceRepeat {
		e.evMu.Unlock()
		return
	}
	if len(e.evLast) > 4096 {
		clear(e.evLast)
	}
	e.evLast[key] = now
	e.evMu.Unlock()
	e.log.Warn("bftengine: member misbehaved", "event", "consensus.bft.evidence", "member", k.Short(), "kind", kind, "detail", detail)
	if e.cfg.OnEvidence != nil {
		e.cfg.OnEvidence(k, kind, detail)
	}
}

// bftLogger adapts slog to SmartBFT's Logger. SmartBFT narrates every phase
// at Info; that is Debug here. Panicf is SmartBFT's assertion of its own
// invariants (never reached by a peer's input in its design); it panics as
// SmartBFT expects.
type bftLogger struct{ l *slog.Logger }

func (b bftLogger) logf(level slog.Level, f string, args []any) {
	if b.l.Enabled(context.Background(), level) {
		b.l.Log(context.Background(), level, "smartbft: "+fmt.Sprintf(f, args...))
	}
}

func (b bftLogger) Debugf(f string, args ...any) { b.logf(slog.LevelDebug, f, args) }
func (b bftLogger) Infof(f string, args ...any)  { b.logf(slog.LevelDebug, f, args) }
func (b bftLogger) Warnf(f string, args ...any)  { b.logf(slog.LevelInfo, f, args) }
func (b bftLogger) Errorf(f string, args ...any) { b.logf(slog.LevelError, f, args) }
func (b bftLogger) Panicf(f string, args ...any) {
	msg := fmt.Sprintf(f, args...)
	b.l.Error("smartbft: " + msg)
	panic("smartbft: " + msg)
}
