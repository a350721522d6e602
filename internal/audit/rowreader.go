package audit

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strconv"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// rowReader reads entries rows through the SQLite library itself, below
// database/sql and its driver: the same library the driver uses (one SQLite
// in the process, so locks and the WAL index are shared as usual), without a
// mutex per column, a Go copy of every column value, or a driver.Value per
// column. Verify reads every row of the log, and through database/sql that
// copying was most of its CPU.
//
// Column values are views of SQLite's memory, valid until the next step: the
// callback must not keep them. A rowReader is used by one goroutine at a
// time (it is opened without SQLite's per-connection mutex).
type rowReader struct {
	tls  *libc.TLS
	db   uintptr // sqlite3*
	stmt uintptr // sqlite3_stmt* of rawRowSelect(cols)
	cols bool    // the log has the index columns
	path string
}

// openRowReader opens path read-only (never creating it) with the settings
// openReadDB gives its connections; cols says whether the log has the index
// columns.
func openRowReader(path string, cols bool) (_ *rowReader, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("audit: path %q: %w", path, err)
	}
	r := &rowReader{tls: libc.NewTLS(), cols: cols, path: path}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	cpath, err := libc.CString(abs)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	defer libc.Xfree(r.tls, cpath)
	out := libc.Xmalloc(r.tls, 8)
	if out == 0 {
		return nil, fmt.Errorf("audit: open %s: out of memory", path)
	}
	defer libc.Xfree(r.tls, out)
	rc := sqlite3.Xsqlite3_open_v2(r.tls, cpath, out, sqlite3.SQLITE_OPEN_READONLY|sqlite3.SQLITE_OPEN_NOMUTEX, 0)
	r.db = readPtr(out)
	if rc != sqlite3.SQLITE_OK {
		return nil, r.fail(fmt.Sprintf("open %s read-only", path), rc)
	}
	if rc := sqlite3.Xsqlite3_busy_timeout(r.tls, r.db, 10000); rc != sqlite3.SQLITE_OK {
		return nil, r.fail("set busy timeout", rc)
	}
	// Memory-mapped reads spare a pread per page (as openReadDB's).
	if err := r.exec(`PRAGMA mmap_size = 1073741824`); err != nil {
		return nil, err
	}
	// No value larger than an entry's content can be is loaded: SQLite
	// refuses it (SQLITE_TOOBIG) before reading it, and scan names it.
	sqlite3.Xsqlite3_limit(r.tls, r.db, sqlite3.SQLITE_LIMIT_LENGTH, maxContent)
	csql, err := libc.CString(rawRowSelect(cols))
	if err != nil {
		return nil, fmt.Errorf("audit: prepare: %w", err)
	}
	defer libc.Xfree(r.tls, csql)
	if rc := sqlite3.Xsqlite3_prepare_v2(r.tls, r.db, csql, -1, out, 0); rc != sqlite3.SQLITE_OK {
		return nil, r.fail("prepare row query", rc)
	}
	r.stmt = readPtr(out)
	return r, nil
}

// readPtr reads the pointer SQLite stored at the C address p.
func readPtr(p uintptr) uintptr {
	if strconv.IntSize == 32 {
		return uintptr(binary.NativeEndian.Uint32(libc.GoBytes(p, 4)))
	}
	return uintptr(binary.NativeEndian.Uint64(libc.GoBytes(p, 8)))
}

func (r *rowReader) exec(q string) error {
	cq, err := libc.CString(q)
	if err != nil {
		return fmt.Errorf("audit: %s: %w", q, err)
	}
	defer libc.Xfree(r.tls, cq)
	if rc := sqlite3.Xsqlite3_exec(r.tls, r.db, cq, 0, 0, 0); rc != sqlite3.SQLITE_OK {
		return r.fail(q, rc)
	}
	return nil
}

