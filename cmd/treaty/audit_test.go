package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/node"
)

// TestAuditVerifyAgainst: a log cut back through raw SQLite verifies alone
// (exit 0) but not --against the checkpoint a peer witnessed, given as a note
// file or as the peer's audit.db (exit 1, naming the cut).
func TestAuditVerifyAgainst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "h")
	mustRun(t, "init", "--home", dir, "--name", "alice")
	key, err := identity.LoadKeyFile(filepath.Join(dir, node.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	path := filepath.Join(dir, node.AuditFile)
	l, err := audit.Open(ctx, audit.Config{Path: path, Identity: key, CheckpointEvery: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := l.Append(ctx, audit.Entry{Kind: audit.KindCallSent, Direction: "out", Capability: fmt.Sprintf("c%d", i), Outcome: "sent"}); err != nil {
			t.Fatal(err)
		}
	}
	cp, _ := l.Checkpoint(ctx)
	l.Close()
	// A peer witnessed that checkpoint.
	peerKey, _ := identity.FromSeed(bytes.Repeat([]byte{9}, 32))
	peerDB := filepath.Join(t.TempDir(), "peer-audit.db")
	pl, err := audit.Open(ctx, audit.Config{Path: peerDB, Identity: peerKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.Witness().Observe(ctx, key.Public(), cp.Note, nil); err != nil {
		t.Fatal(err)
	}
	pl.Close()
	noteFile := filepath.Join(t.TempDir(), "checkpoint.note")
	if err := os.WriteFile(noteFile, cp.Note, 0o600); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, "audit", "verify", "--home", dir, "--against", noteFile, "--against", peerDB)
	want := fmt.Sprintf("ok 10 entries root %x\nconsistent with checkpoint 10 root %x\nconsistent with checkpoint 10 root %x\n", cp.Root, cp.Root, cp.Root)
	if out != want {
		t.Fatalf("verify --against an intact log:\n%s\nwant:\n%s", out, want)
	}

	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DELETE FROM entries WHERE idx >= 8`, `DELETE FROM checkpoints WHERE size > 8`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if out := mustRun(t, "audit", "verify", "--home", dir); !strings.HasPrefix(out, "ok 8 entries root ") {
		t.Fatalf("cut-back log alone: %s", out)
	}
	for _, f := range []string{noteFile, peerDB} {
		out, errOut, code := runTL(t, "audit", "verify", "--home", dir, "--against", f)
		if code != 1 || out != "" || !strings.Contains(errOut, "entry 8: missing: the log ends at 8 but a given checkpoint (one a peer witnessed) covers 10 entries: the log was cut back") {
			t.Fatalf("--against %s: exit %d, stdout %q, stderr %q", filepath.Base(f), code, out, errOut)
		}
	}
	// A file that is neither is a usage error.
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("not a note"), 0o600)
	if _, errOut, code := runTL(t, "audit", "verify", "--home", dir, "--against", junk); code != 1 || !strings.Contains(errOut, "malformed") {
		t.Fatalf("--against junk: exit %d %s", code, errOut)
	}
}

// TestAuditLsEscapesControls: a capability name a local API client made up
// (Node.Call logs a refused call with it as given) or a field edited in the
// file reaches the operator's terminal through `audit ls`; escape sequences
// and bidi overrides are printed escaped, never raw.
func TestAuditLsEscapesControls(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "h")
	mustRun(t, "init", "--home", dir, "--name", "alice")
	key, err := identity.LoadKeyFile(filepath.Join(dir, node.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(t.Context(), audit.Config{Path: filepath.Join(dir, node.AuditFile), Identity: key})
	if err != nil {
		t.Fatal(err)
	}
	hostile := audit.Entry{Kind: audit.KindCallRefused, Direction: "out", Capability: "\x1b]0;owned\a\x1b[2J",
		Outcome: "refused\u202egnp.exe", Stage: "usage\tcolumn"}
	if _, err := l.Append(t.Context(), hostile); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(t.Context(), audit.Entry{Kind: audit.KindCallSent, Direction: "out", Capability: "review.code", Outcome: "sent"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	out := mustRun(t, "audit", "ls", "--home", dir)
	if strings.ContainsAny(out, "\x1b\a\t\u202e") {
		t.Fatalf("audit ls printed control characters raw:\n%q", out)
	}
	for _, want := range []string{`\u001b]0;owned\u0007\u001b[2J`, `refused\u202egnp.exe`, `usage\u0009column`, " review.code ", " sent "} {
		if !strings.Contains(out, want) {
			t.Fatalf("audit ls lacks %s:\n%s", want, out)
		}
	}
}

// TestAuditVerifyAgainstHugeFile: --against reads no more of a file than a
// checkpoint note can be; a huge file (here sparse) is a usage error at
// once, not read into memory, and a device such as /dev/zero is refused
// unread.
func TestAuditVerifyAgainstHugeFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "h")
	mustRun(t, "init", "--home", dir, "--name", "alice")
	huge := filepath.Join(t.TempDir(), "huge.note")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(512 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	files := []string{huge}
	if _, err := os.Stat("/dev/zero"); err == nil {
		files = append(files, "/dev/zero")
	}
	for _, file := range files {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, errOut, code := runTL(t, "audit", "verify", "--home", dir, "--against", file)
		runtime.ReadMemStats(&after)
		if code != 2 || !strings.Contains(errOut, "not a checkpoint note") && !strings.Contains(errOut, "not a regular file") {
			t.Fatalf("--against %s: exit %d, %s", file, code, errOut)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
			t.Fatalf("--against %s: allocated %d MiB", file, got>>20)
		}
	}
}
