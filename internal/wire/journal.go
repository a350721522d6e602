package wire

import (
	"bufio"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// DefaultReplayJournalSyncEvery is how often, at most, the journal is
// synced to disk while requests arrive: a host crash (power loss, kernel
// panic) forgets at most the nonces accepted in the last interval plus the
// time one sync takes (while a sync takes longer than the interval, about two
// syncs' time). 100 ms keeps that window a small fraction of the 60 s a
// request stays valid, at no more than ten syncs a second off the call path.
const DefaultReplayJournalSyncEvery = 100 * time.Millisecond

// ReplayJournalConfig configures OpenReplayJournal. Path and Now are
// required; a zero field otherwise takes the default noted on it.
type ReplayJournalConfig struct {
	Path string    // the current file; Path+".old" holds the period before
	Now  time.Time // entries expired before Now are dropped at open
	// SyncEvery bounds how long an accepted nonce may be in the kernel's
	// page cache only. 0: DefaultReplayJournalSyncEvery; else 1 ms..1 s.
	SyncEvery time.Duration
	Logger    *slog.Logger // sync failures; nil: slog.Default()
}

// ReplayJournal keeps a Verifier's replay window on disk, so that a node
// restarted within a request's lifetime still refuses a request it served
// before the restart (ADR 0024).
//
// Every nonce the window records is appended to the journal, one write(2)
// per accepted request, before the request is accepted; a Forget appends a
// tombstone. The write reaches the kernel, which is enough for the process
// being killed. A syncer goroutine makes it durable against a host crash:
// after a write it syncs the journal, at most once per SyncEvery and never
// while idle, so a host crash forgets at most the nonces accepted in the
// last SyncEvery plus the time one sync takes. The call path never waits
// for a sync. A failed sync is logged and serving goes on (see the ADR).
//
// Two files bound the journal: path holds what was written since the last
// rotation, path+".old" what was written in the rotation period before.
// A rotation, once a period has passed, replaces path+".old" with path and
// starts path again; the period (MaxTTL + 2*MaxSkew + 1 s) is longer than
// any entry is held, so what a rotation drops has expired. Opening reads
// both files, keeps the entries not yet expired, writes them to
// path+".old" and starts path empty.
type ReplayJournal struct {
	path   string
	f      *os.File  // set by the Verifier's goroutine only, under mu
	since  time.Time // when f started
	period time.Duration
	live   []journalEntry // read by OpenReplayJournal, restored by NewVerifier
	taken  bool           // a Verifier uses this journal

	// The syncer. dirty is set by each write; the first one since the last
	// sync also wakes the syncer through kick.
	dirty    atomic.Bool
	kick     chan struct{} // one slot
	mu       sync.Mutex    // f (against the syncer's read), retired, dirDirty
	retired  []*os.File    // rotated out, not yet synced; the syncer closes them
	dirDirty bool          // a file was created or renamed since the directory's last sync
	stop     chan struct{} // closed by Close
	done     chan struct{} // closed by the syncer when it returns
	syncFile func(*os.File) error
	log      *slog.Logger
}

// journalEntry is one record: the nonce's key, whose share it counts
// against, and its expiry (unix nanoseconds; 0 is a tombstone).
type journalEntry struct {
	peer  identity.PublicKey
	key   ReplayKey
	until int64
}

// journalRecordBytes is one record: peer key, replay key, big-endian until.
const journalRecordBytes = ed25519.PublicKeySize + len(ReplayKey{}) + 8

// OpenReplayJournal reads the journal at cfg.Path (absent files are empty),
// keeps the entries still held at cfg.Now, rewrites the journal to hold
// only them, and starts its syncer; Close stops it. Files are created with
// mode 0600. A torn record at the end of a file (the process died inside a
// write) is ignored.
func OpenReplayJournal(cfg ReplayJournalConfig) (*ReplayJournal, error) {
	if cfg.Path == "" {
		return nil, errors.New("wire: ReplayJournalConfig.Path is empty")
	}
	if cfg.Now.IsZero() {
		return nil, errors.New("wire: ReplayJournalConfig.Now is zero")
	}
	if cfg.SyncEvery == 0 {
		cfg.SyncEvery = DefaultReplayJournalSyncEvery
	}
	if cfg.SyncEvery < time.Millisecond || cfg.SyncEvery > time.Second {
		return nil, fmt.Errorf("wire: ReplayJournalConfig.SyncEvery = %v, want 1ms..1s", cfg.SyncEvery)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return openReplayJournal(cfg, (*os.File).Sync)
}

// openReplayJournal is OpenReplayJournal on a validated cfg, syncing with
// syncFile (tests count or fail syncs with it).
func openReplayJournal(cfg ReplayJournalConfig, syncFile func(*os.File) error) (*ReplayJournal, error) {
	path, now := cfg.Path, cfg.Now
	held := map[ReplayKey]journalEntry{}
	for _, p := range []string{path + ".old", path} {
		if err := readJournal(p, now.UnixNano(), held); err != nil {
			return nil, err
		}
	}
	j := &ReplayJournal{path: path, since: now, kick: make(chan struct{}, 1), stop: make(chan struct{}),
		done: make(chan struct{}), syncFile: syncFile, log: cfg.Logger}
	for _, e := range held {
		j.live = append(j.live, e)
	}
	// The live entries go to .old first, atomically: a crash before path is
	// emptied leaves them in both files, which reads the same.
	if err := writeJournalFile(path+".old", j.live); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("wire: replay journal: %w", err)
	}
	j.f = f
	j.dirDirty = true // path may be new: its entry is synced with its first record
	go j.syncLoop(cfg.SyncEvery)
	return j, nil
}

// readJournal applies the records of the file at p to held, in order,
// skipping entries expired before now (unix nanoseconds), so held never
// grows past the live entries.
func readJournal(p string, now int64, held map[ReplayKey]journalEntry) error {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("wire: replay journal: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var rec [journalRecordBytes]byte
	for {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil // the end, or a torn last record
			}
			return fmt.Errorf("wire: replay journal %s: %w", p, err)
		}
		var e journalEntry
		// A key that does not parse was never a verified peer's; the entry
		// still guards its nonce, counted against the zero key's share.
		e.peer, _ = identity.PublicKeyFromEd25519(rec[:ed25519.PublicKeySize])
		copy(e.key[:], rec[ed25519.PublicKeySize:])
		e.until = int64(binary.BigEndian.Uint64(rec[journalRecordBytes-8:]))
		switch {
		case e.until == 0:
			delete(held, e.key)
		case e.until >= now:
			held[e.key] = e
		}
	}
}

