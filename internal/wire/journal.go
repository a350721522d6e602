package wire

import (
	"bufio"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// ReplayJournal keeps a Verifier's replay window on disk, so that a node
// restarted within a request's lifetime still refuses a request it served
// before the restart (ADR 0024).
//
// Every nonce the window records is appended to the journal, one write(2)
// per accepted request, before the request is accepted; a Forget appends a
// tombstone. The data reaches the kernel, not the disk: it survives the
// process being killed, not the host losing power (see the ADR).
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
	f      *os.File
	since  time.Time // when f started
	period time.Duration
	live   []journalEntry // read by OpenReplayJournal, restored by NewVerifier
	taken  bool           // a Verifier uses this journal
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

// OpenReplayJournal reads the journal at path (absent files are empty),
// keeps the entries still held at now, and rewrites the journal to hold
// only them. Files are created with mode 0600. A torn record at the end of
// a file (the process died inside a write) is ignored.
func OpenReplayJournal(path string, now time.Time) (*ReplayJournal, error) {
	if path == "" {
		return nil, errors.New("wire: replay journal path is empty")
	}
	held := map[ReplayKey]journalEntry{}
	for _, p := range []string{path + ".old", path} {
		if err := readJournal(p, now.UnixNano(), held); err != nil {
			return nil, err
		}
	}
	j := &ReplayJournal{path: path, since: now}
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

// write appends e to path without rotating.
func (j *ReplayJournal) write(e journalEntry) error {
	if j.f == nil {
		return errors.New("wire: replay journal is closed")
	}
	if _, err := j.f.Write(e.record()); err != nil {
		return fmt.Errorf("wire: replay journal: %w", err)
	}
	return nil
}

// rotate makes path the new path+".old" and starts path empty. If path is
// gone (an earlier rotation renamed it and then could not create it again,
// so the file being written is .old), it only creates path.
func (j *ReplayJournal) rotate(now time.Time) error {
	if err := os.Rename(j.path, j.path+".old"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("wire: replay journal rotation: %w", err)
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("wire: replay journal rotation: %w", err)
	}
	j.f.Close()
	j.f, j.since = f, now
	return nil
}

// Close closes the journal's file; its content stays for the next open.
func (j *ReplayJournal) Close() error {
	if j == nil || j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	if err != nil {
		return fmt.Errorf("wire: replay journal: %w", err)
	}
	return nil
}
