package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Schema is the SQL that creates audit.db. The leaf column is the only source of
// truth for an entry; the other entry columns are generated from it, so a query
// with any SQLite client sees exactly what Verify checks:
//
//	SELECT idx, time, kind, peer, outcome FROM entries WHERE peer = 'did:key:...';
//
// hashes holds the tlog stored hashes that record idx completes (leaf hash
// first, then one per completed level), 32 bytes each. checkpoints holds every
// retained signed checkpoint and the latest one (the head, the largest size).
// prunes holds every signed pruning record (see Prune).
//
// Indexes are kept few and short, to keep the log small. The peer index is on
// ten characters of the did:key after its constant "did:key:z6Mk" (about 58
// bits); a query uses it by naming the same expression beside the full
// comparison, as List does:
//
//	... WHERE substr(peer, 13, 10) = substr(?1, 13, 10) AND peer = ?1
//
// The kind index leaves out the call kinds, most of the rows, which a scan
// finds as fast; a query for another kind uses it by repeating its WHERE
// clause (List does). There is no time index: time grows with idx, and SQLite's plans for
// List's and Prune's time conditions walk idx order, with or without one.
const Schema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS entries (
	idx     INTEGER PRIMARY KEY,
	leaf    TEXT NOT NULL,
	content BLOB,
	hashes  BLOB NOT NULL,
	time            TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.time')) VIRTUAL,
	kind            TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.kind')) VIRTUAL,
	peer            TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.peer')) VIRTUAL,
	direction       TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.direction')) VIRTUAL,
	capability      TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.capability')) VIRTUAL,
	outcome         TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.outcome')) VIRTUAL,
	stage           TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.stage')) VIRTUAL,
	request_digest  TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.request_digest')) VIRTUAL,
	response_digest TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.response_digest')) VIRTUAL,
	content_digest  TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.content_digest')) VIRTUAL,
	report          TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.report')) VIRTUAL,
	evidence        TEXT GENERATED ALWAYS AS (json_extract(leaf, '$.evidence')) VIRTUAL
) STRICT;
CREATE INDEX IF NOT EXISTS entries_peer_key ON entries (substr(peer, 13, 10));
CREATE INDEX IF NOT EXISTS entries_rare_kind ON entries (kind) WHERE ` + rareKinds + `;
CREATE TABLE IF NOT EXISTS checkpoints (
	size     INTEGER PRIMARY KEY,
	note     TEXT NOT NULL,
	time     TEXT NOT NULL,
	retained INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS prunes (
	seq  INTEGER PRIMARY KEY,
	note TEXT NOT NULL,
	time TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS witness (
	peer TEXT PRIMARY KEY,
	size INTEGER NOT NULL,
	root BLOB NOT NULL,
	note TEXT NOT NULL,
	time TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS forks (
	id       INTEGER PRIMARY KEY,
	peer     TEXT NOT NULL,
	reason   TEXT NOT NULL,
	old_note TEXT NOT NULL,
	new_note TEXT NOT NULL,
	proof    BLOB,
	time     TEXT NOT NULL,
	entry    INTEGER
) STRICT;
`

// migration turns a log made before the short indexes into this schema: the
// time index is dropped and the full-width peer and kind indexes replaced by
// Schema's (built once, at the first Open).
const migration = `
DROP INDEX IF EXISTS entries_time;
DROP INDEX IF EXISTS entries_peer;
DROP INDEX IF EXISTS entries_kind;
`

// rareKinds is the WHERE clause of the entries_rare_kind index.
const rareKinds = `kind NOT IN ('call.sent', 'call.served', 'call.completed')`

// pageSize is the page size of a new audit.db. A call's rows are about 0.9
// KiB each: a 4 KiB page holds four and leaves ~500 bytes empty, an 8 KiB
// page eight and ~650 bytes, a 16 KiB page seventeen and ~400 bytes (the
// footprint benchmark: 2,351, 2,142 and 2,023 bytes per call). The price is
// WAL frames of 16 KiB per page a commit touches. SQLite fixes the size when
// the file is first written, before WAL mode; older logs keep 4 KiB pages.
const pageSize = 16384

// formatName is the meta "format" value of this schema.
const formatName = "treaty-audit/1"

// dsn builds a modernc sqlite URI for path. Durability: WAL with
// synchronous=FULL, so each commit fsyncs the WAL before it returns and a
// committed batch survives power loss, not only a process crash (NORMAL would
// risk the last commits on power loss; it is not used).
func dsn(path string, readOnly bool) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("audit: path %q: %w", path, err)
	}
	// SQLite URI paths decode %XX; escape what would otherwise end the path.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(abs))
	q := "_pragma=busy_timeout(10000)"
	if readOnly {
		// Memory-mapped reads spare a pread per page when Verify scans the log.
		q = "mode=ro&" + q + "&_pragma=query_only(1)&_pragma=mmap_size(1073741824)"
	} else {
		q += "&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	}
	return "file:" + esc + "?" + q, nil
}

// openReadDB opens a read-only pool of n connections. It fails when path does
// not exist rather than creating it.
func openReadDB(path string, n int) (*sql.DB, error) {
	d, err := dsn(path, true)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", d)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("audit: open %s read-only: %w", path, err)
	}
	return db, nil
}

// readMeta returns the meta table as a map.
func readMeta(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT key, value FROM meta`)
	if err != nil {
		return nil, fmt.Errorf("audit: read meta: %w", err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("audit: read meta: %w", err)
		}
		m[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: read meta: %w", err)
	}
	if m["format"] != formatName {
		return nil, fmt.Errorf("audit: not a treaty audit log (format %q, want %q)", m["format"], formatName)
	}
	return m, nil
}

// errNoHead is returned by readHead for a log without any checkpoint.
var errNoHead = errors.New("audit: no checkpoint")

// readHead returns the note of the checkpoint with the largest size.
func readHead(ctx context.Context, q querier) (size uint64, msg []byte, err error) {
	var s int64
	err = q.QueryRowContext(ctx, `SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1`).Scan(&s, &msg)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, errNoHead
	}
	if err != nil {
		return 0, nil, fmt.Errorf("audit: read latest checkpoint: %w", err)
	}
	if s < 0 {
		return 0, nil, &BadCheckpointError{Size: 0, Reason: fmt.Sprintf("negative size %d", s)}
	}
	return uint64(s), msg, nil
}

// setPageSize gives the empty file at path pageSize pages: SQLite applies the
// size only when it writes the first page, and not once the file is in WAL
// mode, so the schema is created here in rollback mode.
func setPageSize(ctx context.Context, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("audit: path %q: %w", path, err)
	}
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(abs))
	db, err := sql.Open("sqlite", "file:"+esc+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("audit: create %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, fmt.Sprintf(`PRAGMA page_size = %d`, pageSize)); err != nil {
		return fmt.Errorf("audit: create %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, Schema); err != nil {
		return fmt.Errorf("audit: create %s: %w", path, err)
	}
	return db.Close()
}
