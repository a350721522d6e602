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
// Node IDs are assigned by admission (founders in sorted key order, then each
// added member the next free ID) and never change. A membership change the
// group passes changes SmartBFT's node set from the next decision (SmartBFT
// reconfigures in place); a node the current definition does not list runs
// as a learner that fetches and verifies decisions until one admits it
// (ADR 0012, "Membership changes").
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
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hyperledger-labs/SmartBFT/pkg/api"
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

// ErrStale is the refusal of a request signed for an earlier epoch of this
// group: a membership change was decided before it, so no member orders it.
// It was not applied; signed again for the current epoch, it may be.
// ProposeOp does that itself; Propose returns it.
var ErrStale = errors.New("bftengine: request names an earlier epoch of the group")

// Engine is a BFT consensus.Engine. Its methods are safe for concurrent use.
type Engine struct {
	cfg     consensus.EngineConfig
	opts    options
	genesis fsm.Group // the definition the stored history started from
	domain  fsm.ID    // genesis ID: every engine signature is bound to it, for the group's life
	log     *slog.Logger
	now     func() time.Time

	st         *store
	wal        *wal.WriteAheadLogFile
	walEntries [][]byte
	comm       *comm
	conf       types.Configuration                // SmartBFT's, once started
	bft        atomic.Pointer[smartbft.Consensus] // nil until this member runs SmartBFT (a learner does not)
	self       atomic.Uint64                      // this member's node ID; 0 while the current definition does not list it
	leader     atomic.Uint64                      // leader of SmartBFT's current view (leaderMetrics)
	ros        atomic.Pointer[rosters]
	tickers    []*time.Ticker
	done       chan struct{}
	closing    sync.Once
	learning   sync.WaitGroup

	dmu      sync.Mutex // decisions: the last one stored and the index its entries will end at
	lastSeq  uint64
	last     types.Decision
	nextIdx  uint64 // entries of stored decisions, applied or not
	applyQ   chan applyJob
	applying sync.WaitGroup
	// A decision can change the node set only if a membership motion is
	// open when it applies. openerSeq is the last stored decision that
	// opens one; applyState is the last applied sequence << 1, with bit 0
	// set while a membership motion is open. Deliver applies a decision
	// synchronously unless these prove it cannot change the node set.
	openerSeq  atomic.Uint64
	applyState atomic.Uint64
	cp         cpMark // the last checkpoint; apply (e.mu held) and replay
	restored   uint64 // the sequence of the checkpoint the start restored (0: it replayed from the first decision)

	mu       sync.Mutex // apply: machine, waiters
	m        *fsm.Machine
	lastView atomic.Uint64
	lastIdx  atomic.Uint64
	curGroup atomic.Pointer[fsm.Group]
	memberMo map[string]bool // open membership motions, by name ("#index")
	waiters  map[[32]byte][]chan consensus.Applied
	outb     map[[32]byte]*outbound // requests sent to a leader, by hash (gate.go)
	gate     gate
	seqMu    sync.Mutex // ProposeOp: signs and enqueues in sequence order
	verMu    sync.Mutex
	verified map[[32]byte]bool // items whose signature checkItem verified (the leader checks a forwarded request, then its proposal)
	seq      uint64

	attMu    sync.Mutex
	atts     map[uint64]map[uint64][]byte // index → member ID → its attestation, unverified
	attWake  chan struct{}                // closed and replaced when an attestation arrives
	syncMu   sync.Mutex
	syncIn   atomic.Pointer[chan syncMsg]
	catching sync.WaitGroup // catchUp (catchup.go)
	screenMu sync.Mutex
	wits     map[[2]uint64]witness // (view, seq) → what its leader proposed, as seen here
	evMu     sync.Mutex
	evLast   map[string]time.Time
	epochMu  sync.Mutex
	epochCh  chan struct{} // closed and replaced when this member applies an epoch change
	// redeliver is set when SmartBFT's controller, handed a decision its
	// checkpoint already holds, syncs instead of delivering it (see
	// bftLogger and app.Sync).
	redeliver atomic.Bool
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
	// removedGrace is how long a removed member may still fetch the
	// decisions up to the one that removed it (0: not at all).
	removedGrace time.Duration
	// inEpochWindow runs while apply has published a changed roster but
	// not yet the new group (e.mu held); onSigned runs when ProposeOp has
	// signed a request (seqMu held). Tests only: they open the window in
	// which a request is signed for the epoch being replaced.
	inEpochWindow func(*Engine)
	onSigned      func()
	// verSeqZero reports and stamps verification sequence 0 whatever the
	// epoch, as builds before the epoch rule did (ADR 12). Tests only: it
	// writes the WAL and decisions such a build left behind.
	verSeqZero bool
	// beforeSync runs when SmartBFT calls Sync, beforeDeliver when it
	// calls Deliver (tests only: they hold SmartBFT's controller).
	beforeSync, beforeDeliver func()
	// stopWait bounds how long Close waits for SmartBFT to stop.
	stopWait time.Duration
	// checkpointEvery spaces checkpoints (zero decisions: none are taken).
	checkpointEvery struct{ decisions, entries uint64 }
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
	o := options{config: c, tick: 50 * time.Millisecond, removedGrace: removedGrace, stopWait: stopWait}
	o.checkpointEvery.decisions, o.checkpointEvery.entries = checkpointDecisions, checkpointEntries
	return o
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
	learnEvery      = 100 * time.Millisecond // a learner asks for decisions again after this pause
	walBuffer       = 16 << 10               // SmartBFT WAL marshal buffer; a bigger record grows it
	// A removed member that lagged across its removal learns it from the
	// others: for this long they answer its height and decision requests,
	// up to the decision that removed it (serveRemoved).
	removedGrace = 5 * time.Minute
	// SmartBFT v1.0.1's Stop can block for good (ADR 12, "A SmartBFT
	// v1.0.1 defect"); Close gives up on it after this long.
	stopWait = 10 * time.Second
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
	e := blankEngine(cfg, opts)
	if err := e.recoverState(ctx); err != nil {
		return nil, err
	}
	e.self.Store(e.roster().ids[cfg.Self.Public()])
	lg := bftLogger{l: e.log}
	// SmartBFT's WAL allocates its buffer size for every record it appends
	// (1 MiB by default, most of the engine's garbage); records are small.
	walOpts := wal.DefaultOptions()
	walOpts.BufferSizeBytes = walBuffer
	w, walEntries, err := wal.InitializeAndReadAll(lg, filepath.Join(cfg.Dir, "wal"), walOpts)
	if err != nil {
		e.st.close()
		return nil, fmt.Errorf("bftengine: WAL: %w", err)
	}
	e.wal, e.walEntries = w, walEntries
	e.comm = newComm(e)
	e.comm.setRoster(e.roster(), e.self.Load(), e.opts.removedGrace)
	e.applying.Add(1)
	go e.applyLoop()
	e.comm.start()
	if e.self.Load() == 0 {
		// Not a member of the definition the history reached: a learner,
		// until it fetches the decision that admits it.
		e.log.Info("bft engine started as a learner", "event", "consensus.bft.learn", "seq", e.lastSeq, "index", e.lastIdx.Load())
		e.learning.Add(1)
		go e.learn()
		return e, nil
	}
	if err := e.startBFT(); err != nil {
		close(e.done)
		e.applying.Wait()
		e.comm.close()
		e.closeStores()
		return nil, err
	}
	return e, nil
}

