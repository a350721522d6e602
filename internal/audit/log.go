package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Config configures a Log. Path and Identity are required; a zero field takes
// the default noted on it.
type Config struct {
	Path     string              // required: the SQLite file, created when missing (audit.db)
	Identity identity.PrivateKey // required: signs checkpoints; must be the key the log was created with
	// Origin is the checkpoint origin line and note key name. Empty: OriginFor
	// (Identity.Public()), which is what peers' witnesses require.
	Origin string
	// Every commit signs a new head checkpoint. Of those, one is retained in the
	// checkpoints table whenever the size has crossed a multiple of
	// CheckpointEvery or CheckpointInterval has passed since the last retained
	// one; the others are replaced by the next head. Retained checkpoints bound
	// how far Verify must search to locate a rewritten entry.
	CheckpointEvery    int           // zero: 256; allowed [1, 1<<20]
	CheckpointInterval time.Duration // zero: 1s; allowed [1ms, 24h]
	MaxBatch           int           // entries per group commit; zero: 1024; allowed [1, 65536]
	// DeferFor bounds how long the writer holds entries taken with
	// AppendDeferred while nothing else asks for a commit: they ride with the
	// next other append, a Wait on one of them, Close, or, at the latest,
	// a commit of their own DeferFor after the first of them was taken.
	// Zero: 20ms; allowed [1µs, 1s].
	DeferFor time.Duration
	// TailCheck is how many of the newest entries Open recomputes and checks
	// against the head checkpoint before resuming. Zero: 4096; negative: all.
	TailCheck int
	// MaxBytes caps the bytes audit.db's pages in use may take (its WAL adds
	// a few MiB between checkpoints):
	// beyond it Append refuses new entries with a *HighWaterError (the log's own
	// alert, pruning and fork records still go in). Zero: no cap; otherwise at
	// least 1 MiB. Pages freed by Prune count as free.
	MaxBytes int64
	// MinFreeBytes is the free space Append leaves on the log's filesystem:
	// below it new entries are refused the same way. Zero: the smaller of 1 GiB
	// and 5% of the filesystem; negative: not checked.
	MinFreeBytes int64
	// SpaceCheckInterval is how stale the measured size and free space may be
	// (they are measured at least every 1024 entries too). Zero: 250ms;
	// allowed [1µs, 1m].
	SpaceCheckInterval time.Duration
	Statfs             func(dir string) (DiskSpace, error) // nil: statfs(2) of the log's directory
	Now                func() time.Time                    // nil: time.Now
	Logger             *slog.Logger                        // nil: discard
}

