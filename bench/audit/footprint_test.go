package bench_audit

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty"
)

// footprintPayload is the 100-byte call input.
var footprintPayload = []byte(`{"q":"` + strings.Repeat("x", 100-8) + `"}`)

// BenchmarkFootprint makes b.N calls between two real nodes (100-byte input,
// an echo handler, content kept as the default audit policy says) and
// reports the audit bytes on disk per call per side: each node's audit.db
// after its WAL is checkpointed into it, less the same file after one warm-up
// call, divided by b.N.
//
//	go test ./bench/audit -run '^$' -bench Footprint -benchtime 2000x
func BenchmarkFootprint(b *testing.B) {
	dir := b.TempDir()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nodes [2]*treaty.Node
	names := [2]string{"acme", "globex"}
	for i, name := range names {
		if _, err := treaty.Init(filepath.Join(dir, name), name, "127.0.0.1:0"); err != nil {
			b.Fatal(err)
		}
		n, err := treaty.Open(ctx, filepath.Join(dir, name), treaty.Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		nodes[i] = n
	}
	acme, globex := nodes[0], nodes[1]
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(acme.AddPeer("globex", globex.Addr(), globex.ID()))
	must(globex.AddPeer("acme", acme.Addr(), acme.ID()))
	must(globex.Expose("echo", "echoes", func(_ context.Context, _ string, in []byte) ([]byte, error) { return in, nil }))
	must(globex.Grant("acme", "echo"))
	if _, err := acme.Call(ctx, "globex", "echo", footprintPayload); err != nil {
		b.Fatal(err)
	}
	var before [2]int64
	for i, name := range names {
		before[i] = checkpointedSize(b, filepath.Join(dir, name, "audit.db"))
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := acme.Call(ctx, "globex", "echo", footprintPayload); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for _, n := range nodes {
		must(n.Close())
	}
	for i, name := range names {
		path := filepath.Join(dir, name, "audit.db")
		after := checkpointedSize(b, path)
		b.ReportMetric(float64(after-before[i])/float64(b.N), name+"-bytes/call")
		reportRows(b, path, name)
	}
}

// checkpointedSize folds the WAL into the database file and returns the bytes
// of the database and whatever WAL remains.
func checkpointedSize(b *testing.B, path string) int64 {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			total += fi.Size()
		}
	}
	return total
}

// reportRows logs what each kind of entry stores, to show where the bytes go.
func reportRows(b *testing.B, path, name string) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query(`SELECT json_extract(leaf, '$.kind') AS kind, count(*), avg(length(leaf)), avg(length(content)), avg(length(hashes)) FROM entries GROUP BY kind`)
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var kind string
		var n int64
		var leaf, content, hashes sql.NullFloat64
		if err := rs.Scan(&kind, &n, &leaf, &content, &hashes); err != nil {
			b.Fatal(err)
		}
		b.Logf("%s %s: %d entries, leaf %.0f B, content %.0f B, hashes %.0f B", name, kind, n, leaf.Float64, content.Float64, hashes.Float64)
	}
	if os.Getenv("FOOTPRINT_DUMP") != "" {
		r2, _ := db.Query(`SELECT leaf FROM entries WHERE idx IN (SELECT max(idx) FROM entries GROUP BY json_extract(leaf, '$.kind'))`)
		for r2.Next() {
			var l string
			r2.Scan(&l)
			b.Log(l)
		}
		r2.Close()
	}
	var pages, free, psize int64
	db.QueryRow(`PRAGMA page_count`).Scan(&pages)
	db.QueryRow(`PRAGMA freelist_count`).Scan(&free)
	db.QueryRow(`PRAGMA page_size`).Scan(&psize)
	b.Logf("%s: %d pages of %d bytes, %d free", name, pages, psize, free)
	// Bytes per table and index (dbstat, when the driver has it).
	if st, err := db.Query(`SELECT name, sum(pgsize), sum(unused) FROM dbstat GROUP BY name ORDER BY 2 DESC`); err == nil {
		for st.Next() {
			var obj string
			var size, unused int64
			if err := st.Scan(&obj, &size, &unused); err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: %s %d bytes in pages, %d unused", name, obj, size, unused)
		}
		st.Close()
	}
	var cps int64
	if err := db.QueryRow(`SELECT count(*) FROM checkpoints`).Scan(&cps); err == nil {
		b.Logf("%s: %d checkpoints kept", name, cps)
	}
}
