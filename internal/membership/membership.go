// Package membership tells a node who is in the federation, where they are and
// whether they are alive, by gossip that cannot lie about keys: every peer
// record is signed by the key it describes, and gossip (hashicorp/memberlist)
// runs only inside the node's mutually authenticated TLS transport.
//
// Guarantees:
//   - a record is believed only if its signature verifies under the key it
//     names, that key is the memberlist node name it travels under, its
//     sequence is not lower than one already seen, and it has not expired;
//     anything else is dropped and reported as Evidence against the
//     TLS-authenticated peer that sent it;
//   - memberlist only ever dials a key it learned from such a record (or a
//     seed the operator gave), pinned to that key, so a lying address can make
//     a dial fail but never reach another key;
//   - statements (revocations, rotations, defined elsewhere) travel with the
//     same checks plus a validator per kind.
//
// Knowing a key grants nothing: admission (transport.PeerSource) and
// authorization stay with their own packages. Limits: memberlist's failure
// detector trusts every member's suspect and dead messages (any admitted
// member can slander another); records are at most MaxRecordBytes; statements
// kept for late joiners are bounded by Config.MaxStatements.
package membership

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/ratelog"
	"github.com/treaty-dev/treaty/internal/transport"
)

// State is what failure detection believes about a member.
type State int

const (
	StateAlive   State = iota + 1 // answering probes
	StateSuspect                  // a member reported it unresponsive; not yet confirmed
	StateDead                     // confirmed unresponsive
	StateLeft                     // announced its own departure
)

// String returns "alive", "suspect", "dead" or "left".
func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "unknown"
}

// Member is one peer as this node knows it.
type Member struct {
	Record Record // its latest verified record
	State  State
	// Via is the relay the member is reached through; zero when it is reached
	// directly. Membership leaves it zero (Record.Relays says which relays a
	// member names); the node fills it with the relay it would dial.
	Via  identity.PublicKey
	Self bool // this node
}

// Seed is a member to join through, as an operator knows it: the key is
// pinned when dialing, so a wrong address fails instead of reaching a stranger.
type Seed struct {
	Key  identity.PublicKey
	Addr string // host:port of its transport
}

// Timings tune failure detection and gossip; see docs/membership.md for how
// they bound detection and spread times. A zero field takes DefaultTimings'.
type Timings struct {
	ProbeInterval    time.Duration // one member probed per interval
	ProbeTimeout     time.Duration // wait for a direct ack before indirect probes
	IndirectChecks   int           // members asked to probe on our behalf
	SuspicionMult    int           // suspicion timeout = mult × log10(n) × ProbeInterval (min)
	SuspicionMaxMult int           // the timeout starts at this × the min, shrinking with confirmations
	GossipInterval   time.Duration // gossip round period
	GossipNodes      int           // members gossiped to per round
	RetransmitMult   int           // a message is sent mult × log10(n+1) times
	PushPullInterval time.Duration // full state exchange with one member
	// DeadReclaim is how long a dead member's name stays bound to its old
	// address; after it a restarted member may come back on a new one.
	DeadReclaim time.Duration
	// StreamTimeout bounds a join or push-pull exchange, dial included.
	StreamTimeout time.Duration
	// Reconnect is how often one dead member (not one that left) is retried
	// with a full state exchange, so that a healed partition merges again:
	// memberlist alone stops talking to the dead.
	Reconnect time.Duration
}

// DefaultTimings are LAN-ish: they aim at convergence within 2 s, failure
// detection within 5 s and statement spread within 3 s for 32 members on a
// low-latency network (docs/membership.md).
func DefaultTimings() Timings {
	return Timings{
		ProbeInterval:    500 * time.Millisecond,
		ProbeTimeout:     400 * time.Millisecond,
		IndirectChecks:   3,
		SuspicionMult:    3,
		SuspicionMaxMult: 2,
		GossipInterval:   50 * time.Millisecond,
		GossipNodes:      4,
		RetransmitMult:   4,
		PushPullInterval: 30 * time.Second,
		DeadReclaim:      10 * time.Second,
		Reconnect:        2 * time.Second,
		StreamTimeout:    5 * time.Second,
	}
}

func (t *Timings) fill() {
	d := DefaultTimings()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&t.ProbeInterval, d.ProbeInterval)
	setDur(&t.ProbeTimeout, d.ProbeTimeout)
	setInt(&t.IndirectChecks, d.IndirectChecks)
	setInt(&t.SuspicionMult, d.SuspicionMult)
	setInt(&t.SuspicionMaxMult, d.SuspicionMaxMult)
	setDur(&t.GossipInterval, d.GossipInterval)
	setInt(&t.GossipNodes, d.GossipNodes)
	setInt(&t.RetransmitMult, d.RetransmitMult)
	setDur(&t.PushPullInterval, d.PushPullInterval)
	setDur(&t.DeadReclaim, d.DeadReclaim)
	setDur(&t.Reconnect, d.Reconnect)
	setDur(&t.StreamTimeout, d.StreamTimeout)
}

