package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// testClock is a clock a test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestRotationBurstOfALiveKeyIsBounded: a member rotates its own live key
// 20 times in a burst. The first rotation is applied; the others are
// refused with a budget-stage error that unwraps to
// membership.ErrRotationTooSoon, leave the member's entry on the key of the
// first, are counted, and cost at most 2 audit entries. A minute later a
// single rotation of the same member is applied again. Without the bound
// every rotation moved the entry, rewrote the ledger and was audited.
func TestRotationBurstOfALiveKeyIsBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/n"
	if _, err := home.Init(dir, "n", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	clock := &testClock{now: time.Now()}
	n, err := Open(Options{Home: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.loadAdmission(); err != nil {
		t.Fatal(err)
	}
	member := mustKey(t)
	if _, err := home.LearnPeer(dir, "member", "127.0.0.1:1", member.Public(), config.SourceOperator); err != nil {
		t.Fatal(err)
	}
	if err := n.reload(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	cur := member
	const burst = 20
	var applied, refused int
	for i := range burst {
		clock.Add(time.Second)
		next := mustKey(t)
		fresh, err := n.applyStatement(ctx, signRotation(t, n, cur, next), cur.Public(), nil)
		switch {
		case err == nil && fresh:
			applied++
			cur = next
		case errors.Is(err, membership.ErrRotationTooSoon) && refusal.StageOf(err) == refusal.StageBudget:
			refused++
		default:
			t.Fatalf("rotation %d: fresh %v, err %v (stage %q); want applied or refused at the budget stage", i, fresh, err, refusal.StageOf(err))
		}
	}
	if applied != 1 || refused != burst-1 {
		t.Fatalf("applied %d, refused %d of a burst of %d within %d s; want 1 applied", applied, refused, burst, burst)
	}
	if got := n.adm.rotLimit.Refused(); got != burst-1 {
		t.Errorf("refusals counted %d, want %d", got, burst-1)
	}
	if _, ok := n.state.Load().peers[cur.Public()]; !ok {
		t.Error("the member's entry is not on the key of its one applied rotation")
	}
	n.adm.wg.Wait()
	n.flushRefusals(context.Background(), true)
	var rotated, refusedEntries int
	for _, e := range AuditEntries(t, n) {
		switch e.Kind {
		case KindKeyRotated:
			rotated++
		case KindStmtRefused:
			refusedEntries++
			if e.Stage != string(refusal.StageBudget) {
				t.Errorf("statement.refused entry at stage %q, want budget", e.Stage)
			}
		}
	}
	if rotated != 1 || refusedEntries == 0 || refusedEntries > 2 {
		t.Errorf("%d key.rotated and %d statement.refused entries; want 1 and at most 2", rotated, refusedEntries)
	}

	// An honest rotation a minute later is applied.
	clock.Add(membership.RotationInterval)
	next := mustKey(t)
	if fresh, err := n.applyStatement(ctx, signRotation(t, n, cur, next), cur.Public(), nil); err != nil || !fresh {
		t.Fatalf("rotation a minute after the last: fresh %v, err %v; want applied", fresh, err)
	}
	if _, ok := n.state.Load().peers[next.Public()]; !ok {
		t.Error("the member's entry did not move to its new key")
	}
}

// TestOwnRotationTooSoonIsRefused: this node rotated to its key a moment ago
// (the rotation is in its ledger); rotating again is refused at once with a
// budget-stage error, before a new key is made or anyone is told, rather
// than after every member refused it.
func TestOwnRotationTooSoonIsRefused(t *testing.T) {
	t.Parallel()
	n, dir := openAdmissionNode(t, nil)
	_, text, err := membership.SignRotation(mustKey(t), n.key, n.now())
	if err != nil {
		t.Fatal(err)
	}
	n.adm.mu.Lock()
	recordLocked(&n.adm.ledger.Rotations, text)
	n.adm.mu.Unlock()
	_, err = n.Rotate(t.Context())
	if !errors.Is(err, membership.ErrRotationTooSoon) || refusal.StageOf(err) != refusal.StageBudget {
		t.Fatalf("Rotate right after a rotation: %v (stage %q), want refused at the budget stage", err, refusal.StageOf(err))
	}
	if _, serr := os.Stat(filepath.Join(dir, rotationPendingFile)); !errors.Is(serr, os.ErrNotExist) {
		t.Error("a refused rotation left a pending rotation behind")
	}
}