// blankEngine is an engine of validated cfg before its state is recovered.
func blankEngine(cfg consensus.EngineConfig, opts options) *Engine {
	return &Engine{
		cfg: cfg, opts: opts, log: cfg.Log.With("group", cfg.Group.Name), now: cfg.Now,
		done: make(chan struct{}), waiters: map[[32]byte][]chan consensus.Applied{},
		atts: map[uint64]map[uint64][]byte{}, attWake: make(chan struct{}),
		wits: map[[2]uint64]witness{}, evLast: map[string]time.Time{}, verified: map[[32]byte]bool{},
		applyQ: make(chan applyJob, applyQueue), memberMo: map[string]bool{},
		outb: map[[32]byte]*outbound{}, epochCh: make(chan struct{}), gate: gate{held: map[[32]byte]admission{}, decided: map[[32]byte]bool{}},
	}
}

// recoverState opens (or creates) the engine's store in cfg.Dir and rebuilds
// the machine, the rosters and the last decision from it (replay). On error
// the store is closed.
func (e *Engine) recoverState(ctx context.Context) error {
	cfg := e.cfg
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("bftengine: EngineConfig.Dir: %w", err)
	}
	var err error
	if e.st, err = openStore(cfg.Dir, cfg.Group); err != nil {
		return err
	}
	// The machine starts from the definition the stored history started
	// from; after replay it must have reached the one the caller passed.
	e.genesis, err = e.st.genesis()
	if err == nil {
		e.m, err = fsm.New(e.genesis)
	}
	if err != nil {
		e.st.close()
		return fmt.Errorf("bftengine: %w", err)
	}
	e.domain = e.genesis.ID()
	e.ros.Store(&rosters{genesisRoster(e.genesis)})
	g := e.m.Group()
	e.curGroup.Store(&g)
	if err := e.replay(ctx); err != nil {
		e.st.close()
		return err
	}
	// The caller passes either the definition the history started from (the
	// group manager always does: node IDs and the signing domain come from
	// it, so they stay what the running members use) or the one it reached.
	if fsm.Compare(e.genesis, cfg.Group) != nil {
		if err := fsm.Compare(e.currentGroup(), cfg.Group); err != nil {
			e.st.close()
			return fmt.Errorf("bftengine: EngineConfig.Group is neither the definition group %s started from nor the one its history reached: %w", cfg.Dir, err)
		}
	}
	return nil
}