func (c *Config) setDefaults() {
	if c.Origin == "" && !c.Identity.IsZero() {
		c.Origin = OriginFor(c.Identity.Public())
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = 256
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Second
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1024
	}
	if c.TailCheck == 0 {
		c.TailCheck = 4096
	}
	if c.DeferFor == 0 {
		c.DeferFor = 20 * time.Millisecond
	}
	if c.SpaceCheckInterval == 0 {
		c.SpaceCheckInterval = defaultSpaceCheck
	}
	if c.Statfs == nil {
		c.Statfs = statfs
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	if c.Path == "" {
		return errors.New("audit: Config.Path is required")
	}
	if c.Identity.IsZero() {
		return errors.New("audit: Config.Identity is required")
	}
	if _, err := noteVerifier(c.Origin, c.Identity.Public()); err != nil {
		return fmt.Errorf("audit: Config.Origin: %w", err)
	}
	if n := c.CheckpointEvery; n < 1 || n > 1<<20 {
		return fmt.Errorf("audit: Config.CheckpointEvery %d outside [1, 1048576]", n)
	}
	if d := c.CheckpointInterval; d < time.Millisecond || d > 24*time.Hour {
		return fmt.Errorf("audit: Config.CheckpointInterval %v outside [1ms, 24h]", d)
	}
	if n := c.MaxBatch; n < 1 || n > 65536 {
		return fmt.Errorf("audit: Config.MaxBatch %d outside [1, 65536]", n)
	}
	if d := c.DeferFor; d < time.Microsecond || d > time.Second {
		return fmt.Errorf("audit: Config.DeferFor %v outside [1µs, 1s]", d)
	}
	if n := c.MaxBytes; n != 0 && (n < minMaxBytes || n > 1<<60) {
		return fmt.Errorf("audit: Config.MaxBytes %d is neither zero (no cap) nor in [1 MiB, 2^60]", n)
	}
	if n := c.MinFreeBytes; n > 1<<60 {
		return fmt.Errorf("audit: Config.MinFreeBytes %d above 2^60", n)
	}
	if d := c.SpaceCheckInterval; d < time.Microsecond || d > time.Minute {
		return fmt.Errorf("audit: Config.SpaceCheckInterval %v outside [1µs, 1m]", d)
	}
	return nil
}

// Log is a node's audit log. All methods are safe for concurrent use. One Log
// owns its file: open it once per process (Verify, OpenReader and Export may
// read it at the same time, from any process).
type Log struct {
	cfg     Config
	wdb     *sql.DB   // one connection: wconn
	wconn   *sql.Conn // pinned, used only by the committer after Open
	r       *Reader
	signer  *noteSigner
	witness *Witness

	q         queue
	wake      chan struct{} // buffered 1: the writer goroutine is now the committer
	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	head     atomic.Pointer[Checkpoint]
	overMark atomic.Pointer[HighWaterError] // the writer's space.over, for AppendAsync
	pruneMu  sync.Mutex                     // one Prune or PruneRows at a time

	commits, appended atomic.Uint64
	commitStats       commitStats // batch sizes and durations (stats.go)

	// Owned by the committer (see queue).
	tr           tree
	lastRetained struct {
		size uint64
		time time.Time
	}
	stmts struct {
		insEntry, insCP, delCP *sql.Stmt
	}
	hasher    *leafHasher // used by the committer only
	indexFrom uint64      // set by init: see Reader.indexFrom
	space     space       // disk high-water state, committer only
}

// op is one unit of work for the writer: an entry to append, or a function to
// run inside the next group-commit transaction.
type op struct {
	entry    prepared
	fn       func(ctx context.Context, tx *txn) error
	done     chan opResult // buffered 1
	deferred bool          // AppendDeferred: starts no commit of its own
	dep      *op           // refused unless dep is committed before it or with it
	failed   error         // set by the writer when it refuses the op or its commit fails
}

type opResult struct {
	index uint64
	cp    *Checkpoint
	err   error
}

// Open opens or creates the log at cfg.Path. Before it returns it checks the
// newest cfg.TailCheck entries and the stored tree against the head
// checkpoint, so a node restarted after a crash resumes only on an intact log;
// an error wrapping ErrTampered means it is not (run Verify for the full report).
func Open(ctx context.Context, cfg Config) (*Log, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	signer, err := newNoteSigner(cfg.Origin, cfg.Identity)
	if err != nil {
		return nil, err
	}
	d, err := dsn(cfg.Path, false)
	if err != nil {
		return nil, err
	}
	// Create the file 0600 before SQLite does (it would apply the umask);
	// SQLite gives the -wal and -shm files the database file's mode.
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", cfg.Path, err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", cfg.Path, err)
	}
	if fi.Size() == 0 {
		if err := setPageSize(ctx, cfg.Path); err != nil {
			return nil, err
		}
	}
	wdb, err := sql.Open("sqlite", d)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", cfg.Path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	// The writer holds its connection for the log's life and runs its own
	// BEGIN and COMMIT: a database/sql transaction starts a goroutine per
	// commit to watch its context, a wake-up on every call's path.
	wconn, err := wdb.Conn(ctx)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("audit: open %s: %w", cfg.Path, err)
	}
	l := &Log{
		cfg: cfg, wdb: wdb, wconn: wconn, signer: signer,
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}),
		hasher: newLeafHasher(),
	}
	l.q.idle.L = &l.q.mu
	l.q.epoch = time.Now()
	if err := l.init(ctx); err != nil {
		l.closeWriter()
		return nil, err
	}
	if err := restrictModes(cfg.Path); err != nil {
		l.closeWriter()
		return nil, err
	}
	r, err := openReadDB(cfg.Path, 4)
	if err != nil {
		l.closeWriter()
		return nil, err
	}
	l.r = &Reader{db: r, pub: cfg.Identity.Public(), indexFrom: l.indexFrom}
	l.witness = &Witness{l: l, locks: map[identity.PublicKey]*sync.Mutex{}, streaks: map[identity.PublicKey]*streak{}}
	go l.writer()
	return l, nil
}

// restrictModes makes the log and its -wal and -shm files 0600, whatever the
// umask or an earlier version left: entries name peers and carry content.
func restrictModes(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("audit: %w", err)
		}
	}
	return nil
}

