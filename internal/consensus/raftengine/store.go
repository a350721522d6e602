package raftengine

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// errNotFound is the StableStore's answer for a missing key: raft compares
// the error's text with "not found" to tell a fresh store from a broken one.
var errNotFound = errors.New("not found")

// store is raft's LogStore and StableStore, and the engine's decision
// records, in one SQLite file (see ADR 0011).
//
// Durability: the log and the stable keys are written on a connection with
// synchronous=FULL, so StoreLogs and Set return after the WAL is fsynced (raft
// acknowledges entries on that promise). Records are derived from the log and
// written with synchronous=NORMAL; before a snapshot is persisted, syncRecords
// fsyncs them, so a record is never lost once its entry can be compacted
// away.
type store struct {
	wmu  sync.Mutex // one writer at a time on either write connection: no SQLITE_BUSY
	logW *sql.DB    // logs and stable keys, synchronous=FULL
	recW *sql.DB    // records, synchronous=NORMAL
	rd   *sql.DB    // readers

	insLog, insRec *sql.Stmt
}

const schema = `
CREATE TABLE IF NOT EXISTS logs (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type INTEGER NOT NULL,
	data BLOB, ext BLOB, appended INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS stable (k BLOB PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS records (first INTEGER PRIMARY KEY, last INTEGER NOT NULL, grp BLOB NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS records_last ON records (last);
`

func dsn(path, sync string, readOnly bool) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(path))
	q := "_pragma=busy_timeout(10000)"
	if readOnly {
		q += "&_pragma=query_only(1)"
	} else {
		q += "&_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync + ")"
	}
	return "file:" + esc + "?" + q
}

func openDB(path, sync string, readOnly bool, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, sync, readOnly))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// openStore opens (creating 0600) the store at path.
func openStore(ctx context.Context, path string) (*store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("raftengine: store %q: %w", path, err)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("raftengine: store: %w", err)
	}
	f.Close()
	s := &store{}
	fail := func(err error) (*store, error) {
		s.close()
		return nil, fmt.Errorf("raftengine: store %s: %w", abs, err)
	}
	if s.logW, err = openDB(abs, "FULL", false, 1); err != nil {
		return fail(err)
	}
	if _, err := s.logW.ExecContext(ctx, schema); err != nil {
		return fail(err)
	}
	var mode string
	if err := s.logW.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fail(err)
	}
	if mode != "wal" {
		return fail(fmt.Errorf("journal_mode is %q, want wal", mode))
	}
	if s.recW, err = openDB(abs, "NORMAL", false, 1); err != nil {
		return fail(err)
	}
	if s.rd, err = openDB(abs, "", true, 4); err != nil {
		return fail(err)
	}
	if s.insLog, err = s.logW.PrepareContext(ctx, `INSERT OR REPLACE INTO logs (idx, term, type, data, ext, appended) VALUES (?, ?, ?, ?, ?, ?)`); err != nil {
		return fail(err)
	}
	if s.insRec, err = s.recW.PrepareContext(ctx, `INSERT INTO records (first, last, grp, body) VALUES (?, ?, ?, ?) ON CONFLICT (first) DO UPDATE SET last = excluded.last, grp = excluded.grp, body = excluded.body WHERE excluded.last > records.last`); err != nil {
		return fail(err)
	}
	return s, nil
}

func (s *store) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.insLog, s.insRec} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	for _, db := range []*sql.DB{s.logW, s.recW, s.rd} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

// FirstIndex implements raft.LogStore.
func (s *store) FirstIndex() (uint64, error) { return s.edge(`SELECT COALESCE(MIN(idx), 0) FROM logs`) }

// LastIndex implements raft.LogStore.
func (s *store) LastIndex() (uint64, error) { return s.edge(`SELECT COALESCE(MAX(idx), 0) FROM logs`) }

func (s *store) edge(q string) (uint64, error) {
	var v int64
	if err := s.rd.QueryRow(q).Scan(&v); err != nil {
		return 0, fmt.Errorf("raftengine: store: %w", err)
	}
	return uint64(v), nil
}

// GetLog implements raft.LogStore.
func (s *store) GetLog(index uint64, l *raft.Log) error {
	var term, typ, appended int64
	var data, ext []byte
	err := s.rd.QueryRow(`SELECT term, type, data, ext, appended FROM logs WHERE idx = ?`, int64(index)).
		Scan(&term, &typ, &data, &ext, &appended)
	if errors.Is(err, sql.ErrNoRows) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("raftengine: store: log %d: %w", index, err)
	}
	*l = raft.Log{Index: index, Term: uint64(term), Type: raft.LogType(typ), Data: data, Extensions: ext}
	if appended != 0 {
		l.AppendedAt = time.Unix(0, appended)
	}
	return nil
}