// startBFT starts SmartBFT for this member, from the last stored decision.
func (e *Engine) startBFT() error {
	e.dmu.Lock()
	last, lastSeq := e.last, e.lastSeq
	e.dmu.Unlock()
	md := &protos.ViewMetadata{}
	if len(last.Proposal.Metadata) > 0 {
		if err := proto.Unmarshal(last.Proposal.Metadata, md); err != nil {
			return fmt.Errorf("bftengine: last decision metadata: %w", err)
		}
	}
	conf := e.opts.config
	conf.SelfID = e.self.Load()
	// A member with nothing decided and an empty WAL is new: there is
	// nothing to catch up with before it starts.
	conf.SyncOnStart = conf.SyncOnStart && (lastSeq > 0 || len(e.walEntries) > 0)
	e.conf = conf
	sched, vct := time.NewTicker(e.opts.tick), time.NewTicker(e.opts.tick)
	e.tickers = []*time.Ticker{sched, vct}
	a := app{e}
	c := &smartbft.Consensus{
		Config: conf, Application: a, Assembler: a, WAL: e.wal, WALInitialContent: e.walEntries,
		Comm: e.comm, Signer: a, Verifier: a, MembershipNotifier: a, RequestInspector: a, Synchronizer: a,
		Logger: bftLogger{l: e.log, redeliver: &e.redeliver}, Metadata: md, LastProposal: last.Proposal, LastSignatures: last.Signatures,
		Scheduler: sched.C, ViewChangerTicker: vct.C,
		Metrics: api.NewMetrics(&leaderMetrics{leader: &e.leader}),
	}
	if err := c.Start(); err != nil {
		e.stopTickers()
		return fmt.Errorf("bftengine: start: %w", err)
	}
	e.bft.Store(c)
	e.walEntries = nil // SmartBFT holds them now
	e.catching.Add(1)
	go e.catchUp()
	r := e.roster()
	e.log.Info("bft engine started", "event", "consensus.bft.start", "self", conf.SelfID, "n", len(r.nodes), "f", r.group.F(),
		"seq", lastSeq, "index", e.lastIdx.Load())
	return nil
}

// learn is a learner's loop: it fetches and applies decisions (each verified
// against the node set in force at its sequence) until the definition it
// reaches lists this member, then starts SmartBFT. Members serve a learner
// only once their own definition admits it, so a node the group did not
// add learns nothing.
func (e *Engine) learn() {
	defer e.learning.Done()
	for !e.isClosed() {
		e.sync()
		if e.self.Load() != 0 {
			if err := e.startBFT(); err != nil {
				e.log.Error("bftengine: admitted, but SmartBFT did not start", "err", err)
			}
			return
		}
		if !sleepCtx(e.comm.ctx, learnEvery) {
			return
		}
	}
}

func (e *Engine) roster() *roster           { return e.ros.Load().last() }
func (e *Engine) rosters() rosters          { return *e.ros.Load() }
func (e *Engine) cons() *smartbft.Consensus { return e.bft.Load() }

// rosterAt is the roster in force at decision sequence seq. known is false
// when seq lies beyond what this member applied while a membership change
// is pending: a later decision may still change the node set before seq.
func (e *Engine) rosterAt(seq uint64) (r *roster, known bool) {
	st := e.applyState.Load()
	applied := st >> 1
	known = seq <= applied+1 || (st&1 == 0 && e.openerSeq.Load() <= applied)
	return e.rosters().at(seq), known
}