// init creates the schema, checks the owner, verifies the tail and loads the
// writer's state.
func (l *Log) init(ctx context.Context) error {
	var mode string
	if err := l.wconn.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("audit: open %s: %w", l.cfg.Path, err)
	}
	if mode != "wal" {
		return fmt.Errorf("audit: %s: journal_mode is %q, want wal", l.cfg.Path, mode)
	}
	tx, err := l.wconn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", l.cfg.Path, err)
	}
	defer tx.Rollback()
	exists, err := tableExists(ctx, tx)
	if err != nil {
		return err
	}
	if exists {
		cols, err := hasIndexColumns(ctx, tx)
		if err != nil {
			return err
		}
		if !cols {
			if _, err := tx.ExecContext(ctx, upgrade); err != nil {
				return fmt.Errorf("audit: upgrade schema: %w", err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, Schema); err != nil {
		return fmt.Errorf("audit: create schema: %w", err)
	}
	pub := l.cfg.Identity.Public().String()
	for _, kv := range [][2]string{{"format", formatName}, {"key", pub}, {"origin", l.cfg.Origin}} {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT DO NOTHING`, kv[0], kv[1]); err != nil {
			return fmt.Errorf("audit: write meta: %w", err)
		}
	}
	meta, err := readMeta(ctx, tx)
	if err != nil {
		return err
	}
	from, err := indexFrom(meta, true)
	if err != nil {
		return err
	}
	l.indexFrom = from
	if meta["key"] != pub {
		return fmt.Errorf("audit: %s was created by %s, not by this identity %s", l.cfg.Path, meta["key"], pub)
	}
	if meta["origin"] != l.cfg.Origin {
		return fmt.Errorf("audit: %s has origin %q, Config.Origin is %q", l.cfg.Path, meta["origin"], l.cfg.Origin)
	}

	pr, ok, err := latestPrune(ctx, tx, l.cfg.Identity.Public(), l.cfg.Origin)
	if err != nil {
		return fmt.Errorf("%w (run treaty audit verify)", err)
	}
	if !ok {
		pr = PruneRecord{Root: emptyRoot}
	}
	size, msg, err := readHead(ctx, tx)
	switch {
	case errors.Is(err, errNoHead):
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM entries`).Scan(&n); err != nil {
			return fmt.Errorf("audit: count entries: %w", err)
		}
		if n != 0 {
			return &BadEntryError{Index: 0, Reason: "entries exist but no signed checkpoint covers them"}
		}
		cp, err := l.signer.checkpoint(0, emptyRoot)
		if err != nil {
			return err
		}
		now := l.cfg.Now()
		ts, err := formatTime(now)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints(size, note, time, retained) VALUES(0, ?, ?, 1)`, string(cp.Note), ts); err != nil {
			return fmt.Errorf("audit: write first checkpoint: %w", err)
		}
		l.head.Store(&cp)
		l.lastRetained.time = now
	case err != nil:
		return err
	default:
		cp, err := OpenCheckpoint(msg, l.cfg.Identity.Public())
		if err != nil {
			return &BadCheckpointError{Size: size, Reason: err.Error()}
		}
		if cp.Size != size || cp.Origin != l.cfg.Origin {
			return &BadCheckpointError{Size: size, Reason: "note does not match its row"}
		}
		tr, err := l.checkTail(ctx, tx, cp, &pr, from)
		if err != nil {
			return err
		}
		l.tr = tr
		l.head.Store(&cp)
		var rs int64
		var rt string
		if err := tx.QueryRowContext(ctx, `SELECT size, time FROM checkpoints WHERE retained = 1 ORDER BY size DESC LIMIT 1`).Scan(&rs, &rt); err == nil {
			l.lastRetained.size = uint64(rs)
			l.lastRetained.time, _ = time.Parse(timeLayout, rt)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit: open %s: %w", l.cfg.Path, err)
	}
	return l.prepareStmts(ctx)
}

// checkTail recomputes the newest entries and the root against the head; pr
// is the latest pruning record (Seq 0: never pruned).
func (l *Log) checkTail(ctx context.Context, q querier, head Checkpoint, pr *PruneRecord, indexFrom uint64) (tree, error) {
	var n, minIdx, maxIdx sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT count(*), min(idx), max(idx) FROM entries`).Scan(&n, &minIdx, &maxIdx); err != nil {
		return tree{}, fmt.Errorf("audit: count entries: %w", err)
	}
	if head.Size < pr.Rows || uint64(n.Int64) != head.Size-pr.Rows ||
		(n.Int64 > 0 && (uint64(minIdx.Int64) != pr.Rows || uint64(maxIdx.Int64) != head.Size-1)) {
		return tree{}, &BadEntryError{Index: max(pr.Rows, min(head.Size, uint64(n.Int64)+pr.Rows)),
			Reason: fmt.Sprintf("log has %d rows (indexes %d to %d; pruned below %d) but the head checkpoint covers %d entries",
				n.Int64, minIdx.Int64, maxIdx.Int64, pr.Rows, head.Size)}
	}
	from := pr.Rows
	if l.cfg.TailCheck > 0 && head.Size > uint64(l.cfg.TailCheck) {
		from = max(from, head.Size-uint64(l.cfg.TailCheck))
	}
	tr, err := loadTree(ctx, q, from, pr)
	if err != nil {
		return tree{}, err
	}
	// The retained checkpoints inside the tail are checked too.
	cps, _, err := loadCheckpoints(ctx, q, l.cfg.Identity.Public(), l.cfg.Origin, from)
	if err != nil {
		return tree{}, err
	}
	v := &verifier{tr: tr, cps: cps}
	if err := v.checkpoints(); err != nil {
		return tree{}, err
	}
	res := scanChunk(ctx, q, from, head.Size, pr.Content, newLeafHasher(), true, indexFrom)
	if res.err != nil {
		return tree{}, res.err
	}
	if err := v.feed(res); err != nil {
		return tree{}, err
	}
	if err := v.finish(head.Size); err != nil {
		return tree{}, err
	}
	return v.tr, nil
}

func (l *Log) prepareStmts(ctx context.Context) error {
	var err error
	prep := func(dst **sql.Stmt, q string) {
		if err == nil {
			*dst, err = l.wconn.PrepareContext(ctx, q)
		}
	}
	prep(&l.stmts.insEntry, `INSERT INTO entries(idx, leaf, content, hashes, peer_key, rare_kind) VALUES(?, ?, ?, ?, ?, ?)`)
	prep(&l.stmts.insCP, `INSERT INTO checkpoints(size, note, time, retained) VALUES(?, ?, ?, ?)`)
	prep(&l.stmts.delCP, `DELETE FROM checkpoints WHERE size = ? AND retained = 0`)
	if err != nil {
		l.closeStmts()
		return fmt.Errorf("audit: prepare statements: %w", err)
	}
	return nil
}

// closeWriter releases the writer's statements, connection and database.
func (l *Log) closeWriter() error {
	l.closeStmts()
	return errors.Join(l.wconn.Close(), l.wdb.Close())
}

func (l *Log) closeStmts() {
	for _, s := range []*sql.Stmt{l.stmts.insEntry, l.stmts.insCP, l.stmts.delCP} {
		if s != nil {
			s.Close()
		}
	}
}

// Append logs e and returns its index once the entry, and a signed checkpoint
// covering it, are durable on disk (committed with an fsync of the WAL).
// Concurrent Appends share one transaction and one fsync (group commit).
//
// When ctx ends first, Append returns ctx.Err() and the entry may or may not
// have been logged: treat the action as not logged. An Append that commits
// its own batch (the first on an idle log) cannot be interrupted: it returns
// when that commit ends, whatever ctx. An entry is refused with
// ErrInvalidEntry when a field is malformed or too large.
func (l *Log) Append(ctx context.Context, e Entry) (uint64, error) {
	idx, _, err := l.AppendCheckpoint(ctx, e)
	return idx, err
}

// AppendCheckpoint is Append that also returns the signed checkpoint committed
// with the entry (its Size is greater than the index): the receipt a callee
// returns to its caller.
func (l *Log) AppendCheckpoint(ctx context.Context, e Entry) (uint64, Checkpoint, error) {
	p, err := prepare(e)
	if err != nil {
		return 0, Checkpoint{}, err
	}
	res, err := l.submit(ctx, &op{entry: p, done: make(chan opResult, 1)})
	if err != nil {
		return 0, Checkpoint{}, err
	}
	return res.index, *res.cp, nil
}

// Pending is an entry the writer has taken and will commit with its next
// group commit; Wait tells when it is durable, or why it is not.
type Pending struct {
	l    *Log
	o    *op
	res  opResult
	done bool
}

// AppendAsync hands e to the writer and returns as soon as the writer holds
// it, before it is durable; its commit starts at once. The writer commits
// entries in the order it takes them, so an entry appended after AppendAsync
// returns is never committed before this one (it can be committed without it
// only when this one's commit fails, which Wait reports). Over the disk
// high-water mark it refuses at once with a *HighWaterError, as Append would.
//
// The entry counts as logged only once Wait returns nil: an action that must
// not be seen before its entry is durable waits for it first.
func (l *Log) AppendAsync(ctx context.Context, e Entry) (*Pending, error) {
	return l.appendPending(ctx, e, false)
}

// AppendDeferred is AppendAsync without a commit of its own: the entry holds
// its place in the log order and is committed with the next entry appended
// any other way (typically one that names it in AppendAfter), when Wait is
// called on it, at Close, or at the latest Config.DeferFor after the writer
// took it. It saves a commit (a transaction, a checkpoint signature and an
// fsync) for an entry that is only ever seen together with a later one.
func (l *Log) AppendDeferred(ctx context.Context, e Entry) (*Pending, error) {
	return l.appendPending(ctx, e, true)
}

func (l *Log) appendPending(ctx context.Context, e Entry, deferred bool) (*Pending, error) {
	p, err := prepare(e)
	if err != nil {
		return nil, err
	}
	if hw := l.overMark.Load(); hw != nil {
		return nil, hw
	}
	o := &op{entry: p, done: make(chan opResult, 1), deferred: deferred}
	lead, err := l.add(ctx, o)
	if err != nil {
		return nil, err
	}
	if lead {
		l.wake <- struct{}{} // AppendAsync returns at once: the writer goroutine commits
	}
	return &Pending{l: l, o: o}, nil
}

// AppendAfter is Append for an entry that must never be durable without dep:
// it commits e with dep or after it, and refuses it with a *DependencyError
// when dep did not become durable. Its successful return therefore means
// both entries are durable; it does not wait for dep first, so a deferred
// dep and e share one commit.
func (l *Log) AppendAfter(ctx context.Context, e Entry, dep *Pending) (uint64, error) {
	p, err := prepare(e)
	if err != nil {
		return 0, err
	}
	o := &op{entry: p, done: make(chan opResult, 1)}
	if dep != nil {
		if dep.l != l {
			return 0, fmt.Errorf("%w: AppendAfter's dependency belongs to another log", ErrInvalidEntry)
		}
		o.dep = dep.o
	}
	res, err := l.submit(ctx, o)
	return res.index, err
}

// Wait returns the entry's index once it and a signed checkpoint covering
// it are durable, or the error that kept it out of the log; for a deferred
// entry it asks the writer to commit now (on an idle log it commits on the
// caller's goroutine, and that commit is not interrupted by ctx). When ctx
// ends first it returns ctx.Err() and the outcome is unknown; Wait may be
// called again. Not safe for concurrent use.
func (p *Pending) Wait(ctx context.Context) (uint64, error) {
	if !p.done {
		select {
		case p.res = <-p.o.done:
			p.done = true
		default:
			if p.o.deferred && p.l.askFlush() {
				p.l.lead(p.o) // returns once p.o is answered
				p.res, p.done = <-p.o.done, true
				return p.res.index, p.res.err
			}
			select {
			case p.res = <-p.o.done:
				p.done = true
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
	}
	return p.res.index, p.res.err
}

// exec runs fn inside the next group-commit transaction.
func (l *Log) exec(ctx context.Context, fn func(ctx context.Context, tx *txn) error) error {
	_, err := l.submit(ctx, &op{fn: fn, done: make(chan opResult, 1)})
	return err
}

func (l *Log) submit(ctx context.Context, o *op) (opResult, error) {
	lead, err := l.add(ctx, o)
	if err != nil {
		return opResult{}, err
	}
	if lead {
		l.lead(o) // returns once o is committed or refused: its answer is known
		r := <-o.done
		return r, r.err
	}
	select {
	case r := <-o.done:
		return r, r.err
	case <-ctx.Done():
		return opResult{}, ctx.Err()
	}
}

// txn is the committer's view of one group-commit transaction.
type txn struct {
	l   *Log
	tx  execer    // the writer's connection, inside the transaction
	ins *sql.Stmt // INSERT INTO entries, on the same connection
	ts  string    // commit time of the batch
}

// execer is the part of *sql.Conn (or *sql.Tx) a transaction's work uses.
type execer interface {
	querier
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// addLeaf adds one prepared entry to the tree and returns its row.
func (t *txn) addLeaf(p prepared) pendingRow {
	l := t.l
	idx := l.tr.size
	leaf := leafBytes(make([]byte, 0, len(leafVersionPrefix)+48+len(p.body)), idx, t.ts, p.body)
	hashes := l.tr.add(l.hasher.sum(leaf), make([]byte, 0, storedLen(idx)))
	// The row's leaf is the buffer itself, not a copy: nothing writes to
	// leaf after this, and it is the largest thing a call allocates here.
	return pendingRow{idx: idx, leaf: unsafe.String(unsafe.SliceData(leaf), len(leaf)), content: p.content, hashes: hashes, peerKey: p.peerKey, rareKind: p.rareKind}
}

type pendingRow struct {
	idx      uint64
	leaf     string
	content  []byte
	hashes   []byte
	peerKey  string
	rareKind any // string, or nil for the call kinds
}

func (t *txn) insert(ctx context.Context, r pendingRow) error {
	if _, err := t.ins.ExecContext(ctx, int64(r.idx), r.leaf, r.content, r.hashes, r.peerKey, r.rareKind); err != nil {
		return fmt.Errorf("audit: insert entry %d: %w", r.idx, err)
	}
	return nil
}

// append adds one prepared entry to the tree and the entries table.
func (t *txn) append(ctx context.Context, p prepared) (uint64, error) {
	r := t.addLeaf(p)
	return r.idx, t.insert(ctx, r)
}

// commit runs one batch in one transaction and answers every op in it.
func (l *Log) commit(batch []*op) {
	defer l.commitStats.observe(len(batch), time.Now())
	ctx := context.Background() // the batch is shared: no one caller may cancel it
	alert := l.checkSpace(ctx)
	hw := l.space.over
	kept := batch[:0]
	for _, o := range batch {
		switch {
		case hw != nil && o.fn == nil:
			// Over the mark: refuse ordinary entries; the log's own records
			// (alert, pruning, witness) are the reserve the mark leaves room for.
			l.refuse(o, hw)
		case o.dep != nil && o.dep.failed != nil:
			// Its dependency was taken earlier, so it is committed or refused
			// by now, or refused above in this very batch.
			l.refuse(o, &DependencyError{Err: o.dep.failed})
		default:
			kept = append(kept, o)
		}
	}
	batch = kept
	if len(batch) == 0 && alert == nil {
		return
	}
	now := l.cfg.Now()
	saved := l.tr
	results := make([]opResult, len(batch))
	cp, err := l.commitTx(ctx, now, batch, results, alert)
	if err != nil {
		l.tr = saved
		l.cfg.Logger.Error("audit: commit failed", "event", "audit.commit_failed", "entries", len(batch), "err", err)
		for _, o := range batch {
			l.refuse(o, err)
		}
		return
	}
	l.commits.Add(1)
	for i, o := range batch {
		if o.fn == nil {
			l.appended.Add(1)
			l.space.since++
		}
		results[i].cp = cp
		o.done <- results[i]
	}
}

// refuse answers o with err; an op that depends on o is refused in turn.
func (l *Log) refuse(o *op, err error) {
	o.failed = err
	o.done <- opResult{err: err}
}

// Stats counts the work of this Log since Open.
type Stats struct {
	Entries uint64 // entries appended
	Commits uint64 // group-commit transactions (each one fsync and one signature)
}

// Stats returns the counters; Entries/Commits is the mean batch size.
func (l *Log) Stats() Stats {
	return Stats{Entries: l.appended.Load(), Commits: l.commits.Load()}
}

func (l *Log) commitTx(ctx context.Context, now time.Time, batch []*op, results []opResult, alert *prepared) (*Checkpoint, error) {
	ts, err := formatTime(now)
	if err != nil {
		return nil, err
	}
	c := l.wconn
	if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
		return nil, fmt.Errorf("audit: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			c.ExecContext(ctx, "ROLLBACK")
		}
	}()
	commit := func() error {
		if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
			return fmt.Errorf("audit: commit: %w", err)
		}
		committed = true
		return nil
	}
	t := &txn{l: l, tx: c, ins: l.stmts.insEntry, ts: ts}
	// Witness work first: it may append entries of its own.
	for _, o := range batch {
		if o.fn != nil {
			if err := o.fn(ctx, t); err != nil {
				return nil, err
			}
		}
	}
	rows := make([]pendingRow, 0, len(batch)+1)
	if alert != nil {
		rows = append(rows, t.addLeaf(*alert))
	}
	for i, o := range batch {
		if o.fn == nil {
			r := t.addLeaf(o.entry)
			results[i].index = r.idx
			rows = append(rows, r)
		}
	}
	prev := l.head.Load()
	if l.tr.size == prev.Size {
		if err := commit(); err != nil {
			return nil, err
		}
		return prev, nil
	}
	// The tree is complete: sign the new head. A large batch is signed while
	// SQLite takes its rows; a small one inline, since waking a goroutine on
	// a busy machine took longer than its inserts (BENCHMARKS.md, "Audit
	// append cost": 75 µs waiting against ~20 µs of inserts).
	type signed struct {
		cp  Checkpoint
		err error
	}
	sigc := make(chan signed, 1)
	size, root := l.tr.size, l.tr.root()
	sign := func() {
		cp, err := l.signer.checkpoint(size, root)
		sigc <- signed{cp, err}
	}
	if len(rows) <= inlineSignRows {
		sign()
	} else {
		go sign()
	}
	sig := func() signed { return <-sigc }
	for _, r := range rows {
		if err := t.insert(ctx, r); err != nil {
			sig() // the signer owns no resources, but do not leave it behind
			return nil, err
		}
	}
	s := sig()
	if s.err != nil {
		return nil, s.err
	}
	cp := &s.cp
	retained := size/uint64(l.cfg.CheckpointEvery) > l.lastRetained.size/uint64(l.cfg.CheckpointEvery) ||
		now.Sub(l.lastRetained.time) >= l.cfg.CheckpointInterval
	if _, err := l.stmts.insCP.ExecContext(ctx, int64(size), string(cp.Note), ts, retained); err != nil {
		return nil, fmt.Errorf("audit: write checkpoint %d: %w", size, err)
	}
	if _, err := l.stmts.delCP.ExecContext(ctx, int64(prev.Size)); err != nil {
		return nil, fmt.Errorf("audit: replace checkpoint %d: %w", prev.Size, err)
	}
	if err := commit(); err != nil {
		return nil, err
	}
	if retained {
		l.lastRetained.size, l.lastRetained.time = size, now
	}
	l.head.Store(cp)
	return cp, nil
}

// inlineSignRows is the largest batch whose checkpoint the writer signs
// itself rather than beside its inserts (~15-20 µs each).
const inlineSignRows = 2

// Checkpoint returns the latest signed checkpoint; it covers every entry whose
// Append has returned.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	select {
	case <-l.closing:
		return Checkpoint{}, ErrClosed
	default:
	}
	return *l.head.Load(), nil
}