func (t *Timings) check() error {
	durs := []struct {
		name     string
		v        time.Duration
		min, max time.Duration
	}{
		{"ProbeInterval", t.ProbeInterval, 10 * time.Millisecond, time.Minute},
		{"ProbeTimeout", t.ProbeTimeout, 5 * time.Millisecond, t.ProbeInterval},
		{"GossipInterval", t.GossipInterval, 5 * time.Millisecond, time.Minute},
		{"PushPullInterval", t.PushPullInterval, 100 * time.Millisecond, time.Hour},
		{"DeadReclaim", t.DeadReclaim, 0, 24 * time.Hour},
		{"Reconnect", t.Reconnect, 100 * time.Millisecond, time.Hour},
		{"StreamTimeout", t.StreamTimeout, 100 * time.Millisecond, 5 * time.Minute},
	}
	for _, d := range durs {
		if d.v < d.min || d.v > d.max {
			return fmt.Errorf("membership: Timings.%s %s out of range [%s, %s]", d.name, d.v, d.min, d.max)
		}
	}
	ints := []struct {
		name     string
		v        int
		min, max int
	}{
		{"IndirectChecks", t.IndirectChecks, 0, 16},
		{"SuspicionMult", t.SuspicionMult, 1, 32},
		{"SuspicionMaxMult", t.SuspicionMaxMult, 1, 32},
		{"GossipNodes", t.GossipNodes, 1, 64},
		{"RetransmitMult", t.RetransmitMult, 1, 32},
	}
	for _, d := range ints {
		if d.v < d.min || d.v > d.max {
			return fmt.Errorf("membership: Timings.%s %d out of range [%d, %d]", d.name, d.v, d.min, d.max)
		}
	}
	return nil
}

// Config configures a Membership. Self and Transport are required; a zero
// field takes the default noted on it.
type Config struct {
	Self identity.PrivateKey // required: signs this node's record; must be the Transport's key
	// Transport is the node's started transport (Addr non-nil); gossip uses
	// its Proto listener and Dial.
	Transport *transport.Transport
	// Record is what this node says about itself. If Addrs lacks the gossip
	// address (the Transport's), it is added first.
	Record Fields
	// Advertise is the gossip address other members dial ("ip:port"). Zero:
	// the Transport's bound address, which is right unless NAT sits between.
	Advertise string
	// RecordTTL is how long this node's records stay valid; they are re-signed
	// when a third of it is left. Zero: 24h; allowed [1m, 720h].
	RecordTTL time.Duration
	// Seeds are joined in the background after New, retried with backoff
	// until one answers or Close. Empty: call Join yourself, or wait to be
	// joined.
	Seeds []Seed
	// Kinds registers the statement kinds this node accepts and relays; others
	// are dropped. The map is copied.
	Kinds map[string]Kind
	// OnChange is called after a member's record or state changed, from one
	// goroutine, in order per member; changes that pile up while it runs are
	// coalesced into the latest. It may call Members. Nil: none.
	OnChange func(Member)
	// OnEvidence is called for every dropped record or statement; it must not
	// block. Nil: evidence is only logged.
	OnEvidence func(Evidence)
	// MaxStatements bounds the statements kept to hand to members that join
	// later (push-pull state); when full, the signer keeping the most loses
	// its oldest. Zero: 256; allowed [1, 4096].
	MaxStatements int
	// Announce, if set, returns statements of Transient kinds this node adds
	// to every push-pull state exchange (at most MaxAnnounce are used). It is
	// called on memberlist's goroutine and must not block.
	Announce func() []Statement
	Timings  Timings
	// Log receives gossip events. Nil: slog.Default().
	Log *slog.Logger
	// Now is the clock for record expiry. Nil: time.Now.
	Now func() time.Time
	// Cut, if set, makes all gossip traffic with a peer vanish while it returns
	// true: packets both ways are dropped and dials fail. It is a fault
	// injection seam for tests (partitions); leave it nil otherwise.
	Cut func(peer identity.PublicKey) bool
}

// Membership runs gossip for one node. All methods are safe for concurrent use.
type Membership struct {
	cfg     Config
	selfKey identity.PublicKey // cfg.Self.Public(), which costs a base58 encoding per call
	log     *slog.Logger
	warns   *ratelog.Limiter // Warn lines members can cause at will
	net     *gossipNet
	ml      *memberlist.Memberlist
	queue   *memberlist.TransmitLimitedQueue
	kinds   map[string]Kind

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// leaveMu orders Leave against Close: memberlist panics on a leave
	// after its shutdown.
	leaveMu sync.Mutex

	mu       sync.Mutex
	self     Record
	selfMeta []byte
	peers    map[identity.PublicKey]*peer
	stmts    map[[32]byte]struct{} // statements accepted (dedup), at most maxSeen
	// maxSeen, maxQueued and maxPeers bound stmts, the broadcast queue and
	// peers (fields so tests can shrink them): any member can mint valid
	// statements, and records of fresh keys, at will.
	maxSeen, maxQueued, maxPeers int
	kept                         []Statement // the ones handed to later joiners, oldest first
	pending                      map[identity.PublicKey]struct{}
	// verifiedCache maps record encodings whose signature verified to the
	// decoded record (cleared when it reaches maxVerified entries).
	verifiedCache map[string]Record
	refused       map[identity.PublicKey]struct{} // see Refuse
	wake          chan struct{}
	closed        bool
}