// replay rebuilds the state from the store: from the checkpoint if there is
// one (checked, loadCheckpoint), then every later decision, each verified
// in full as a decision fetched from another member is (verifyDecision:
// its sequence, its view leader's header, Quorum commit signatures of the
// node set in force) before it is applied, so a store altered without this
// member's key fails with ErrStoreCorrupt. It stores the entries of
// decisions that were stored but not yet applied when the member stopped,
// and takes a checkpoint if it replayed enough for one. OnApply is not
// called: applied entries were reported before.
func (e *Engine) replay(ctx context.Context) error {
	have, err := e.st.lastEntrySeq()
	if err != nil {
		return err
	}
	from, err := e.loadCheckpoint()
	if err != nil {
		return err
	}
	e.restored = from
	type entriesOf struct {
		seq uint64
		es  []storedEntry
	}
	var (
		missing    []entriesOf // stored after the scan: the store has one connection
		lastDec    [32]byte
		chunk      []storedDecision
		chunkBytes int
	)
	apply := func(x storedDecision) {
		p := x.d.proposal()
		md := &protos.ViewMetadata{}
		_ = proto.Unmarshal(p.Metadata, md) // verifyDecision decoded it
		stored, _ := e.applyBatch(x.seq, x.b)
		if x.seq > have {
			missing = append(missing, entriesOf{x.seq, stored})
		}
		e.lastSeq = x.seq
		e.last = types.Decision{Proposal: p, Signatures: x.d.signatures()}
		e.lastView.Store(md.ViewId)
		lastDec = sha256.Sum256(x.body)
	}
	// flush verifies and applies the decisions read so far. Those that the
	// node set now in force must have decided (up to the first that may
	// change it) are verified in parallel.
	flush := func() error {
		for len(chunk) > 0 {
			n := e.sameRoster(chunk)
			if err := e.verifyStored(chunk[:n]); err != nil {
				return err
			}
			for _, x := range chunk[:n] {
				apply(x)
			}
			chunk = chunk[n:]
		}
		return nil
	}
	err = e.st.eachDecision(ctx, from, func(seq uint64, body []byte) error {
		if next := e.lastSeq + uint64(len(chunk)) + 1; seq != next {
			return e.corrupt("stored decisions jump from %d to %d", next-1, seq)
		}
		d, err := decodeDecision(body)
		if err != nil {
			return e.corrupt("stored decision %d: %v", seq, err)
		}
		b, err := decodeBatch(d.payload)
		if err != nil {
			return e.corrupt("stored decision %d: %v", seq, err)
		}
		chunk = append(chunk, storedDecision{seq: seq, body: body, d: d, b: b})
		if chunkBytes += len(body); len(chunk) < replayChunk && chunkBytes < replayChunkBytes {
			return nil
		}
		chunkBytes = 0
		return flush()
	})
	if err == nil {
		err = flush()
	}
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
	e.publishApplied(e.lastSeq)
	e.log.Info("bftengine: state recovered", "event", "consensus.bft.recover", "checkpoint", from, "replayed", e.lastSeq-from)
	if e.lastSeq > from {
		e.maybeCheckpoint(e.lastSeq, lastDec)
	}
	return nil
}

// replay reads up to replayChunk stored decisions, or replayChunkBytes of
// them, before it verifies and applies them.
const (
	replayChunk      = 256
	replayChunkBytes = 8 << 20
)

// storedDecision is a decision read back from the store.
type storedDecision struct {
	seq  uint64
	body []byte
	d    *decision
	b    batch
}

// sameRoster is how many of the decisions in xs (the next to apply) are
// decided under the node set in force now: up to the first that may change
// it (one that opens a membership motion, or any while one is open). Only
// a passed membership motion changes the node set, from the decision after
// the one that passed it.
func (e *Engine) sameRoster(xs []storedDecision) int {
	if len(e.memberMo) > 0 {
		return 1
	}
	for i, x := range xs {
		if opensMembership(x.b.items) {
			return i + 1
		}
	}
	return len(xs)
}

