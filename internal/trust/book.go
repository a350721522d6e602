package trust

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/treaty-dev/treaty/internal/homedir"
)

// Errors callers branch on.
var (
	ErrClosed      = errors.New("trust: book closed")
	ErrLocked      = errors.New("trust: state file is held by another book (is the node running?)")
	ErrUnknownKind = errors.New("trust: unknown evidence kind")
	ErrBadPeer     = errors.New("trust: bad peer id")
)

// maxPeerLen bounds a peer key; a did:key for ed25519 is 56 bytes.
const maxPeerLen = 512

// fileVersion is the version of the state file format written by this package.
const fileVersion = 1

// Snapshot is one peer's trust as an operator or a policy sees it.
type Snapshot struct {
	Peer            string        `json:"peer"`
	Score           float64       `json:"score"`
	Level           Level         `json:"level"`
	Floor           *Level        `json:"floor,omitempty"`
	Ceiling         *Level        `json:"ceiling,omitempty"`
	Quarantined     bool          `json:"quarantined"`
	QuarantineCause *Evidence     `json:"quarantine_cause,omitempty"`
	Good            float64       `json:"good"` // decayed good evidence above the prior
	Bad             float64       `json:"bad"`  // decayed bad evidence above the prior
	Recent          []Evidence    `json:"recent"`
	DecayETA        time.Duration `json:"decay_eta_ns"` // until the score is within 0.01 of the prior
	Updated         time.Time     `json:"updated"`      // zero for a peer with no evidence
}

// Standing is the part of a Snapshot the call path needs; getting it allocates nothing.
type Standing struct {
	Score       float64
	Level       Level
	Quarantined bool
}

// Book holds the trust State of every peer, safe for concurrent use, persisted to a
// JSON file (one Book per file; Open takes an exclusive lock on path+".lock").
//
// Durability: a change of level, a quarantine and every operator change are written
// (temp file, fsync, rename, fsync of the directory) before the method returns;
// other evidence is written within Config.FlushEvery and on Close. A crash can lose
// at most that window of evidence that changed no level.
type Book struct {
	path string
	lock *os.File
	now  func() time.Time
	log  *slog.Logger

	mu     sync.RWMutex
	cfg    Config
	m      model             // of cfg
	peers  map[string]*State // never nil values; a State is changed in place under mu
	seq    uint64            // bumped on every change to peers
	timer  *time.Timer       // pending background write, or nil
	closed bool
	notify func(peer string, c LevelChange)

	wmu     sync.Mutex // serialises writes of the file
	written uint64     // seq of the state last written
}

type fileFormat struct {
	Version int               `json:"version"`
	Peers   map[string]*State `json:"peers"`
}

// Open loads the book at path (a missing file is an empty book), creating the parent
// directory if needed, and locks it against a second Book.
func Open(cfg Config, path string) (*Book, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("trust: Open: path is required")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("trust: Open: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("trust: Open: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("trust: Open: lock %s: %w", path, err)
	}
	peers, err := readFile(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	b := &Book{path: path, lock: lock, cfg: cfg, m: cfg.model(), peers: peers, now: cfg.Now, log: cfg.Logger}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	return b, nil
}

func readFile(path string) (map[string]*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]*State{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trust: read %s: %w", path, err)
	}
	return decodeFile(data, path)
}

func decodeFile(data []byte, path string) (map[string]*State, error) {
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("trust: parse %s: %w", path, err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("trust: %s has version %d, want %d", path, f.Version, fileVersion)
	}
	for p, st := range f.Peers {
		if err := checkPeer(p); err != nil {
			return nil, fmt.Errorf("trust: %s: %w", path, err)
		}
		if st == nil {
			return nil, fmt.Errorf("trust: %s: peer %q has no state", path, p)
		}
	}
	if f.Peers == nil {
		f.Peers = map[string]*State{}
	}
	return f.Peers, nil
}

// ReadFile returns snapshots of the book at path without locking it, for a CLI that
// runs while no node holds the book. It never writes.
func ReadFile(cfg Config, path string, now time.Time) ([]Snapshot, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	peers, err := readFile(path)
	if err != nil {
		return nil, err
	}
	m := cfg.model()
	out := make([]Snapshot, 0, len(peers))
	for p, st := range peers {
		st.advance(&m, now)
		out = append(out, snapshot(&m, p, st, now))
	}
	slices.SortFunc(out, func(a, b Snapshot) int { return cmp.Compare(a.Peer, b.Peer) })
	return out, nil
}

func checkPeer(p string) error {
	if p == "" || len(p) > maxPeerLen {
		return fmt.Errorf("%w: length %d outside [1, %d]", ErrBadPeer, len(p), maxPeerLen)
	}
	return nil
}

