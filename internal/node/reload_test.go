package node

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/policy"
)

// logCount is a slog handler that counts records whose message contains a text.
type logCount struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logCount) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCount) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logCount) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCount) WithGroup(string) slog.Handler      { return l }
func (l *logCount) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

func startReloadNode(t *testing.T) (*Node, string, identity.PublicKey, *logCount) {
	t.Helper()
	dir := t.TempDir()
	if _, err := home.Init(dir, "alice", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	k, err := identity.FromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	bob := k.Public()
	if err := home.AddPeer(dir, "bob", "127.0.0.1:7421", bob.String()); err != nil {
		t.Fatal(err)
	}
	logs := &logCount{}
	n, err := Open(Options{Home: dir, Logger: slog.New(logs), ReloadInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		n.Close()
	})
	return n, dir, bob, logs
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not synchronising
	}
}

// replaceFile swaps in a new version of path whole, as home's own writers
// do: with os.WriteFile the 10 ms reload tick can read the file truncated
// and report "config: EOF" as the edit's error.
func replaceFile(path string, b []byte) error {
	tmp := path + ".edit"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func allowed(n *Node, k identity.PublicKey, capName string) bool {
	return n.state.Load().pol.Authorize(k, policy.ActionCall, capName, policy.Context{Trust: 1}).Allowed
}

// TestQuickEditsAllApplied makes edits faster than file timestamps can tell
// apart, each of the same size; the last one must be in force within a second.
func TestQuickEditsAllApplied(t *testing.T) {
	n, dir, bob, _ := startReloadNode(t)
	for i := range 10 {
		if _, err := home.Grant(dir, "bob", "cap"+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
		if _, _, err := home.Ungrant(dir, "bob", "cap"+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := home.Grant(dir, "bob", "capz"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "grant in force", func() bool { return allowed(n, bob, "capz") })
	if _, _, err := home.Ungrant(dir, "bob", "capz"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "revocation in force", func() bool { return !allowed(n, bob, "capz") })
}

func TestInvalidEditLoggedOnceAndReported(t *testing.T) {
	n, dir, _, logs := startReloadNode(t)
	path := filepath.Join(dir, config.FileName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := replaceFile(path, append(good, []byte("bogus_field: 1\n")...)); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "config error reported", func() bool { msg, _ := n.ConfigError(); return msg != "" })
	msg, at := n.ConfigError()
	if !strings.Contains(msg, "bogus_field") || at.IsZero() {
		t.Fatalf("ConfigError = %q at %v", msg, at)
	}
	for range 20 {
		n.Reload() // the same content again, as every watch tick would
	}
	if c := logs.count("configuration not applied"); c != 1 {
		t.Fatalf("invalid edit logged %d times, want once", c)
	}
	if err := replaceFile(path, good); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "config error cleared", func() bool { msg, _ := n.ConfigError(); return msg == "" })
}

func TestDeletedPolicyAudited(t *testing.T) {
	n, dir, bob, logs := startReloadNode(t)
	if _, err := home.Grant(dir, "bob", "echo"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "grant in force", func() bool { return allowed(n, bob, "echo") })
	if err := os.Remove(filepath.Join(dir, policy.FileName)); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "deletion applied", func() bool { return !allowed(n, bob, "echo") })
	if logs.count("configuration file deleted") != 1 {
		t.Fatal("deletion not logged")
	}
	r, err := audit.OpenReader(context.Background(), filepath.Join(dir, AuditFile))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	es, err := r.List(context.Background(), audit.Filter{Kind: audit.KindPolicyChanged})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range es {
		var rep map[string]string
		json.Unmarshal(e.Report, &rep)
		if rep["file"] == policy.FileName && rep["change"] == "deleted" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no policy.changed entry for the deletion among %d", len(es))
	}
}