// peer is what this node knows about one other key.
type peer struct {
	rec   Record
	state State
	// inc and incSeq are the highest memberlist incarnation seen with a
	// verified record for this key and that record's Seq: an honest member
	// never pairs a higher incarnation with a lower Seq.
	inc    uint32
	incSeq uint64
	// suspectInc is the incarnation a suspect message named; an alive message
	// with a higher one clears it.
	suspectInc uint32
	suspect    bool
	// gossipAddr is the address memberlist last knew it at (one of rec.Addrs).
	gossipAddr string
}

// New validates cfg, signs this node's first record and starts gossip. It
// does not wait for Seeds. ctx bounds only the start.
func New(ctx context.Context, cfg Config) (*Membership, error) {
	if cfg.Self.IsZero() {
		return nil, errors.New("membership: Config.Self is required")
	}
	if cfg.Transport == nil {
		return nil, errors.New("membership: Config.Transport is required")
	}
	if !cfg.Transport.Self().Equal(cfg.Self.Public()) {
		return nil, errors.New("membership: Config.Self is not the Transport's identity")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RecordTTL == 0 {
		cfg.RecordTTL = 24 * time.Hour
	}
	if cfg.RecordTTL < time.Minute || cfg.RecordTTL > 720*time.Hour {
		return nil, fmt.Errorf("membership: Config.RecordTTL %s out of range [1m, 720h]", cfg.RecordTTL)
	}
	if cfg.MaxStatements == 0 {
		cfg.MaxStatements = 256
	}
	if cfg.MaxStatements < 1 || cfg.MaxStatements > 4096 {
		return nil, fmt.Errorf("membership: Config.MaxStatements %d out of range [1, 4096]", cfg.MaxStatements)
	}
	cfg.Timings.fill()
	if err := cfg.Timings.check(); err != nil {
		return nil, err
	}
	kinds := make(map[string]Kind, len(cfg.Kinds))
	for name, k := range cfg.Kinds {
		if err := checkKind(name); err != nil {
			return nil, fmt.Errorf("membership: Config.Kinds[%q]: %w", name, err)
		}
		if k.Validate == nil {
			return nil, fmt.Errorf("membership: Config.Kinds[%q].Validate is required", name)
		}
		kinds[name] = k
	}
	for i, s := range cfg.Seeds {
		if s.Key.IsZero() {
			return nil, fmt.Errorf("membership: Config.Seeds[%d].Key is required", i)
		}
		if _, err := net.ResolveTCPAddr("tcp", s.Addr); err != nil {
			return nil, fmt.Errorf("membership: Config.Seeds[%d].Addr %q: %w", i, s.Addr, err)
		}
	}
	adv, err := advertiseAddr(cfg)
	if err != nil {
		return nil, err
	}
	cfg.Record.Addrs = slices.Clone(cfg.Record.Addrs)
	if !slices.Contains(cfg.Record.Addrs, adv.String()) {
		cfg.Record.Addrs = append([]string{adv.String()}, cfg.Record.Addrs...)
	}
	if err := cfg.Record.check(); err != nil {
		return nil, fmt.Errorf("membership: Config.Record: %w", err)
	}

	mctx, cancel := context.WithCancel(context.Background())
	m := &Membership{
		cfg:     cfg,
		selfKey: cfg.Self.Public(),
		log:     cfg.Log,
		kinds:   kinds,
		ctx:     mctx,
		cancel:  cancel,
		peers:   make(map[identity.PublicKey]*peer),
		stmts:   make(map[[32]byte]struct{}),
		pending: make(map[identity.PublicKey]struct{}),
		maxSeen: maxSeenStatements, maxQueued: maxQueuedBroadcasts, maxPeers: maxTrackedPeers,
		wake: make(chan struct{}, 1),

		verifiedCache: make(map[string]Record),
		refused:       make(map[identity.PublicKey]struct{}),
	}
	if m.warns, err = newWarnLimiter(cfg.Log); err != nil {
		cancel()
		return nil, fmt.Errorf("membership: %w", err)
	}
	if err := m.resign(cfg.Record); err != nil {
		cancel()
		return nil, err
	}
	m.net = newGossipNet(cfg.Transport, adv, cfg.Log)
	m.net.drop = cfg.Cut
	m.net.inspect = m.inspectPacket
	m.net.outbound = m.noteOutbound
	m.net.inspectStream = m.inspectStream
	m.net.keyFor = m.keyFor
	m.net.start()

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Self.Public().String()
	mc.Transport = m.net
	mc.AdvertiseAddr = adv.IP.String()
	mc.AdvertisePort = adv.Port
	mc.Delegate = (*delegate)(m)
	mc.Events = (*events)(m)
	mc.Alive = (*delegate)(m)
	mc.EnableCompression = false // inspectPacket must see records verbatim
	mc.DisableTcpPings = true    // packets already travel over TCP
	mc.UDPBufferSize = packetBufferSize
	mc.Logger = log.New(slogWriter{l: cfg.Log, warns: m.warns}, "", 0)
	t := cfg.Timings
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.IndirectChecks = t.IndirectChecks
	mc.SuspicionMult = t.SuspicionMult
	mc.SuspicionMaxTimeoutMult = t.SuspicionMaxMult
	mc.GossipInterval = t.GossipInterval
	mc.GossipNodes = t.GossipNodes
	mc.RetransmitMult = t.RetransmitMult
	mc.PushPullInterval = t.PushPullInterval
	mc.DeadNodeReclaimTime = t.DeadReclaim
	mc.GossipToTheDeadTime = 2 * t.ProbeInterval * time.Duration(t.SuspicionMult)
	mc.TCPTimeout = t.StreamTimeout

	m.queue = &memberlist.TransmitLimitedQueue{RetransmitMult: t.RetransmitMult, NumNodes: m.numNodes}
	ml, err := memberlist.Create(mc)
	if err != nil {
		cancel()
		_ = m.net.Shutdown()
		return nil, fmt.Errorf("membership: start memberlist: %w", err)
	}
	m.ml = ml

	m.wg.Add(4)
	go m.flushWarns()
	go m.deliverChanges()
	go m.refreshRecord()
	go m.reconnect()
	if len(cfg.Seeds) > 0 {
		m.wg.Add(1)
		go m.joinSeeds(cfg.Seeds)
	}
	return m, ctx.Err()
}

func advertiseAddr(cfg Config) (*net.TCPAddr, error) {
	s := cfg.Advertise
	if s == "" {
		a := cfg.Transport.Addr()
		if a == nil {
			return nil, errors.New("membership: Config.Transport is not started (no address)")
		}
		s = a.String()
	}
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil || a.IP == nil || a.IP.IsUnspecified() || a.Port == 0 {
		return nil, fmt.Errorf("membership: Config.Advertise %q is not a dialable ip:port", s)
	}
	return a, nil
}

func (m *Membership) numNodes() int {
	if m.ml == nil {
		return 1
	}
	return m.ml.NumMembers()
}

// resign makes and installs a new self record with f.
func (m *Membership) resign(f Fields) error {
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	seq := uint64(now.UnixMilli())
	if seq <= m.self.Seq {
		seq = m.self.Seq + 1
	}
	r := Record{
		Fields:  Fields{Nickname: f.Nickname, Org: f.Org, Addrs: slices.Clone(f.Addrs), Digest: f.Digest, Relays: slices.Clone(f.Relays)},
		Seq:     seq,
		Expires: now.Add(m.cfg.RecordTTL).Truncate(time.Second),
	}
	if err := SignRecord(m.cfg.Self, &r); err != nil {
		return fmt.Errorf("membership: Config.Record: %w", err)
	}
	b, err := r.Marshal()
	if err != nil {
		return fmt.Errorf("membership: Config.Record: %w", err)
	}
	m.self, m.selfMeta = r, b
	return nil
}

// Self returns this node's current record.
func (m *Membership) Self() Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.self
}