// verifyStored verifies decisions decided under one node set on up to
// GOMAXPROCS goroutines (verifyDecision), and returns the first failure in
// sequence order as ErrStoreCorrupt.
func (e *Engine) verifyStored(xs []storedDecision) error {
	errs := make([]error, len(xs))
	workers := min(runtime.GOMAXPROCS(0), len(xs))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(xs); i += workers {
				errs[i] = e.verifyDecision(xs[i].seq, xs[i].d)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return e.corrupt("stored decision %d: %v", xs[i].seq, err)
		}
	}
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
// applying one decision overlaps agreeing on the next. It waits for the
// decision to be applied when wait is set or when the decision may change
// the node set (a membership motion is open or being opened): the next
// decision must then be agreed and verified by the new node set. It reports
// whether this decision changed the node set.
func (e *Engine) deliver(p types.Proposal, sigs []types.Signature, live, wait bool) (changed bool) {
	md := &protos.ViewMetadata{}
	if err := proto.Unmarshal(p.Metadata, md); err != nil {
		e.log.Error("bftengine: decided proposal has bad metadata", "err", err)
		return false
	}
	b, err := decodeBatch(p.Payload)
	if err != nil {
		e.log.Error("bftengine: decided proposal has a bad payload", "seq", md.LatestSequence, "err", err)
		b = batch{}
	}
	seq := md.LatestSequence
	e.dmu.Lock()
	if seq <= e.lastSeq {
		e.dmu.Unlock()
		return false
	}
	if seq != e.lastSeq+1 {
		e.dmu.Unlock()
		e.log.Error("bftengine: decision out of order", "have", e.lastSeq, "got", seq)
		return false
	}
	first := e.nextIdx + 1
	body := decisionOf(p, sigs).encode()
	var decHash [32]byte // zero: not stored, no checkpoint ends with it
	if err := e.st.putDecision(seq, first, len(b.items), body); err != nil {
		// The decision is in SmartBFT's hands and other members hold it: a
		// restart replays what was stored and synchronizes the rest.
		e.log.Error("bftengine: decision not stored", "seq", seq, "err", err)
	} else {
		decHash = sha256.Sum256(body)
	}
	e.lastSeq = seq
	e.last = types.Decision{Proposal: p, Signatures: sigs}
	e.nextIdx += uint64(len(b.items))
	e.lastView.Store(md.ViewId)
	if opensMembership(b.items) {
		e.openerSeq.Store(seq)
	}
	st := e.applyState.Load()
	wait = wait || st&1 == 1 || e.openerSeq.Load() > st>>1
	e.dmu.Unlock()
	j := applyJob{seq: seq, b: b, live: live, decHash: decHash}
	if wait {
		j.done = make(chan struct{})
	}
	select {
	case e.applyQ <- j:
	case <-e.done:
		return false
	}
	if !wait {
		return false // cannot change the node set
	}
	select {
	case <-j.done:
	case <-e.done:
		return false
	}
	rs := e.rosters()
	return len(rs) > 1 && rs.last().from == seq+1 && !rs.last().sameNodes(rs[len(rs)-2])
}

// opensMembership reports whether a batch holds a request that opens a
// membership motion. It reads the op kind at its fixed offset; a malformed
// item only makes the engine wait for its apply.
func opensMembership(items [][]byte) bool {
	const kindAt = len(requestMagic) + 32 + 32 + 8
	for _, it := range items {
		if len(it) > kindAt && string(it[:len(requestMagic)]) == requestMagic {
			if k := fsm.OpKind(it[kindAt]); k == fsm.OpMemberAdd || k == fsm.OpMemberRemove {
				return true
			}
		}
	}
	return false
}