// writeJournalFile replaces p with entries through a synced temp file and
// a rename.
func writeJournalFile(p string, entries []journalEntry) (err error) {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*.tmp")
	if err != nil {
		return fmt.Errorf("wire: replay journal: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("wire: replay journal: %w", err)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	for _, e := range entries {
		if _, err := bw.Write(e.record()); err != nil {
			return fmt.Errorf("wire: replay journal: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("wire: replay journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("wire: replay journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("wire: replay journal: %w", err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("wire: replay journal: %w", err)
	}
	if d, err := os.Open(filepath.Dir(p)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (e journalEntry) record() []byte {
	b := make([]byte, 0, journalRecordBytes)
	pk := e.peer.Ed25519()
	if pk == nil {
		pk = make([]byte, ed25519.PublicKeySize)
	}
	b = append(b, pk...)
	b = append(b, e.key[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(e.until))
}

// append writes e, first rotating when a period has passed since path
// started. The caller (Verifier) serializes calls.
func (j *ReplayJournal) append(e journalEntry, now time.Time) error {
	if j.f == nil {
		return errors.New("wire: replay journal is closed")
	}
	if now.Sub(j.since) >= j.period {
		// A rotation that fails leaves the entry to the file being written,
		// which a start reads all the same; the next append tries again.
		_ = j.rotate(now)
	}
	return j.write(e)
}

// write appends e to path without rotating: one write(2); the syncer
// makes it durable.
func (j *ReplayJournal) write(e journalEntry) error {
	if j.f == nil {
		return errors.New("wire: replay journal is closed")
	}
	if _, err := j.f.Write(e.record()); err != nil {
		return fmt.Errorf("wire: replay journal: %w", err)
	}
	j.markDirty()
	return nil
}

// markDirty tells the syncer there is something to sync, without blocking.
// Only the first call since the syncer's last sync needs to wake it.
func (j *ReplayJournal) markDirty() {
	if j.dirty.Load() || j.dirty.Swap(true) {
		return
	}
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// rotate makes path the new path+".old" and starts path empty. If path is
// gone (an earlier rotation renamed it and then could not create it again,
// so the file being written is .old), it only creates path. The file
// rotated out goes to the syncer, which syncs and closes it.
func (j *ReplayJournal) rotate(now time.Time) error {
	if err := os.Rename(j.path, j.path+".old"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("wire: replay journal rotation: %w", err)
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("wire: replay journal rotation: %w", err)
	}
	j.mu.Lock()
	j.retired = append(j.retired, j.f)
	j.f, j.since, j.dirDirty = f, now, true
	j.mu.Unlock()
	j.markDirty()
	return nil
}

// syncLoop syncs the journal after writes, at most once per every: the
// first write since a sync wakes it, and it waits until every has passed
// since its previous sync. It returns when stop is closed, leaving the
// last sync to Close.
func (j *ReplayJournal) syncLoop(every time.Duration) {
	defer close(j.done)
	t := time.NewTimer(every)
	t.Stop()
	var last time.Time
	failing := false
	for {
		select {
		case <-j.stop:
			return
		case <-j.kick:
		}
		if wait := every - time.Since(last); wait > 0 {
			t.Reset(wait)
			select {
			case <-j.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		synced, err := j.syncNow()
		switch {
		case err != nil && !failing:
			// Logged once per run of failures: the nonces written meanwhile
			// survive a process crash, not a host crash.
			j.log.Error("replay journal sync failed; a host crash could forget recent nonces", "file", j.path, "err", err)
			failing = true
		case err == nil && synced && failing:
			j.log.Info("replay journal sync works again", "file", j.path)
			failing = false
		}
	}
}

// syncNow syncs what was written since the last sync: the files rotated
// out (then closed), the current file, and the directory when a file was
// created or renamed in it. It reports whether there was anything to sync.
// Only one goroutine runs it at a time (the syncer, then Close).
func (j *ReplayJournal) syncNow() (bool, error) {
	if !j.dirty.Swap(false) {
		return false, nil
	}
	j.mu.Lock()
	f, retired, dir := j.f, j.retired, j.dirDirty
	j.retired, j.dirDirty = nil, false
	j.mu.Unlock()
	var errs []error
	for _, r := range retired {
		errs = append(errs, j.syncFile(r), r.Close())
	}
	if f != nil {
		errs = append(errs, j.syncFile(f))
	}
	if dir {
		if err := j.syncDir(); err != nil {
			errs = append(errs, err)
			j.mu.Lock()
			j.dirDirty = true // a later sync tries again
			j.mu.Unlock()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return true, fmt.Errorf("wire: replay journal sync: %w", err)
	}
	return true, nil
}

// syncDir makes the journal's file names durable.
func (j *ReplayJournal) syncDir() error {
	d, err := os.Open(filepath.Dir(j.path))
	if err != nil {
		return err
	}
	defer d.Close()
	return j.syncFile(d)
}

// Close stops the syncer, syncs what it had not yet synced, and closes the
// journal's file; its content stays for the next open. Close is idempotent.
func (j *ReplayJournal) Close() error {
	if j == nil || j.f == nil {
		return nil
	}
	close(j.stop)
	<-j.done
	_, err := j.syncNow()
	if cerr := j.f.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("wire: replay journal: %w", cerr))
	}
	j.f = nil
	return err
}