// StoreLog implements raft.LogStore.
func (s *store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: one transaction, one fsync.
func (s *store) StoreLogs(logs []*raft.Log) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.logW.Begin()
	if err != nil {
		return fmt.Errorf("raftengine: store logs: %w", err)
	}
	st := tx.Stmt(s.insLog)
	for _, l := range logs {
		var at int64
		if !l.AppendedAt.IsZero() {
			at = l.AppendedAt.UnixNano()
		}
		if _, err := st.Exec(int64(l.Index), int64(l.Term), int64(l.Type), l.Data, l.Extensions, at); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("raftengine: store log %d: %w", l.Index, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("raftengine: store logs: %w", err)
	}
	return nil
}

// DeleteRange implements raft.LogStore (inclusive).
func (s *store) DeleteRange(lo, hi uint64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if _, err := s.logW.Exec(`DELETE FROM logs WHERE idx >= ? AND idx <= ?`, int64(lo), int64(hi)); err != nil {
		return fmt.Errorf("raftengine: delete logs %d..%d: %w", lo, hi, err)
	}
	return nil
}

// Set implements raft.StableStore.
func (s *store) Set(k, v []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if _, err := s.logW.Exec(`INSERT OR REPLACE INTO stable (k, v) VALUES (?, ?)`, k, append([]byte{}, v...)); err != nil {
		return fmt.Errorf("raftengine: stable set %q: %w", k, err)
	}
	return nil
}

// Get implements raft.StableStore.
func (s *store) Get(k []byte) ([]byte, error) {
	var v []byte
	err := s.rd.QueryRow(`SELECT v FROM stable WHERE k = ?`, k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("raftengine: stable get %q: %w", k, err)
	}
	return v, nil
}

// SetUint64 implements raft.StableStore.
func (s *store) SetUint64(k []byte, v uint64) error {
	return s.Set(k, binary.BigEndian.AppendUint64(nil, v))
}

// GetUint64 implements raft.StableStore.
func (s *store) GetUint64(k []byte) (uint64, error) {
	v, err := s.Get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raftengine: stable %q: %d bytes, want 8", k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// putRecords stores the decision records of one applied batch: one row per
// run of records that share a group definition, so a batch costs one insert,
// not one per entry. A replay after a restart may store the same records
// again in rows with other bounds; they hold identical bytes, and of two
// rows that start at one index the longer is kept.
func (s *store) putRecords(recs []storedRecord) error {
	if len(recs) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.recW.Begin()
	if err != nil {
		return fmt.Errorf("raftengine: store records: %w", err)
	}
	st := tx.Stmt(s.insRec)
	for len(recs) > 0 {
		n := 1
		for n < len(recs) && bytes.Equal(recs[n].group, recs[0].group) {
			n++
		}
		var body []byte
		for _, r := range recs[:n] {
			body = binary.BigEndian.AppendUint64(body, r.index)
			body = binary.BigEndian.AppendUint64(body, uint64(r.time))
			body = binary.BigEndian.AppendUint32(body, uint32(len(r.req)))
			body = append(body, r.req...)
			body = binary.BigEndian.AppendUint32(body, uint32(len(r.res)))
			body = append(body, r.res...)
		}
		if _, err := st.Exec(int64(recs[0].index), int64(recs[n-1].index), recs[0].group, body); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("raftengine: store records %d..%d: %w", recs[0].index, recs[n-1].index, err)
		}
		recs = recs[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("raftengine: store records: %w", err)
	}
	return nil
}

// deliveredKey is the stable key of the delivered mark.
const deliveredKey = "treaty-delivered"

// setMark stores the delivered mark: every entry up to mark reached OnApply
// and the consumer made it durable; cursor is the consumer's position from
// which later entries were consumed. It is written without an fsync of its
// own (the next StoreLogs makes it durable): a lost mark only means more
// entries are redelivered, and deduplicated, after a power loss.
func (s *store) setMark(mark, cursor uint64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, mark), cursor)
	if _, err := s.recW.Exec(`INSERT OR REPLACE INTO stable (k, v) VALUES (?, ?)`, []byte(deliveredKey), v); err != nil {
		return fmt.Errorf("raftengine: store delivered mark: %w", err)
	}
	return nil
}