type applyJob struct {
	seq     uint64
	b       batch
	live    bool
	decHash [32]byte      // SHA-256 of the decision as stored; zero if it was not
	done    chan struct{} // closed once applied, if set
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
	if j.done != nil {
		defer close(j.done)
	}
	e.mu.Lock()
	before := e.roster()
	stored, applied := e.applyBatch(j.seq, j.b)
	changed := e.roster() != before
	if changed && e.opts.inEpochWindow != nil {
		e.opts.inEpochWindow(e)
	}
	if err := e.st.putEntries(j.seq, stored); err != nil {
		e.log.Error("bftengine: entries not stored", "seq", j.seq, "err", err)
	} else if j.decHash != ([32]byte{}) {
		e.maybeCheckpoint(j.seq, j.decHash)
	}
	e.lastIdx.Store(e.m.LastIndex())
	g := e.m.Group()
	e.curGroup.Store(&g)
	if changed {
		r := e.roster()
		e.self.Store(r.ids[e.cfg.Self.Public()])
		e.comm.setRoster(r, e.self.Load(), e.opts.removedGrace)
		e.log.Info("bftengine: node set changed", "event", "consensus.bft.reconfig", "seq", j.seq, "epoch", g.Epoch,
			"nodes", r.nodes, "self", e.self.Load())
	}
	e.publishApplied(j.seq)
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
	e.decidedItems(j.b.items)
	e.prunePool(j.b.items)
	for i, ch := range wake {
		ch <- got[i] // buffered, one send per waiter
	}
	if changed {
		// After the waiters: a request applied by this decision is not
		// taken for a stale one by its waiter.
		e.pruneRevoked()
		e.epochChanged()
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
	c := e.cons()
	if c == nil || c.Pool == nil {
		return
	}
	pool := c.Pool
	for _, it := range items {
		_ = pool.RemoveRequest(requestInfo(it)) // absent: never here, or already removed
	}
}

// pruneRevoked removes from SmartBFT's pool, after an epoch change, every
// request no member orders any more: signed for an earlier epoch, or by a
// member that left (its signature was checked when it entered the pool, and
// is not again). SmartBFT prunes on a change of the verification
// sequence only when it keeps its controller; when the node set changes it
// starts a new one, which takes the new sequence as its first.
func (e *Engine) pruneRevoked() {
	c := e.cons()
	if c == nil || c.Pool == nil {
		return
	}
	g := e.currentGroup()
	id := g.ID()
	c.Pool.Prune(func(item []byte) error {
		if isBarrier(item) {
			return nil
		}
		// Signatures were checked when the item entered the pool.
		q, err := fsm.DecodeRequest(item)
		switch {
		case err != nil:
			return err
		case q.Group != id:
			return ErrStale
		case !g.IsMember(q.Proposer):
			return consensus.ErrNotMember
		}
		return nil
	})
}

// epochWake is closed when this member next applies an epoch change.
func (e *Engine) epochWake() <-chan struct{} {
	e.epochMu.Lock()
	defer e.epochMu.Unlock()
	return e.epochCh
}

func (e *Engine) epochChanged() {
	e.epochMu.Lock()
	defer e.epochMu.Unlock()
	close(e.epochCh)
	e.epochCh = make(chan struct{})
}

// staleGroup is the earlier epoch of this group whose ID is id, if any: a
// request one of its members signed for it was signed in good faith before
// a membership change, and is refused without blaming whoever relays or
// proposes it.
func (e *Engine) staleGroup(id fsm.ID) (fsm.Group, bool) {
	cur := e.currentGroup().Epoch
	for _, r := range e.rosters() {
		if r.group.Epoch < cur && r.group.ID() == id {
			return r.group, true
		}
	}
	return fsm.Group{}, false
}

// isStale reports whether item is a request for an earlier epoch of this
// group.
func (e *Engine) isStale(item []byte) bool {
	if isBarrier(item) {
		return false
	}
	q, err := fsm.DecodeRequest(item)
	if err != nil || q.Group == e.currentGroup().ID() {
		return false
	}
	_, stale := e.staleGroup(q.Group)
	return stale
}

// applyBatch applies the items of decision seq to the machine; e.mu is held
// (or the engine is not running yet). A membership change among them takes
// effect on the node set from decision seq+1.
func (e *Engine) applyBatch(seq uint64, b batch) ([]storedEntry, []consensus.Applied) {
	stored := make([]storedEntry, 0, len(b.items))
	applied := make([]consensus.Applied, 0, len(b.items))
	epoch := e.m.Epoch()
	for _, it := range b.items {
		g := e.m.Group()
		idx := e.m.LastIndex() + 1
		en := entryOf(b.time, it)
		res := e.m.Apply(idx, en)
		if strings.HasPrefix(res.Motion, "#") && res.Outcome == fsm.OutcomeOpen {
			e.memberMo[res.Motion] = true
		}
		for _, c := range res.Closed {
			delete(e.memberMo, c.Motion)
		}
		stored = append(stored, storedEntry{index: idx, entry: en, result: res, group: g})
		applied = append(applied, consensus.Applied{Index: idx, Entry: en, Result: res})
	}
	if e.m.Epoch() != epoch {
		rs := e.rosters()
		next := append(slices.Clone(rs), rs.last().then(e.m.Group(), seq+1))
		e.ros.Store(&next)
	}
	return stored, applied
}

// publishApplied records that decision seq is applied, and whether a
// membership motion is open after it; e.mu is held (or the engine is not
// running yet). The roster is published before: rosterAt relies on it.
func (e *Engine) publishApplied(seq uint64) {
	st := seq << 1
	if len(e.memberMo) > 0 {
		st |= 1
	}
	e.applyState.Store(st)
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
	wake := e.epochWake() // before the check: a change after it is seen
	if err := e.checkItem(req); err != nil {
		return consensus.Applied{}, fmt.Errorf("bftengine: propose: %w", err)
	}
	return e.submit(ctx, req, wake)
}

// submit enqueues item and awaits it; wake (nil for a barrier) is the
// epochWake taken before item was checked or signed.
func (e *Engine) submit(ctx context.Context, item []byte, wake <-chan struct{}) (consensus.Applied, error) {
	w, err := e.enqueue(item)
	if err != nil {
		return consensus.Applied{}, err
	}
	defer e.unwait(w)
	return e.await(ctx, w, item, wake)
}

// waiter is one call waiting for its item: applied here, or refused by the
// leader it was sent to.
type waiter struct {
	k  [32]byte
	ch chan consensus.Applied
	ob *outbound
}

// enqueue registers a waiter for item and hands it to SmartBFT's pool and to
// the leader. Items enqueued one after another reach the leader in that order.
func (e *Engine) enqueue(item []byte) (waiter, error) {
	w := waiter{k: sha256.Sum256(item)}
	c, self := e.cons(), e.self.Load()
	switch {
	case self == 0:
		return w, fmt.Errorf("bftengine: propose: this node is not in the group's current definition: %w", consensus.ErrNotMember)
	case c == nil:
		return w, fmt.Errorf("bftengine: propose: %w: this member is still catching up with the group", consensus.ErrNoQuorum)
	}
	w.ch = make(chan consensus.Applied, 1)
	e.mu.Lock()
	e.waiters[w.k] = append(e.waiters[w.k], w.ch)
	w.ob = e.trackLocked(w.k)
	e.mu.Unlock()
	if err := c.SubmitRequest(item); err != nil {
		switch {
		case strings.Contains(err.Error(), "already exists"):
			// The same bytes are pending: wait for them.
		case strings.Contains(err.Error(), "already processed"):
			e.unwait(w)
			return w, ErrDuplicate
		default:
			e.unwait(w)
			return w, fmt.Errorf("bftengine: propose: %w: %v", consensus.ErrNoQuorum, err)
		}
	}
	// SmartBFT's pool forwards to the leader only after RequestForwardTimeout;
	// send it now so a follower's request costs one hop, not a timeout.
	if l := e.leaderID(); l != 0 && l != self {
		e.forward(l, w.k, item)
	}
	return w, nil
}

// await waits for item to be applied here. Every resendEvery it sends the
// item to the leader again: a forwarded copy can be lost with a connection,
// and a leader that already ordered it refuses the copy (or, if the copy
// comes late, orders it again and the machine refuses it as a replay). A
// refusal by a leader's gate ends the wait with that refusal; the item
// leaves this member's pool, so that it is not ordered after the caller
// heard it was not (the caller may propose again). So does an epoch change
// (wake closed) after which item names an earlier epoch (ErrStale): no
// member orders it any more.
func (e *Engine) await(ctx context.Context, w waiter, item []byte, wake <-chan struct{}) (consensus.Applied, error) {
	tick := time.NewTicker(resendEvery)
	defer tick.Stop()
	for {
		select {
		case a := <-w.ch:
			return a, nil
		case <-w.ob.refused:
			select {
			case a := <-w.ch:
				return a, nil // applied after all
			default:
			}
			if c := e.cons(); c != nil && c.Pool != nil {
				_ = c.Pool.RemoveRequest(requestInfo(item)) // absent: already gone
			}
			e.mu.Lock()
			err := w.ob.err
			e.mu.Unlock()
			return consensus.Applied{}, err
		case <-wake:
			select {
			case a := <-w.ch:
				return a, nil // applied by the decision that changed the epoch
			default:
			}
			wake = e.epochWake() // before the check, so that no change is missed
			if !e.isStale(item) {
				continue
			}
			if c := e.cons(); c != nil && c.Pool != nil {
				_ = c.Pool.RemoveRequest(requestInfo(item)) // absent: pruned at the change
			}
			return consensus.Applied{}, fmt.Errorf("bftengine: propose: %w: a membership change was decided before it", ErrStale)
		case <-tick.C:
			if l := e.leaderID(); l != 0 && l != e.self.Load() {
				e.forward(l, w.k, item)
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
// promise that: their order of arrival is the caller's.) A request that a
// membership change overtook (ErrStale: it names the epoch before) is
// signed again for the new epoch, up to maxResign times.
func (e *Engine) ProposeOp(ctx context.Context, op fsm.Op) (consensus.Applied, error) {
	for range maxResign {
		a, err := e.proposeOp(ctx, op)
		if !errors.Is(err, ErrStale) {
			return a, err
		}
		e.log.Debug("bftengine: request overtaken by an epoch change, signing it again", "epoch", e.currentGroup().Epoch)
	}
	return consensus.Applied{}, fmt.Errorf("bftengine: propose: the group's epoch changed %d times while the request waited: %w", maxResign, ErrStale)
}

// maxResign bounds how often ProposeOp signs one op again: each time
// needs a membership change decided while the request waited.
const maxResign = 4

func (e *Engine) proposeOp(ctx context.Context, op fsm.Op) (consensus.Applied, error) {
	if e.isClosed() {
		return consensus.Applied{}, fmt.Errorf("bftengine: propose: %w", consensus.ErrClosed)
	}
	wake := e.epochWake() // before the group is read: a change after it is seen
	e.seqMu.Lock()
	e.seq = max(e.seq+1, uint64(time.Now().UnixNano()))
	q, err := fsm.SignRequest(e.cfg.Self, e.currentGroup().ID(), e.seq, op)
	if err != nil {
		e.seqMu.Unlock()
		return consensus.Applied{}, fmt.Errorf("bftengine: propose: %w", err)
	}
	item := q.Encode()
	e.markVerified(sha256.Sum256(item)) // signed here
	if e.opts.onSigned != nil {
		e.opts.onSigned()
	}
	w, err := e.enqueue(item)
	e.seqMu.Unlock()
	if err != nil {
		return consensus.Applied{}, err
	}
	defer e.unwait(w)
	return e.await(ctx, w, item, wake)
}

func (e *Engine) unwait(w waiter) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.untrackLocked(w.k)
	k := w.k
	ws := slices.DeleteFunc(e.waiters[k], func(c chan consensus.Applied) bool { return c == w.ch })
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
	if _, err := e.submit(ctx, e.barrier(), nil); err != nil {
		return fmt.Errorf("bftengine: read: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	fn(e.m)
	return nil
}

// barrier is a new read barrier made by this member.
func (e *Engine) barrier() []byte {
	item := make([]byte, 0, barrierLen)
	item = append(item, barrierMagic...)
	item = append(item, e.cfg.Self.Public().Bytes()...)
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	return append(item, nonce...)
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
	valid := map[identity.PublicKey][]byte{}
	if x.group.IsMember(e.cfg.Self.Public()) { // a member added later does not attest what came before it
		valid[e.cfg.Self.Public()] = e.cfg.Self.Sign(stmt)
	}
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
	leader := e.leaderID()
	r := e.roster()
	view := e.lastView.Load()
	if leader != 0 {
		s.Leader, _ = e.keyOf(leader)
		// The view the current leader leads: the first from the last
		// decision's on whose leader it is.
		if i, ok := slices.BinarySearch(r.nodes, leader); ok {
			n := uint64(len(r.nodes))
			s.Term = view + (uint64(i)+n-view%n)%n
		}
	}
	within := time.Duration(reachableWithin) * e.opts.config.LeaderHeartbeatTimeout
	now := time.Now()
	reach := 0
	self := e.self.Load()
	for _, k := range s.Group.Members {
		ms := consensus.MemberStatus{Key: k}
		id := r.ids[k]
		if id != 0 && id == self {
			ms.Reachable, ms.LastContact = true, now
		} else if l := e.comm.link(id); l != nil {
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
	s.Healthy = leader != 0 && reach >= s.Group.Quorum()
	return s
}

// Close implements consensus.Engine. It also closes the Network's listener.
func (e *Engine) Close() error {
	var err error
	e.closing.Do(func() {
		close(e.done)
		e.comm.stop()
		e.learning.Wait()
		e.catching.Wait()
		if c := e.cons(); c != nil {
			e.stopBFT(c)
		}
		e.comm.close()
		e.applying.Wait()
		e.releaseAll()
		e.stopTickers()
		err = e.closeStores()
	})
	return err
}

// stopBFT stops SmartBFT, waiting at most stopWait: a controller blocked
// handing a decision to a view that is gone (ADR 12) never lets Stop
// return. Its goroutines are then left blocked; they hold no lock of the
// engine's, and a decision they still deliver fails on the closed store
// (a WAL save would make SmartBFT panic: ADR 12, none is expected).
func (e *Engine) stopBFT(c *smartbft.Consensus) {
	stopped := make(chan struct{})
	go func() {
		c.Stop()
		close(stopped)
	}()
	t := time.NewTimer(e.opts.stopWait)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		e.log.Error("bftengine: SmartBFT did not stop; its goroutines are left behind", "event", "consensus.bft.stuck", "after", e.opts.stopWait)
	}
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
//
// It also reads one line. SmartBFT v1.0.1's controller, when the decision
// its view handed it is one its checkpoint already holds (a sync ran
// between the view deciding and the controller delivering, and aborted that
// view), logs redeliverLine and syncs instead of delivering; it then blocks
// handing the decision back to a view that is gone, and hands it to the
// next view's decision instead, so the member applies every later decision
// one decision late and its Close can block (upstream: SmartBFT pull 681).
// redeliver (nil: not watched) tells app.Sync to report a reconfiguration
// to the same node set, which closes that controller and rebuilds
// SmartBFT's components from the checkpoint.
type bftLogger struct {
	l         *slog.Logger
	redeliver *atomic.Bool
}

// redeliverLine is the start of SmartBFT v1.0.1's format string for that
// case (pkg internal/bft, MutuallyExclusiveDeliver.Deliver).
const redeliverLine = "Attempted to deliver block %d via view change but meanwhile view change already synced to seq %d"

func (b bftLogger) logf(level slog.Level, f string, args []any) {
	if b.redeliver != nil && strings.HasPrefix(f, redeliverLine) {
		b.redeliver.Store(true)
	}
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
