package bftengine

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// store keeps what a member decided, durably (SQLite WAL, synchronous=FULL):
// each decision (proposal and commit signatures), stored before Deliver
// returns as SmartBFT requires; the entries it applied (time, request,
// result, the group in force), stored by the apply loop and re-derived from
// the decision on restart if the member stopped in between; certificates once
// they are assembled.
//
// Entries and certificates are derived data (from the decisions, and from
// the members' signatures, which can be asked for again), so they are
// written on a second connection with synchronous=NORMAL: no fsync of their
// own on the path of every decision; the next decision's commit makes them
// durable, and a restart re-derives entries lost with power. So is the
// checkpoint (checkpoint.go), written after the entries of the decision it
// ends with: both connections append to one WAL, in commit order, so a
// checkpoint that survives a power loss finds those entries stored.
type store struct {
	db      *sql.DB // decisions: synchronous=FULL
	derived *sql.DB // entries, certificates: synchronous=NORMAL
}

const schema = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (seq INTEGER PRIMARY KEY, first_index INTEGER NOT NULL, count INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, seq INTEGER NOT NULL, time INTEGER NOT NULL, request BLOB NOT NULL, result BLOB NOT NULL, grp BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS certs (idx INTEGER NOT NULL, signer BLOB NOT NULL, sig BLOB NOT NULL, PRIMARY KEY (idx, signer));
CREATE TABLE IF NOT EXISTS checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, body BLOB NOT NULL, signer BLOB NOT NULL, sig BLOB NOT NULL);
`

func openStore(dir string, g fsm.Group) (*store, error) {
	path, err := filepath.Abs(filepath.Join(dir, "decisions.db"))
	if err != nil {
		return nil, fmt.Errorf("bftengine: store: %w", err)
	}
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(path))
	dsn := "file:" + esc + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous("
	db, err := sql.Open("sqlite", dsn+"FULL)")
	if err != nil {
		return nil, fmt.Errorf("bftengine: store: %w", err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("bftengine: store %s: %w", path, err)
	}
	derived, err := sql.Open("sqlite", dsn+"NORMAL)")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bftengine: store: %w", err)
	}
	derived.SetMaxOpenConns(1)
	s := &store{db: db, derived: derived}
	// The directory belongs to one group (its name and mode); an engine for
	// another group must not replay its decisions.
	want := g.Name + "/" + string(g.Mode)
	var have []byte
	err = db.QueryRow(`SELECT value FROM meta WHERE key = 'group'`).Scan(&have)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := db.Exec(`INSERT INTO meta (key, value) VALUES ('group', ?)`, []byte(want)); err != nil {
			s.close()
			return nil, fmt.Errorf("bftengine: store: %w", err)
		}
	case err != nil:
		s.close()
		return nil, fmt.Errorf("bftengine: store: %w", err)
	case string(have) != want:
		s.close()
		return nil, fmt.Errorf("bftengine: Dir %s holds group %q, not %q", dir, have, want)
	}
	if _, err := db.Exec(`INSERT OR IGNORE INTO meta (key, value) VALUES ('genesis', ?)`, g.Canonical()); err != nil {
		s.close()
		return nil, fmt.Errorf("bftengine: store: %w", err)
	}
	return s, nil
}

// genesis is the group definition the first decision stored here applied
// to: replay starts from it, whatever epoch the group has reached since.
func (s *store) genesis() (fsm.Group, error) {
	var b []byte
	if err := s.db.QueryRow(`SELECT value FROM meta WHERE key = 'genesis'`).Scan(&b); err != nil {
		return fsm.Group{}, fmt.Errorf("bftengine: store: %w", err)
	}
	g, err := fsm.ParseGroup(b)
	if err != nil {
		return fsm.Group{}, fmt.Errorf("bftengine: stored genesis group: %w", err)
	}
	return g, nil
}

func (s *store) close() error {
	err := s.derived.Close()
	if err2 := s.db.Close(); err == nil {
		err = err2
	}
	return err
}

// storedEntry is one applied entry as kept for its decision record.
type storedEntry struct {
	index  uint64
	entry  fsm.Entry
	result fsm.Result
	group  fsm.Group // before the entry applied
}

func (s *store) putDecision(seq, first uint64, count int, body []byte) error {
	if _, err := s.db.Exec(`INSERT INTO decisions (seq, first_index, count, body) VALUES (?, ?, ?, ?)`,
		int64(seq), int64(first), count, body); err != nil {
		return fmt.Errorf("bftengine: store decision %d: %w", seq, err)
	}
	return nil
}

// putEntries stores the entries decision seq applied, in one transaction.
func (s *store) putEntries(seq uint64, es []storedEntry) error {
	if len(es) == 0 {
		return nil
	}
	tx, err := s.derived.Begin()
	if err != nil {
		return fmt.Errorf("bftengine: store entries of %d: %w", seq, err)
	}
	defer tx.Rollback()
	st, err := tx.Prepare(`INSERT OR REPLACE INTO entries (idx, seq, time, request, result, grp) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("bftengine: store entries of %d: %w", seq, err)
	}
	defer st.Close()
	for _, x := range es {
		res, err := json.Marshal(recordResult(x.result))
		if err != nil {
			return fmt.Errorf("bftengine: store entry %d: %w", x.index, err)
		}
		req := x.entry.Request
		if req == nil {
			req = []byte{}
		}
		if _, err := st.Exec(int64(x.index), int64(seq), x.entry.Time, req, res, x.group.Canonical()); err != nil {
			return fmt.Errorf("bftengine: store entry %d: %w", x.index, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bftengine: store entries of %d: %w", seq, err)
	}
	return nil
}

// lastEntrySeq is the last decision whose entries are stored (0: none).
func (s *store) lastEntrySeq() (uint64, error) {
	var n sql.NullInt64
	if err := s.db.QueryRow(`SELECT MAX(seq) FROM entries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("bftengine: read entries: %w", err)
	}
	return uint64(n.Int64), nil
}

func recordResult(r fsm.Result) fsm.RecordResult {
	return fsm.RecordResult{Code: r.Code, Reason: r.Reason, Time: r.Time, Version: r.Version,
		Motion: r.Motion, Outcome: r.Outcome, Closed: r.Closed}
}

// eachDecision calls fn with every stored decision after sequence from, in
// sequence order, with its stored body.
func (s *store) eachDecision(ctx context.Context, from uint64, fn func(seq uint64, body []byte) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, body FROM decisions WHERE seq > ? ORDER BY seq`, int64(from))
	if err != nil {
		return fmt.Errorf("bftengine: read decisions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var body []byte
		if err := rows.Scan(&seq, &body); err != nil {
			return fmt.Errorf("bftengine: read decisions: %w", err)
		}
		if err := fn(uint64(seq), body); err != nil {
			return err
		}
	}
	return rows.Err()
}

// decisionBody is decision seq as stored.
func (s *store) decisionBody(seq uint64) ([]byte, bool, error) {
	var body []byte
	err := s.db.QueryRow(`SELECT body FROM decisions WHERE seq = ?`, int64(seq)).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("bftengine: read decision %d: %w", seq, err)
	}
	return body, true, nil
}

// putCheckpoint replaces the stored checkpoint.
func (s *store) putCheckpoint(seq uint64, body []byte, signer identity.PublicKey, sig []byte) error {
	if _, err := s.derived.Exec(`INSERT OR REPLACE INTO checkpoint (id, seq, body, signer, sig) VALUES (1, ?, ?, ?, ?)`,
		int64(seq), body, signer.Bytes(), sig); err != nil {
		return fmt.Errorf("bftengine: store checkpoint %d: %w", seq, err)
	}
	return nil
}

// checkpoint is the stored checkpoint, if any.
func (s *store) checkpoint() (body, signer, sig []byte, ok bool, err error) {
	err = s.db.QueryRow(`SELECT body, signer, sig FROM checkpoint WHERE id = 1`).Scan(&body, &signer, &sig)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, nil, false, fmt.Errorf("bftengine: read checkpoint: %w", err)
	}
	return body, signer, sig, true, nil
}

