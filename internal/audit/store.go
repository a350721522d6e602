package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/treaty-dev/treaty/internal/identity"
)

// Schema is the SQL that creates audit.db. The leaf column is the only source
// of truth for an entry; the view entry_fields shows its fields as columns, so
// a query with any SQLite client sees exactly what Verify checks:
//
//	SELECT idx, time, kind, peer, outcome FROM entry_fields WHERE peer = 'did:key:...';
//
// hashes holds the tlog stored hashes that record idx completes (leaf hash
// first, then one per completed level), 32 bytes each. checkpoints holds every
// retained signed checkpoint and the latest one (the head, the largest size).
// prunes holds every signed pruning record (see Prune).
//
// The entries table has no generated columns: SQLite computes every one of
// them on each insert (a JSON parse and twelve lookups, most of an insert's
// CPU), indexed or not. Indexes are kept few and short, to keep the log
// small, on two real columns the writer sets from the entry: peer_key is
// substr(peer, 13, 6), six characters of the did:key after its constant
// "did:key:z6Mk" (about 35 bits), and rare_kind is kind for every kind but
// the call kinds (most of the rows, which a scan finds as fast) and NULL for
// those. A query names the key beside the full comparison, as List does:
//
//	... WHERE peer_key = substr(?1, 13, 6) AND json_extract(leaf, '$.peer') = ?1
//	... WHERE rare_kind = 'policy.changed'
//
// Both columns are derived from the leaf; Verify checks them against it.
// There is no time index: time grows with idx, and SQLite's plans for List's
// and Prune's time conditions walk idx order, with or without one.
const Schema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS entries (
	idx       INTEGER PRIMARY KEY,
	leaf      TEXT NOT NULL,
	content   BLOB,
	hashes    BLOB NOT NULL,
	peer_key  TEXT NOT NULL DEFAULT '',
	rare_kind TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS entries_by_peer ON entries (peer_key);
CREATE INDEX IF NOT EXISTS entries_by_rare_kind ON entries (rare_kind) WHERE rare_kind IS NOT NULL;
CREATE VIEW IF NOT EXISTS entry_fields AS SELECT idx,
	json_extract(leaf, '$.time') AS time,
	json_extract(leaf, '$.kind') AS kind,
	json_extract(leaf, '$.peer') AS peer,
	json_extract(leaf, '$.direction') AS direction,
	json_extract(leaf, '$.capability') AS capability,
	json_extract(leaf, '$.outcome') AS outcome,
	json_extract(leaf, '$.stage') AS stage,
	json_extract(leaf, '$.request_digest') AS request_digest,
	json_extract(leaf, '$.response_digest') AS response_digest,
	json_extract(leaf, '$.content_digest') AS content_digest,
	json_extract(leaf, '$.content_kept') AS content_kept,
	json_extract(leaf, '$.report') AS report,
	json_extract(leaf, '$.evidence') AS evidence,
	content
	FROM entries;
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

// upgrade turns a log made before the index columns into this schema without
// rewriting a row. The indexes on JSON expressions (time, full-width peer and
// kind, then the short peer and rare kind ones) and the virtual generated
// columns (not stored) are dropped first: SQLite checks a STRICT table's rows
// when a column is added, computing every generated column. Then the two
// columns are added, the rows keeping the defaults (an empty peer_key, a NULL
// rare_kind), and meta "indexed_from" records the first entry the writer
// fills them for; List finds the older entries by their leaves. (Filling the
// columns in place split most pages: the file grew by 15% in a test.)
const upgrade = `
DROP INDEX IF EXISTS entries_time;
DROP INDEX IF EXISTS entries_peer;
DROP INDEX IF EXISTS entries_kind;
DROP INDEX IF EXISTS entries_peer_key;
DROP INDEX IF EXISTS entries_rare_kind;
ALTER TABLE entries DROP COLUMN time;
ALTER TABLE entries DROP COLUMN kind;
ALTER TABLE entries DROP COLUMN peer;
ALTER TABLE entries DROP COLUMN direction;
ALTER TABLE entries DROP COLUMN capability;
ALTER TABLE entries DROP COLUMN outcome;
ALTER TABLE entries DROP COLUMN stage;
ALTER TABLE entries DROP COLUMN request_digest;
ALTER TABLE entries DROP COLUMN response_digest;
ALTER TABLE entries DROP COLUMN content_digest;
ALTER TABLE entries DROP COLUMN report;
ALTER TABLE entries DROP COLUMN evidence;
ALTER TABLE entries ADD COLUMN peer_key TEXT NOT NULL DEFAULT '';
ALTER TABLE entries ADD COLUMN rare_kind TEXT;
INSERT INTO meta(key, value) VALUES('indexed_from', CAST((SELECT coalesce(max(idx) + 1, 0) FROM entries) AS TEXT));
`

// indexFrom is the first entry whose index columns the writer filled (meta
// "indexed_from"; 0 when absent); entries below it, from before the upgrade,
// hold the columns' defaults. For a log without the columns (cols false) no
// entry has them.
func indexFrom(meta map[string]string, cols bool) (uint64, error) {
	if !cols {
		return math.MaxInt64, nil
	}
	v, ok := meta["indexed_from"]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return 0, fmt.Errorf("audit: meta indexed_from %q: %w", v, err)
	}
	return n, nil
}