// Update replaces this node's record fields, bumps its sequence, re-signs it
// and spreads it (the gossip address is added to Addrs if missing). It
// returns once the new record is installed; other members hear of it within
// the spread time.
func (m *Membership) Update(ctx context.Context, f Fields) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.Addrs = slices.Clone(f.Addrs)
	if adv := m.net.advertise.String(); !slices.Contains(f.Addrs, adv) {
		f.Addrs = append([]string{adv}, f.Addrs...)
	}
	if err := f.check(); err != nil {
		return fmt.Errorf("membership: update: %w", err)
	}
	if err := m.resign(f); err != nil {
		return err
	}
	if err := m.ml.UpdateNode(m.cfg.Timings.ProbeInterval * 4); err != nil {
		return fmt.Errorf("membership: update: %w", err)
	}
	return nil
}

// refreshRecord re-signs the record when a third of its lifetime is left.
func (m *Membership) refreshRecord() {
	defer m.wg.Done()
	tick := time.NewTicker(min(m.cfg.RecordTTL/12, time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-tick.C:
		}
		self := m.Self()
		if self.Expires.Sub(m.cfg.Now()) > m.cfg.RecordTTL/3 {
			continue
		}
		if err := m.Update(m.ctx, self.Fields); err != nil && m.ctx.Err() == nil {
			m.log.Warn("membership: refreshing own record", "err", err)
		}
	}
}

// Join contacts seeds (push-pull of full state) and returns how many answered.
// It fails only if none did. Dials are pinned to each seed's key.
func (m *Membership) Join(ctx context.Context, seeds []Seed) (int, error) {
	addrs := make([]string, 0, len(seeds))
	for i, s := range seeds {
		if s.Key.IsZero() {
			return 0, fmt.Errorf("membership: join: seeds[%d] has no key", i)
		}
		if s.Key.Equal(m.selfKey) {
			continue
		}
		addrs = append(addrs, s.Key.String()+"/"+s.Addr)
	}
	if len(addrs) == 0 {
		return 0, errors.New("membership: join: no seed other than this node")
	}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := m.ml.Join(addrs)
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		if r.n == 0 && r.err != nil {
			return 0, fmt.Errorf("membership: join: %w", r.err)
		}
		return r.n, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("membership: join: %w", ctx.Err())
	}
}