// OnLevelChange registers fn to receive every level change, whatever caused it:
// evidence (the same change Observe returns), decay noticed by Get, Standing or
// List, and operator changes. fn runs on the caller's goroutine after the change is
// persisted and the book's lock released; it must not call back into the Book.
// Audit level changes in fn or from Observe's result, not both.
func (b *Book) OnLevelChange(fn func(peer string, c LevelChange)) {
	b.mu.Lock()
	b.notify = fn
	b.mu.Unlock()
}

// Update replaces the model configuration; levels are re-evaluated lazily under the
// new thresholds, with hysteresis from each peer's current level.
func (b *Book) Update(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cfg.Now, cfg.Logger = b.cfg.Now, b.cfg.Logger
	b.cfg, b.m = cfg, cfg.model()
	return nil
}

// Observe records evidence about peer and returns the level change it caused, if any.
// A zero e.At means now. A decay-only change noticed first goes to OnLevelChange with
// Cause.Kind KindDecay. The error is non-nil when the evidence is malformed or a
// required write failed; the evidence is then still in memory.
func (b *Book) Observe(peer string, e Evidence) (LevelChange, error) {
	if err := checkPeer(peer); err != nil {
		return LevelChange{}, err
	}
	if !e.Kind.Observable() {
		return LevelChange{}, fmt.Errorf("%w %q", ErrUnknownKind, e.Kind)
	}
	if e.At.IsZero() {
		e.At = b.now()
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return LevelChange{}, ErrClosed
	}
	cfg := b.cfg
	st := b.peers[peer]
	if st == nil {
		st = new(State)
		b.peers[peer] = st
	}
	wasQuarantined := st.quarantined
	decay := st.advance(&b.m, e.At)
	var change LevelChange
	*st, change = st.Observe(cfg, e)
	b.seq++
	urgent := decay.Changed() || change.Changed() || st.quarantined != wasQuarantined
	if !urgent {
		b.scheduleLocked(cfg)
	}
	notify := b.notify
	b.mu.Unlock()

	var err error
	if urgent {
		err = b.flush()
	}
	if notify != nil {
		if decay.Changed() {
			notify(peer, decay)
		}
		if change.Changed() {
			notify(peer, change)
		}
	}
	return change, err
}

// scheduleLocked arranges a background write within FlushEvery. b.mu must be held.
func (b *Book) scheduleLocked(cfg Config) {
	if b.timer == nil {
		b.timer = time.AfterFunc(cfg.flushEvery(), b.background)
	}
}

func (b *Book) background() {
	b.mu.Lock()
	b.timer = nil
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return // Close writes the final state
	}
	if err := b.flush(); err != nil {
		b.log.Error("trust: background write failed; will retry", "path", b.path, "err", err)
		b.mu.Lock()
		if !b.closed {
			b.scheduleLocked(b.cfg)
		}
		b.mu.Unlock()
	}
}

// Flush writes pending evidence now.
func (b *Book) Flush() error { return b.flush() }

func (b *Book) flush() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.RLock()
	seq := b.seq
	if seq == b.written {
		b.mu.RUnlock()
		return nil
	}
	data, err := json.Marshal(fileFormat{Version: fileVersion, Peers: b.peers})
	b.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("trust: encode state: %w", err)
	}
	if err := writeAtomic(b.path, data); err != nil {
		return err
	}
	b.written = seq
	return nil
}

// writeAtomic replaces path with data so a reader or a crash sees the old file or
// the new one, never a mix.
func writeAtomic(path string, data []byte) error {
	if err := homedir.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	return nil
}

// refresh commits peer's state advanced to now when its natural level moved (so
// hysteresis keeps a true base), and persists and announces an effective change.
// Reads call it only when they saw such a move, which is rare.
func (b *Book) refresh(peer string, now time.Time) {
	b.mu.Lock()
	st := b.peers[peer]
	if st == nil || b.closed {
		b.mu.Unlock()
		return
	}
	c := st.advance(&b.m, now)
	b.seq++
	notify := b.notify
	b.mu.Unlock()
	if c.Changed() {
		b.afterChange(peer, notify, c)
	}
}

func (b *Book) afterChange(peer string, notify func(string, LevelChange), cs ...LevelChange) {
	if err := b.flush(); err != nil {
		b.log.Error("trust: write of a level change failed", "path", b.path, "peer", peer, "err", err)
	}
	if notify != nil {
		for _, c := range cs {
			notify(peer, c)
		}
	}
}