// hasIndexColumns reports whether the entries table has the columns of
// upgrade (false for a log no node of this version has opened yet).
func hasIndexColumns(ctx context.Context, q querier) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_xinfo('entries') WHERE name = 'peer_key'`).Scan(&n); err != nil {
		return false, fmt.Errorf("audit: read schema: %w", err)
	}
	return n == 1, nil
}

// tableExists reports whether the entries table exists.
func tableExists(ctx context.Context, q querier) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'entries'`).Scan(&n); err != nil {
		return false, fmt.Errorf("audit: read schema: %w", err)
	}
	return n == 1, nil
}

// peerKey is SQLite's substr(peer, 13, 6) of valid UTF-8: the characters
// 13 to 18.
func peerKey(peer []byte) []byte {
	i := 0
	for range 12 {
		if i >= len(peer) {
			return nil
		}
		_, size := utf8.DecodeRune(peer[i:])
		i += size
	}
	j := i
	for n := 0; n < 6 && j < len(peer); n++ {
		_, size := utf8.DecodeRune(peer[j:])
		j += size
	}
	return peer[i:j]
}

// isRareKind reports whether kind has a rare_kind: every kind but the call kinds.
func isRareKind(kind string) bool {
	return kind != KindCallSent && kind != KindCallServed && kind != KindCallCompleted
}

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

// maxMetaValue bounds a meta value readMeta accepts: a did:key, an origin or
// a number.
const maxMetaValue = 1024

// readMeta returns the meta values this package reads, once the file looks
// like a treaty log: meta, entries and checkpoints are tables (a view, say a
// recursive one, would have a reader follow it without end), the format is
// this one, the owner key is a did:key and the origin a short printable note
// key name. Whatever is refused is quoted short in the error: the file may be
// anyone's.
func readMeta(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}) (map[string]string, error) {
	if err := checkTables(ctx, q); err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT key, CASE WHEN octet_length(value) <= ? THEN value END FROM meta
		WHERE key IN ('format', 'key', 'origin', 'indexed_from')`, maxMetaValue)
	if err != nil {
		return nil, fmt.Errorf("audit: read meta: %w", err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var k string
		var v sql.NullString
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("audit: read meta: %w", err)
		}
		if !v.Valid {
			return nil, fmt.Errorf("%w (meta %s is over %d bytes)", errNotALog, k, maxMetaValue)
		}
		m[k] = v.String
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: read meta: %w", err)
	}
	if m["format"] != formatName {
		return nil, fmt.Errorf("%w (format %s, want %q)", errNotALog, quoteShort(m["format"]), formatName)
	}
	if _, err := identity.ParseDID(m["key"]); err != nil {
		return nil, fmt.Errorf("%w (owner key: %w)", errNotALog, err)
	}
	if o := m["origin"]; o == "" || strings.IndexFunc(o, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return nil, fmt.Errorf("%w (origin %s is not printable)", errNotALog, quoteShort(o))
	}
	return m, nil
}

// errNotALog is wrapped when a file is not a treaty audit log.
var errNotALog = errors.New("audit: not a treaty audit log")

// checkTables checks that meta, entries and checkpoints are tables, and that
// none of the log's names is anything else.
func checkTables(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}) error {
	rows, err := q.QueryContext(ctx, `SELECT name, type FROM sqlite_master
		WHERE name IN ('meta', 'entries', 'checkpoints', 'prunes', 'witness', 'forks')`)
	if err != nil {
		return fmt.Errorf("audit: read schema: %w", err)
	}
	defer rows.Close()
	tables := 0
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return fmt.Errorf("audit: read schema: %w", err)
		}
		if typ != "table" {
			return fmt.Errorf("%w (%s is a %s, not a table)", errNotALog, name, typ)
		}
		if name == "meta" || name == "entries" || name == "checkpoints" {
			tables++
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit: read schema: %w", err)
	}
	if tables != 3 {
		return fmt.Errorf("%w (no meta, entries or checkpoints table)", errNotALog)
	}
	return nil
}

// quoteShort quotes at most 64 bytes of s for an error message.
func quoteShort(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// errNoHead is returned by readHead for a log without any checkpoint.
var errNoHead = errors.New("audit: no checkpoint")

// readHead returns the note of the checkpoint with the largest size.
func readHead(ctx context.Context, q querier) (size uint64, msg []byte, err error) {
	var s, n sql.NullInt64
	err = q.QueryRowContext(ctx, `SELECT CASE WHEN typeof(size) = 'integer' THEN size END,
		CASE WHEN octet_length(note) <= ? THEN note END, octet_length(note)
		FROM checkpoints ORDER BY size DESC LIMIT 1`, MaxNoteSize).Scan(&s, &msg, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, errNoHead
	}
	if err != nil {
		return 0, nil, fmt.Errorf("audit: read latest checkpoint: %w", err)
	}
	switch {
	case !s.Valid:
		return 0, nil, &BadCheckpointError{Size: 0, Reason: "a row's size is not an integer"}
	case s.Int64 < 0:
		return 0, nil, &BadCheckpointError{Size: 0, Reason: fmt.Sprintf("negative size %d", s.Int64)}
	case n.Valid && msg == nil:
		return 0, nil, &BadCheckpointError{Size: uint64(s.Int64), Reason: fmt.Sprintf("note is %d bytes, at most %d", n.Int64, MaxNoteSize)}
	}
	return uint64(s.Int64), msg, nil
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