func (m *Membership) joinSeeds(seeds []Seed) {
	defer m.wg.Done()
	backoff := m.cfg.Timings.ProbeInterval
	for {
		ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
		_, err := m.Join(ctx, seeds)
		cancel()
		if err == nil || m.ctx.Err() != nil {
			return
		}
		m.log.Debug("membership: joining seeds", "err", err, "retry_in", backoff)
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// reconnect retries one random dead member per Timings.Reconnect, at its
// verified gossip address, until its record expires.
func (m *Membership) reconnect() {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.Timings.Reconnect)
	defer tick.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-tick.C:
		}
		now := m.cfg.Now()
		var dead []Seed
		m.mu.Lock()
		for k, p := range m.peers {
			if p.state == StateDead && now.Before(p.rec.Expires) && len(p.rec.Addrs) > 0 {
				dead = append(dead, Seed{Key: k, Addr: p.gossipAddr})
			}
		}
		m.mu.Unlock()
		if len(dead) == 0 {
			continue
		}
		s := dead[rand.IntN(len(dead))]
		ctx, cancel := context.WithTimeout(m.ctx, m.cfg.Timings.Reconnect)
		_, err := m.Join(ctx, []Seed{s})
		cancel()
		if err != nil {
			m.log.Debug("membership: reconnect", "peer", s.Key.Short(), "err", err)
		}
	}
}

// Members returns every member whose record has not expired, this node
// included, sorted by key.
func (m *Membership) Members() []Member {
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Member{{Record: m.self, State: StateAlive, Self: true}}
	for _, p := range m.peers {
		if p.state == 0 || !now.Before(p.rec.Expires) {
			continue
		}
		out = append(out, p.member())
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Record.Key.String(), b.Record.Key.String()) })
	return out
}

// Member returns what this node knows about key.
func (m *Membership) Member(key identity.PublicKey) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if key.Equal(m.selfKey) {
		return Member{Record: m.self, State: StateAlive, Self: true}, true
	}
	p, ok := m.peers[key]
	if !ok || p.state == 0 {
		return Member{}, false
	}
	return p.member(), true
}

func (p *peer) member() Member {
	st := p.state
	if st == StateAlive && p.suspect {
		st = StateSuspect
	}
	r := p.rec
	r.Addrs = slices.Clone(r.Addrs)
	return Member{Record: r, State: st}
}

// Publish checks s (signature, a registered kind, its validator) and, if it
// is new, accepts it locally and gossips it to every member. Publishing a
// statement already known is a no-op.
func (m *Membership) Publish(ctx context.Context, s Statement) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := s.Marshal()
	if err != nil {
		return fmt.Errorf("membership: publish: %w", err)
	}
	if _, err := m.acceptStatement(b); err != nil {
		return fmt.Errorf("membership: publish: %w", err)
	}
	return nil
}

// Statements returns the statements kept for later joiners, oldest first.
func (m *Membership) Statements() []Statement {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.kept)
}

// Leave announces this node's departure and waits up to timeout for it to
// spread. The Membership keeps running until Close.
func (m *Membership) Leave(timeout time.Duration) error {
	m.leaveMu.Lock()
	defer m.leaveMu.Unlock()
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return errors.New("membership: leave after close")
	}
	if err := m.ml.Leave(timeout); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	return nil
}

// Close stops gossip without announcing it (others will detect this node as
// dead; call Leave first for a clean departure) and closes every gossip
// connection. It is idempotent.
func (m *Membership) Close() error {
	m.leaveMu.Lock()
	defer m.leaveMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	err := m.ml.Shutdown()
	m.wg.Wait()
	m.warns.Flush(context.Background(), true) // every count reaches the log
	return err
}

// Warn lines that members can cause (evidence, a full statement store) are
// logged once, then at most once per warnInterval per (member, reason) with
// their count (internal/ratelog).
const (
	warnInterval = 10 * time.Second
	warnKeys     = 128
)

func newWarnLimiter(log *slog.Logger) (*ratelog.Limiter, error) {
	return ratelog.New(ratelog.Config{Logger: log, Interval: warnInterval, MaxKeys: warnKeys})
}

// flushWarns writes counted lines once their interval has passed, even if no
// further event comes.
func (m *Membership) flushWarns() {
	defer m.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			m.warns.Flush(m.ctx, false)
		case <-m.ctx.Done():
			return
		}
	}
}

// Stats are gossip traffic counters since New.
type Stats struct {
	BytesOut, BytesIn uint64 // gossip payload bytes (packets and streams), excluding TLS overhead
	PacketsDropped    uint64 // received packets dropped because memberlist lagged
}

// Stats returns the traffic counters.
func (m *Membership) Stats() Stats {
	return Stats{BytesOut: m.net.bytesOut.Load(), BytesIn: m.net.bytesIn.Load(), PacketsDropped: m.net.dropped.Load()}
}

