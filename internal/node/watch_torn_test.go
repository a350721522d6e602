package node

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
)

// TestWatchWaitsForStableContent: an editor that truncates treaty.yaml and
// writes it again in place can be read half-way; a torn file that still
// parses (the peer list cut short) must not be applied. The watcher applies
// content only when two consecutive ticks read it the same, so a normal edit
// lands at the second tick after it. The ticks are driven by hand. Without
// the check the first tick applied the torn file and carol was dropped.
func TestWatchWaitsForStableContent(t *testing.T) {
	t.Parallel()
	n, dir, _, _ := openMovesNode(t)
	path := filepath.Join(dir, config.FileName)
	torn, err := os.ReadFile(path) // bob only
	if err != nil {
		t.Fatal(err)
	}
	carol, dave := newPeerKey(t), newPeerKey(t)
	if err := home.AddPeer(dir, "carol", "127.0.0.1:7100", carol.String()); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := home.AddPeer(dir, "dave", "127.0.0.1:7200", dave.String()); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(path) // bob, carol, dave
	if err != nil {
		t.Fatal(err)
	}
	hasPeer := func(k identity.PublicKey) bool { _, ok := n.state.Load().peers[k]; return ok }

	var w watcher
	if err := os.WriteFile(path, torn, 0o600); err != nil { // caught mid-write
		t.Fatal(err)
	}
	n.watchTick(&w)
	if !hasPeer(carol) {
		t.Fatal("a torn treaty.yaml read once was applied: carol was dropped")
	}
	if err := os.WriteFile(path, full, 0o600); err != nil { // the write finished
		t.Fatal(err)
	}
	n.watchTick(&w)
	if hasPeer(dave) {
		t.Fatal("content read once was applied")
	}
	n.watchTick(&w)
	if !hasPeer(dave) || !hasPeer(carol) {
		t.Fatal("content read the same at two ticks was not applied")
	}

	// A file changed between the two reads starts over; an unchanged one is
	// applied at the next read.
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	n.watchTick(&w)
	if err := os.WriteFile(path, full, 0o600); err != nil {
		t.Fatal(err)
	}
	n.watchTick(&w) // the content in force: nothing pending any more
	n.watchTick(&w)
	if !hasPeer(carol) {
		t.Fatal("torn content applied after the file was put back")
	}
}

// TestWatchInvalidContentLoggedOnce: invalid content is refused once (after
// it read the same twice) and not retried on the ticks after.
func TestWatchInvalidContentLoggedOnce(t *testing.T) {
	t.Parallel()
	n, dir, _, _ := openMovesNode(t)
	path := filepath.Join(dir, config.FileName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(good, []byte("bogus_field: 1\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	var w watcher
	n.watchTick(&w)
	if msg, _ := n.ConfigError(); msg != "" {
		t.Fatalf("content read once was tried: %s", msg)
	}
	n.watchTick(&w)
	msg, at := n.ConfigError()
	if msg == "" {
		t.Fatal("invalid content not reported")
	}
	for range 5 {
		n.watchTick(&w)
	}
	if _, again := n.ConfigError(); !again.Equal(at) {
		t.Fatal("invalid content retried")
	}
}

func newPeerKey(t *testing.T) identity.PublicKey {
	t.Helper()
	k, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// TestWatchNeverAppliesStaleContent: content the watcher read is applied
// only if it is still what the files hold. An explicit Reload (a CLI edit, a
// grant) that applied newer files between the watcher's read and its apply
// must not be reverted: CI saw grants and peer removals undone so.
func TestWatchNeverAppliesStaleContent(t *testing.T) {
	t.Parallel()
	n, dir, _, _ := openMovesNode(t)
	stale := readHomeFiles(dir) // what a watcher tick read
	carol := newPeerKey(t)
	if err := home.AddPeer(dir, "carol", "127.0.0.1:7100", carol.String()); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := n.reloadFiles(stale); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.state.Load().peers[carol]; !ok {
		t.Fatal("the watcher's stale read was applied over a newer explicit reload: carol was dropped")
	}
}