// delivered is the delivered mark and the consumer's position stored with
// it. A store written before the mark existed starts it at its highest
// record (what "reported" meant then), position 0.
func (s *store) delivered(ctx context.Context) (mark, cursor uint64, err error) {
	v, err := s.Get([]byte(deliveredKey))
	switch {
	case errors.Is(err, errNotFound):
		last, err := s.lastRecord(ctx)
		if err != nil {
			return 0, 0, err
		}
		return last, 0, s.setMark(last, 0)
	case err != nil:
		return 0, 0, err
	case len(v) != 16:
		return 0, 0, fmt.Errorf("raftengine: stable %q: %d bytes, want 16", deliveredKey, len(v))
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), nil
}

// storedRecord is what a decision record is rebuilt from: the group's
// canonical encoding before the entry, the entry, and the result as JSON.
type storedRecord struct {
	index uint64
	group []byte
	time  int64
	req   []byte
	res   []byte
}

// record returns the stored record of index; found is false if there is none.
func (s *store) record(ctx context.Context, index uint64) (r storedRecord, found bool, err error) {
	var body []byte
	err = s.rd.QueryRowContext(ctx, `SELECT grp, body FROM records WHERE first <= ? AND last >= ? ORDER BY first DESC LIMIT 1`,
		int64(index), int64(index)).Scan(&r.group, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("raftengine: record %d: %w", index, err)
	}
	for len(body) > 0 {
		x, ok := nextRecord(&body)
		if !ok {
			return r, false, fmt.Errorf("raftengine: record %d: stored batch is corrupt", index)
		}
		if x.index == index {
			x.group = r.group
			return x, true, nil
		}
	}
	return r, false, nil
}

// recordsFrom returns the stored records with indexes in [from, to], in
// order, stopping before maxBytes of request and result bytes (at least one
// record when there is one). Indexes without a record (raft's own entries)
// are skipped.
func (s *store) recordsFrom(ctx context.Context, from, to uint64, maxBytes int) ([]storedRecord, error) {
	rows, err := s.rd.QueryContext(ctx, `SELECT grp, body FROM records WHERE last >= ? AND first <= ? ORDER BY first`, int64(from), int64(to))
	if err != nil {
		return nil, fmt.Errorf("raftengine: records %d..%d: %w", from, to, err)
	}
	defer rows.Close()
	var out []storedRecord
	size, next := 0, from
	for rows.Next() {
		var grp, body []byte
		if err := rows.Scan(&grp, &body); err != nil {
			return nil, fmt.Errorf("raftengine: records %d..%d: %w", from, to, err)
		}
		for len(body) > 0 {
			x, ok := nextRecord(&body)
			if !ok {
				return nil, fmt.Errorf("raftengine: records %d..%d: stored batch is corrupt", from, to)
			}
			if x.index < next || x.index > to {
				continue // before from, or stored again by a replay in another row
			}
			n := len(grp) + len(x.req) + len(x.res)
			if len(out) > 0 && size+n > maxBytes {
				return out, nil
			}
			x.group = grp
			out = append(out, x)
			size, next = size+n, x.index+1
		}
	}
	return out, rows.Err()
}

// nextRecord decodes the first record of a stored batch and advances b.
func nextRecord(b *[]byte) (storedRecord, bool) {
	p := *b
	var r storedRecord
	if len(p) < 20 {
		return r, false
	}
	r.index = binary.BigEndian.Uint64(p)
	r.time = int64(binary.BigEndian.Uint64(p[8:]))
	n := int(binary.BigEndian.Uint32(p[16:]))
	p = p[20:]
	if n > len(p) {
		return r, false
	}
	r.req, p = p[:n], p[n:]
	if len(p) < 4 {
		return r, false
	}
	n = int(binary.BigEndian.Uint32(p))
	p = p[4:]
	if n > len(p) {
		return r, false
	}
	r.res, p = p[:n], p[n:]
	*b = p
	return r, true
}

// lastRecord is the highest index with a record (0: none).
func (s *store) lastRecord(ctx context.Context) (uint64, error) {
	var v int64
	if err := s.rd.QueryRowContext(ctx, `SELECT COALESCE(MAX(last), 0) FROM records`).Scan(&v); err != nil {
		return 0, fmt.Errorf("raftengine: store: %w", err)
	}
	return uint64(v), nil
}

// syncRecords makes every record written so far durable: a commit on the
// synchronous=FULL connection fsyncs the WAL, which holds the records' earlier
// unsynced frames too. It is called before a snapshot is persisted, so a
// snapshot never outlives the records it covers.
func (s *store) syncRecords(index uint64) error {
	return s.SetUint64([]byte("records-synced"), index)
}