// keyFor maps a gossip address to the key of the verified record that
// listed it, for memberlist calls that carry no node name.
func (m *Membership) keyFor(addr string) (identity.PublicKey, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, p := range m.peers {
		if p.state != 0 && slices.Contains(p.rec.Addrs, addr) {
			return k, true
		}
	}
	return identity.PublicKey{}, false
}

// changed queues an OnChange call for key. Call with m.mu held.
func (m *Membership) changedLocked(key identity.PublicKey) {
	if m.cfg.OnChange == nil {
		return
	}
	m.pending[key] = struct{}{}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Membership) deliverChanges() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.wake:
		}
		m.mu.Lock()
		var out []Member
		for k := range m.pending {
			if p, ok := m.peers[k]; ok {
				out = append(out, p.member())
			}
		}
		clear(m.pending)
		m.mu.Unlock()
		for _, mem := range out {
			m.cfg.OnChange(mem)
		}
	}
}

func (m *Membership) evidence(e Evidence) {
	m.warns.Log(context.Background(), slog.LevelWarn, "evidence|"+e.Relayer.String()+"|"+e.Reason.String(),
		"membership: dropped gossip", "relayer", e.Relayer, "subject", e.Subject, "reason", e.Reason.String(), "err", e.Err)
	if m.cfg.OnEvidence != nil {
		m.cfg.OnEvidence(e)
	}
}