// fail turns a result code into an error carrying SQLite's message.
func (r *rowReader) fail(what string, rc int32) error {
	msg := libc.GoString(sqlite3.Xsqlite3_errstr(r.tls, rc))
	if r.db != 0 {
		msg = libc.GoString(sqlite3.Xsqlite3_errmsg(r.tls, r.db))
	}
	return fmt.Errorf("audit: %s: %s (%d)", what, msg, rc)
}

// scan calls fn for each row with from <= idx < to, in index order, and
// stops at fn's first false. Content is nil for NULL and for an empty blob,
// as database/sql gives it.
func (r *rowReader) scan(ctx context.Context, from, to uint64, fn func(idx int64, leaf, content, hashes, peerKey, rareKind, over []byte) bool) error {
	defer sqlite3.Xsqlite3_reset(r.tls, r.stmt)
	if rc := sqlite3.Xsqlite3_bind_int64(r.tls, r.stmt, 1, int64(from)); rc != sqlite3.SQLITE_OK {
		return r.fail("bind", rc)
	}
	if rc := sqlite3.Xsqlite3_bind_int64(r.tls, r.stmt, 2, int64(to)); rc != sqlite3.SQLITE_OK {
		return r.fail("bind", rc)
	}
	last := int64(from) - 1
	for n := 0; ; n++ {
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		switch rc := sqlite3.Xsqlite3_step(r.tls, r.stmt); rc {
		case sqlite3.SQLITE_ROW:
		case sqlite3.SQLITE_DONE:
			return nil
		case sqlite3.SQLITE_TOOBIG:
			idx, col, err := r.oversized(ctx, last)
			if err != nil {
				return err
			}
			fn(idx, nil, nil, nil, nil, nil, []byte(col))
			return nil
		default:
			return r.fail("read entries", rc)
		}
		idx := sqlite3.Xsqlite3_column_int64(r.tls, r.stmt, 0)
		last = idx
		leaf, content, hashes, peerKey, rareKind := r.column(1), r.column(2), r.column(3), r.column(4), r.column(5)
		var over []byte
		if col := overBound(len(leaf), len(content), len(hashes), len(peerKey), len(rareKind)); col != "" {
			leaf, content, hashes, peerKey, rareKind, over = nil, nil, nil, nil, nil, []byte(col)
		}
		if !fn(idx, leaf, content, hashes, peerKey, rareKind, over) {
			return nil
		}
	}
}

// oversized finds the row after last that SQLite refused to load and names
// its column over a bound, with rowSelect's checks (which read no value).
func (r *rowReader) oversized(ctx context.Context, last int64) (int64, string, error) {
	q, err := openReadDB(r.path, 1)
	if err != nil {
		return 0, "", err
	}
	defer q.Close()
	var idx int64
	var col sql.NullString
	err = q.QueryRowContext(ctx, `SELECT idx, over FROM (`+rowSelectOver(r.cols)+`) WHERE idx > ?1 ORDER BY idx LIMIT 1`, last).Scan(&idx, &col)
	if err != nil {
		return 0, "", fmt.Errorf("audit: read entry %d: a value over SQLite's length limit: %w", last+1, err)
	}
	if !col.Valid {
		col.String = "a value"
	}
	return idx, col.String, nil
}

// column is a view of column i of the current row (nil when NULL or empty).
func (r *rowReader) column(i int32) []byte {
	p := sqlite3.Xsqlite3_column_blob(r.tls, r.stmt, i)
	n := sqlite3.Xsqlite3_column_bytes(r.tls, r.stmt, i)
	if p == 0 || n <= 0 {
		return nil
	}
	return libc.GoBytes(p, int(n))
}

func (r *rowReader) close() {
	if r.stmt != 0 {
		sqlite3.Xsqlite3_finalize(r.tls, r.stmt)
		r.stmt = 0
	}
	if r.db != 0 {
		sqlite3.Xsqlite3_close_v2(r.tls, r.db)
		r.db = 0
	}
	r.tls.Close()
}