// Get returns entry index with its content (nil when pruned or never kept).
func (l *Log) Get(ctx context.Context, index uint64) (Entry, error) { return l.r.Get(ctx, index) }

// List returns the entries that match f, oldest first unless f.Reverse.
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) { return l.r.List(ctx, f) }

// Prove returns an inclusion proof of entry index in the latest checkpoint.
func (l *Log) Prove(ctx context.Context, index uint64) (Proof, error) { return l.r.Prove(ctx, index) }

// ProveAt returns an inclusion proof of entry index in cp, an earlier
// checkpoint of this log (the one AppendCheckpoint returned for a receipt).
func (l *Log) ProveAt(ctx context.Context, index uint64, cp Checkpoint) (Proof, error) {
	return l.r.ProveAt(ctx, index, cp)
}

// ConsistencyProof proves that the tree of oldSize entries is a prefix of the
// tree of newSize entries (RFC 6962 §2.1.2, tlog order). It returns
// ErrBeyondSize when newSize exceeds the log.
func (l *Log) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([][32]byte, error) {
	return l.r.ConsistencyProof(ctx, oldSize, newSize)
}

// Witness returns the log's witness of peers' checkpoints.
func (l *Log) Witness() *Witness { return l.witness }

// Close stops the writer after committing what was already submitted, and
// closes the database. It is idempotent.
func (l *Log) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.drainForClose()
		close(l.closing)
		<-l.done
		err = errors.Join(l.r.Close(), l.closeWriter())
	})
	return err
}