// checkRecord verifies meta as the record of the memberlist node name at
// gossip address addr, carried with incarnation inc (or without one, inc <
// 0). It returns the record, or an error whose Reason is the evidence.
func (m *Membership) checkRecord(name string, addr string, inc int64, meta []byte) (Record, error) {
	r, err := m.verified(meta)
	if err != nil {
		return r, err
	}
	if r.Key.String() != name {
		return r, fmt.Errorf("%w: record of %s gossiped as %.24s", ErrWrongKey, r.Key.Short(), name)
	}
	if addr != "" && !slices.Contains(r.Addrs, addr) {
		return r, fmt.Errorf("%w: record of %s does not list its gossip address %s", ErrWrongKey, r.Key.Short(), addr)
	}
	m.mu.Lock()
	_, refused := m.refused[r.Key]
	m.mu.Unlock()
	if refused {
		return r, errRefused
	}
	if r.Key.Equal(m.selfKey) {
		return r, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.peers[r.Key]
	if p == nil {
		return r, nil
	}
	if inc >= 0 && uint32(inc) > p.inc && r.Seq < p.incSeq {
		return r, fmt.Errorf("%w: record of %s has seq %d under incarnation %d, after seq %d under %d",
			ErrReplayed, r.Key.Short(), r.Seq, inc, p.incSeq, p.inc)
	}
	return r, nil
}

// maxVerified bounds the cache of verified record encodings.
const maxVerified = 4096

// verified decodes meta and checks its signature and expiry. The same record
// arrives many times (every alive message and push-pull carries it), so
// signatures that verified are remembered by encoding; expiry is checked on
// every call.
func (m *Membership) verified(meta []byte) (Record, error) {
	m.mu.Lock()
	r, ok := m.verifiedCache[string(meta)]
	m.mu.Unlock()
	if !ok {
		var err error
		if r, err = UnmarshalRecord(meta); err != nil {
			return r, err
		}
		if !r.Key.Verify(r.signingBase(), r.Sig) {
			return r, ErrBadSignature
		}
		m.mu.Lock()
		if len(m.verifiedCache) >= maxVerified {
			clear(m.verifiedCache)
		}
		m.verifiedCache[string(meta)] = r
		m.mu.Unlock()
	}
	return r, r.checkExpiry(m.cfg.Now())
}

// errRefused marks a valid record of a key Refuse was called for: dropped,
// but not evidence against whoever relayed it (they may not know yet).
var errRefused = errors.New("membership: key refused")

// Refuse makes this node stop believing key, for a revocation: it is removed
// from Members at once, its records are ignored from now on (not charged as
// evidence, since relayers may not have heard yet), and its pooled gossip
// connection is closed. memberlist keeps probing it until it is found dead,
// which happens at once if the transport refuses its handshakes. Refusing
// this node's own key is a no-op.
func (m *Membership) Refuse(key identity.PublicKey) {
	if key.Equal(m.selfKey) {
		return
	}
	m.mu.Lock()
	m.refused[key] = struct{}{}
	delete(m.peers, key)
	delete(m.pending, key)
	m.mu.Unlock()
	m.net.forget(key)
}

// learn records a verified record carried at incarnation inc (-1: unknown).
func (m *Membership) learn(r Record, inc int64) {
	if r.Key.Equal(m.selfKey) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, refused := m.refused[r.Key]; refused {
		return
	}
	p := m.peers[r.Key]
	if p == nil {
		if len(m.peers) >= m.maxPeers && !m.makeRoomLocked() {
			return // NotifyAlive refuses it
		}
		p = &peer{rec: r}
		m.peers[r.Key] = p
	}
	if r.Seq > p.rec.Seq {
		p.rec = r
		if p.state != 0 {
			m.changedLocked(r.Key)
		}
	}
	if inc >= 0 && uint32(inc) >= p.inc {
		p.inc = uint32(inc)
		p.incSeq = max(p.incSeq, r.Seq)
		if p.suspect && uint32(inc) > p.suspectInc {
			p.suspect = false
			m.changedLocked(r.Key)
		}
	}
}

// maxTrackedPeers bounds the keys a node tracks, as maxPushNodes bounds the
// members of one push-pull.
const maxTrackedPeers = maxPushNodes

// makeRoomLocked forgets one key that is neither alive nor suspect (never
// seen alive, dead or left), if there is one. Call with m.mu held.
func (m *Membership) makeRoomLocked() bool {
	for k, p := range m.peers {
		if p.state != StateAlive && p.state != StateSuspect && !p.suspect {
			delete(m.peers, k)
			delete(m.pending, k)
			return true
		}
	}
	return false
}

// acceptStatement decodes, verifies and (if new) applies and gossips one
// statement; it reports whether the statement was new. Relayers of bad ones
// are charged by inspectPacket and inspectStream, which see them first.
func (m *Membership) acceptStatement(b []byte) (bool, error) {
	s, err := UnmarshalStatement(b)
	if err != nil {
		return false, err
	}
	kind, ok := m.kinds[s.Kind]
	if !ok {
		return false, fmt.Errorf("membership: statement kind %q is not registered", s.Kind)
	}
	if err := s.Verify(); err != nil {
		return false, err
	}
	id := sha256.Sum256(b)
	m.mu.Lock()
	_, seen := m.stmts[id]
	m.mu.Unlock()
	if seen {
		return false, nil
	}
	if err := kind.Validate(s); err != nil {
		return false, fmt.Errorf("membership: %s statement rejected: %w", s.Kind, err)
	}
	m.mu.Lock()
	if _, seen := m.stmts[id]; seen {
		m.mu.Unlock()
		return false, nil
	}
	if len(m.stmts) >= m.maxSeen {
		m.forgetSeenLocked()
	}
	m.stmts[id] = struct{}{}
	if !kind.Transient { // else its announcer keeps it in its own state
		if len(m.kept) >= m.cfg.MaxStatements {
			m.evictKeptLocked(s.Signer)
		}
		m.kept = append(m.kept, s)
	}
	m.mu.Unlock()
	m.queue.QueueBroadcast(statementBroadcast(b))
	m.queue.Prune(m.maxQueued)
	if kind.Accept != nil {
		kind.Accept(s)
	}
	return true, nil
}

// evictKeptLocked makes room in the full store of kept statements for one
// signed by signer: the signer keeping the most (signer itself on a tie)
// loses its oldest. Any member can sign statements at will, so a flood
// displaces its own statements before anyone else's; refusing new ones
// instead would let one burst keep every later statement from later joiners.
// Call with m.mu held.
func (m *Membership) evictKeptLocked(signer identity.PublicKey) {
	count := make(map[identity.PublicKey]int, len(m.kept))
	for _, s := range m.kept {
		count[s.Signer]++
	}
	victim := signer // on a tie among others, the signer of the oldest
	for _, s := range m.kept {
		if count[s.Signer] > count[victim] {
			victim = s.Signer
		}
	}
	i := slices.IndexFunc(m.kept, func(s Statement) bool { return s.Signer == victim })
	if i < 0 { // signer keeps none and all others keep as few: the oldest goes
		i = 0
	}
	m.warns.Log(context.Background(), slog.LevelWarn, "storefull|"+m.kept[i].Signer.String(),
		"membership: statement store full; the oldest statement of the member keeping the most makes room",
		"signer", m.kept[i].Signer, "kind", m.kept[i].Kind, "max", m.cfg.MaxStatements)
	m.kept = slices.Delete(m.kept, i, i+1)
}

// Bounds of statement deduplication and gossip: about 5 MiB each.
const (
	maxSeenStatements   = 1 << 16
	maxQueuedBroadcasts = 4096 // the oldest are dropped; push-pull repairs what is lost
)

// forgetSeenLocked empties the statement digests but for the kept
// statements'. A forgotten statement seen again is checked, applied and
// gossiped again: harmless, as statements are idempotent, and bounded by the
// broadcast queue. Call with m.mu held.
func (m *Membership) forgetSeenLocked() {
	clear(m.stmts)
	for _, s := range m.kept {
		if b, err := s.Marshal(); err == nil {
			m.stmts[sha256.Sum256(b)] = struct{}{}
		}
	}
}

type statementBroadcast []byte

func (b statementBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b statementBroadcast) Message() []byte                       { return b }
func (b statementBroadcast) Finished()                             {}

// delegate holds the memberlist callbacks, off Membership's API.
type delegate Membership

func (d *delegate) m() *Membership { return (*Membership)(d) }

// NodeMeta implements memberlist.Delegate: the signed record.
func (d *delegate) NodeMeta(limit int) []byte {
	m := d.m()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.selfMeta) > limit {
		return nil // cannot happen: records are at most MaxRecordBytes
	}
	return slices.Clone(m.selfMeta)
}