func (s *store) decisionAt(seq uint64) (*decision, bool, error) {
	body, ok, err := s.decisionBody(seq)
	if err != nil || !ok {
		return nil, ok, err
	}
	d, err := decodeDecision(body)
	if err != nil {
		return nil, false, fmt.Errorf("bftengine: stored decision %d: %w", seq, err)
	}
	return d, true, nil
}

func (s *store) entry(index uint64) (storedEntry, bool, error) {
	var (
		t             int64
		req, res, grp []byte
	)
	err := s.db.QueryRow(`SELECT time, request, result, grp FROM entries WHERE idx = ?`, int64(index)).Scan(&t, &req, &res, &grp)
	if errors.Is(err, sql.ErrNoRows) {
		return storedEntry{}, false, nil
	}
	if err != nil {
		return storedEntry{}, false, fmt.Errorf("bftengine: read entry %d: %w", index, err)
	}
	var rr fsm.RecordResult
	if err := json.Unmarshal(res, &rr); err != nil {
		return storedEntry{}, false, fmt.Errorf("bftengine: stored entry %d: %w", index, err)
	}
	g, err := fsm.ParseGroup(grp)
	if err != nil {
		return storedEntry{}, false, fmt.Errorf("bftengine: stored entry %d: %w", index, err)
	}
	if len(req) == 0 {
		req = nil
	}
	x := storedEntry{index: index, entry: fsm.Entry{Time: t, Request: req}, group: g,
		result: fsm.Result{Index: index, Time: rr.Time, Code: rr.Code, Reason: rr.Reason, Version: rr.Version,
			Motion: rr.Motion, Outcome: rr.Outcome, Closed: rr.Closed}}
	return x, true, nil
}

func (s *store) cert(index uint64) ([]fsm.Attestation, error) {
	rows, err := s.db.Query(`SELECT signer, sig FROM certs WHERE idx = ? ORDER BY signer`, int64(index))
	if err != nil {
		return nil, fmt.Errorf("bftengine: read certificate %d: %w", index, err)
	}
	defer rows.Close()
	var out []fsm.Attestation
	for rows.Next() {
		var k, sg []byte
		if err := rows.Scan(&k, &sg); err != nil {
			return nil, fmt.Errorf("bftengine: read certificate %d: %w", index, err)
		}
		pk, err := identity.PublicKeyFromEd25519(k)
		if err != nil {
			return nil, fmt.Errorf("bftengine: stored certificate %d: %w", index, err)
		}
		out = append(out, fsm.Attestation{Signer: pk, Sig: sg})
	}
	return out, rows.Err()
}

func (s *store) putCert(index uint64, atts []fsm.Attestation) error {
	tx, err := s.derived.Begin()
	if err != nil {
		return fmt.Errorf("bftengine: store certificate %d: %w", index, err)
	}
	defer tx.Rollback()
	for _, a := range atts {
		if _, err := tx.Exec(`INSERT OR IGNORE INTO certs (idx, signer, sig) VALUES (?, ?, ?)`, int64(index), a.Signer.Bytes(), a.Sig); err != nil {
			return fmt.Errorf("bftengine: store certificate %d: %w", index, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bftengine: store certificate %d: %w", index, err)
	}
	return nil
}