// Standing returns peer's score and level at now without allocating or copying the
// peer's state; for the call path. A peer with no evidence has the prior's score and
// level.
func (b *Book) Standing(peer string, now time.Time) Standing {
	b.mu.RLock()
	st := b.peers[peer]
	if st == nil {
		sc := b.m.prior
		l := plainLevel(b.m.t, sc)
		b.mu.RUnlock()
		return Standing{Score: sc, Level: l}
	}
	sc, natural, eff := st.at(&b.m, now)
	stale := natural != st.baseNatural(&b.m)
	out := Standing{Score: sc, Level: eff, Quarantined: st.quarantined}
	b.mu.RUnlock()
	if stale {
		b.refresh(peer, now)
	}
	return out
}

// Get returns peer's snapshot at now.
func (b *Book) Get(peer string, now time.Time) Snapshot {
	b.mu.RLock()
	st := b.peers[peer]
	if st == nil {
		var zero State
		s := snapshot(&b.m, peer, &zero, now)
		b.mu.RUnlock()
		return s
	}
	_, natural, _ := st.at(&b.m, now)
	stale := natural != st.baseNatural(&b.m)
	n := *st
	n.advance(&b.m, now)
	s := snapshot(&b.m, peer, &n, now)
	b.mu.RUnlock()
	if stale {
		b.refresh(peer, now)
	}
	return s
}

// List returns every peer with evidence or operator settings, sorted by peer.
func (b *Book) List(now time.Time) []Snapshot {
	type change struct {
		peer string
		c    LevelChange
	}
	var changes []change
	b.mu.Lock()
	out := make([]Snapshot, 0, len(b.peers))
	for p, st := range b.peers {
		if !b.closed {
			if c := st.advance(&b.m, now); c.Changed() {
				changes = append(changes, change{p, c})
			}
			b.seq++
		}
		out = append(out, snapshot(&b.m, p, st, now))
	}
	notify := b.notify
	b.mu.Unlock()
	for _, c := range changes {
		b.afterChange(c.peer, notify, c.c)
	}
	slices.SortFunc(out, func(a, b Snapshot) int { return cmp.Compare(a.Peer, b.Peer) })
	return out
}

func snapshot(m *model, peer string, st *State, now time.Time) Snapshot {
	g, bad := st.decayed(m, now)
	s := Snapshot{
		Peer: peer, Score: m.score(g, bad), Level: st.current(m),
		Floor: st.Floor(), Ceiling: st.Ceiling(), Quarantined: st.quarantined,
		Good: g, Bad: bad, Recent: st.Recent(), DecayETA: st.decayETA(m, now), Updated: st.updated,
	}
	if st.quarantined {
		c := st.cause
		s.QuarantineCause = &c
	}
	return s
}

// SetFloor sets, or with nil clears, the lowest level peer can have outside
// quarantine.
func (b *Book) SetFloor(peer string, l *Level) error {
	return b.operator(peer, func(cfg Config, st State, now time.Time) (State, LevelChange, error) {
		return st.SetFloor(cfg, l, now)
	})
}

// SetCeiling sets, or with nil clears, the highest level peer can have.
func (b *Book) SetCeiling(peer string, l *Level) error {
	return b.operator(peer, func(cfg Config, st State, now time.Time) (State, LevelChange, error) {
		return st.SetCeiling(cfg, l, now)
	})
}

// Lift ends peer's quarantine; its level then follows its score again.
func (b *Book) Lift(peer string) error {
	return b.operator(peer, func(cfg Config, st State, now time.Time) (State, LevelChange, error) {
		n, c := st.Lift(cfg, now)
		return n, c, nil
	})
}

// Forget drops everything known about peer, for a peer removed from the book of
// peers.
func (b *Book) Forget(peer string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	delete(b.peers, peer)
	b.seq++
	b.mu.Unlock()
	return b.flush()
}

func (b *Book) operator(peer string, op func(Config, State, time.Time) (State, LevelChange, error)) error {
	if err := checkPeer(peer); err != nil {
		return err
	}
	now := b.now()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	cfg := b.cfg
	var st State
	if p := b.peers[peer]; p != nil {
		st = *p
	}
	decay := st.advance(&b.m, now)
	st, c, err := op(cfg, st, now)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	b.peers[peer] = &st
	b.seq++
	notify := b.notify
	b.mu.Unlock()
	err = b.flush()
	if notify != nil {
		if decay.Changed() {
			notify(peer, decay)
		}
		if c.Changed() {
			notify(peer, c)
		}
	}
	return err
}

// Close writes pending evidence and releases the file lock. It is idempotent;
// afterwards Observe and the operator methods return ErrClosed.
func (b *Book) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.mu.Unlock()
	err := b.flush()
	b.wmu.Lock()
	if cerr := b.lock.Close(); err == nil {
		err = cerr
	}
	b.wmu.Unlock()
	return err
}