// NotifyMsg implements memberlist.Delegate: a gossiped statement. Its relayer
// was already checked by inspectPacket.
func (d *delegate) NotifyMsg(b []byte) {
	if _, err := d.m().acceptStatement(b); err != nil {
		d.m().log.Debug("membership: statement dropped", "err", err)
	}
}

// GetBroadcasts implements memberlist.Delegate.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m().queue.GetBroadcasts(overhead, limit)
}

// LocalState implements memberlist.Delegate: the kept statements and this
// node's announcements, each length-prefixed (uint16).
func (d *delegate) LocalState(bool) []byte {
	var b []byte
	for _, s := range append(d.m().Statements(), d.m().announced()...) {
		enc, err := s.Marshal()
		if err != nil {
			continue
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(enc)))
		b = append(b, enc...)
	}
	return b
}

// MergeRemoteState implements memberlist.Delegate.
func (d *delegate) MergeRemoteState(buf []byte, _ bool) {
	for _, s := range splitStatements(buf) {
		if _, err := d.m().acceptStatement(s); err != nil {
			d.m().log.Debug("membership: statement dropped", "err", err)
		}
	}
}

// splitStatements cuts push-pull user state into statement encodings; a
// truncated tail is ignored (each piece is still verified).
func splitStatements(buf []byte) [][]byte {
	var out [][]byte
	for len(buf) >= 2 {
		n := int(binary.BigEndian.Uint16(buf))
		if n > MaxStatementBytes || len(buf) < 2+n {
			break
		}
		out = append(out, buf[2:2+n])
		buf = buf[2+n:]
	}
	return out
}

// NotifyAlive implements memberlist.AliveDelegate: the last check before
// memberlist believes a node. inspectPacket has already checked packets with
// their relayer; this catches every other path.
func (d *delegate) NotifyAlive(n *memberlist.Node) error {
	m := d.m()
	r, err := m.checkRecord(n.Name, n.Address(), -1, n.Meta)
	if err != nil {
		return err
	}
	if !r.Key.Equal(m.selfKey) {
		m.mu.Lock()
		p := m.peers[r.Key]
		m.mu.Unlock()
		if p != nil && r.Seq < p.rec.Seq {
			return fmt.Errorf("%w: record of %s has seq %d, already have %d", ErrReplayed, r.Key.Short(), r.Seq, p.rec.Seq)
		}
	}
	m.learn(r, -1)
	if !r.Key.Equal(m.selfKey) {
		m.mu.Lock()
		p := m.peers[r.Key]
		m.mu.Unlock()
		if p == nil {
			return fmt.Errorf("membership: %s not tracked: %d keys tracked already", r.Key.Short(), m.maxPeers)
		}
	}
	return nil
}

// events implements memberlist.EventDelegate. memberlist calls it with its
// node lock held, so it only updates the map and queues OnChange.
type events Membership

func (e *events) set(n *memberlist.Node, st State) {
	m := (*Membership)(e)
	key, err := identity.ParseDID(n.Name)
	if err != nil || key.Equal(m.selfKey) {
		return
	}
	if r, err := m.verified(n.Meta); err == nil && r.Key.Equal(key) {
		m.learn(r, -1)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.peers[key]
	if p == nil {
		return // never verified: NotifyAlive refused it
	}
	p.gossipAddr = n.Address()
	// Once Close has begun it waits on m.wg: no Add after that (memberlist
	// may still be serving a push-pull that reports joins).
	if st == StateAlive && p.state != StateAlive && !m.closed {
		addr := p.gossipAddr // n is memberlist's, written under its lock after we return
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.net.warm(key, addr)
		}()
	}
	if st != StateAlive {
		p.suspect = false
	}
	if p.state != st {
		p.state = st
		m.changedLocked(key)
	}
}

func (e *events) NotifyJoin(n *memberlist.Node)   { e.set(n, StateAlive) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.set(n, StateAlive) }
func (e *events) NotifyLeave(n *memberlist.Node) {
	if n.State == memberlist.StateLeft {
		e.set(n, StateLeft)
	} else {
		e.set(n, StateDead)
	}
}

// slogWriter turns memberlist's "[LEVEL] memberlist: ..." lines into slog.
// Its errors and warnings go through warns: a member can cause them at will
// (each junk packet is an "[ERR] ... msg type (n) not supported" line), so
// each kind of line is logged once, then once per interval with its count.
type slogWriter struct {
	l     *slog.Logger
	warns *ratelog.Limiter
}

func (w slogWriter) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	lvl := slog.LevelDebug
	switch {
	case strings.HasPrefix(s, "[ERR]"):
		lvl = slog.LevelWarn
	case strings.HasPrefix(s, "[WARN]"):
		lvl = slog.LevelInfo
	}
	if lvl == slog.LevelDebug {
		w.l.Log(context.Background(), lvl, s)
	} else {
		w.warns.Log(context.Background(), lvl, "memberlist|"+lineKind(s), s)
	}
	return len(p), nil
}

// lineKind is a memberlist line up to its first variable part (a number, a
// quoted name, an address), at most 64 bytes.
func lineKind(s string) string {
	if i := strings.IndexAny(s, "0123456789'\"(%="); i >= 0 {
		s = s[:i]
	}
	return s[:min(len(s), 64)]
}
