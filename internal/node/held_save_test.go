package node

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
)

// holdBurst has each relayer relay perRelayer revocations of fresh keys to
// n (each is held) and returns the revoked keys.
func holdBurst(t testing.TB, n *Node, relayers []identity.PrivateKey, perRelayer int) []identity.PublicKey {
	t.Helper()
	var keys []identity.PublicKey
	for _, rel := range relayers {
		for range perRelayer {
			k := mustKey(t)
			_, rt, err := membership.SignRevocation(k, n.now(), "")
			if err != nil {
				t.Fatal(err)
			}
			if fresh, err := n.applyStatement(t.Context(), rt, rel.Public(), nil); err != nil || fresh {
				t.Fatalf("revocation of an unknown key: fresh %v, err %v; want held", fresh, err)
			}
			keys = append(keys, k.Public())
		}
	}
	return keys
}

func relayerKeys(t testing.TB, count int) (map[string]identity.PrivateKey, []identity.PrivateKey) {
	members := map[string]identity.PrivateKey{}
	var list []identity.PrivateKey
	for i := range count {
		k := mustKey(t)
		members[fmt.Sprintf("relayer%d", i)] = k
		list = append(list, k)
	}
	return members, list
}

// waitUntil polls cond until it holds or 20 s pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling, not synchronisation
	}
}

// TestHeldBurstCoalescesLedgerWrites: a burst of revocations of unknown
// keys from several members, each within its allowance, costs a handful of
// ledger writes, not one each; the ledger holds them all once the save
// interval has passed (without a Close), and a restart holds them again.
// Before, each one rewrote admission.json whole.
func TestHeldBurstCoalescesLedgerWrites(t *testing.T) {
	t.Parallel()
	members, relayers := relayerKeys(t, 4)
	n, dir := openAdmissionNode(t, members)
	before := n.adm.writes.Load()
	start := time.Now()
	keys := holdBurst(t, n, relayers, 32) // each relayer's whole allowance
	total := len(keys)
	waitUntil(t, "every held revocation in the ledger", func() bool { return len(ledgerOf(t, dir).HeldRevoked) == total })
	elapsed := time.Since(start)
	writes := n.adm.writes.Load() - before
	if most := 2 + int64(elapsed/membership.HeldSaveInterval); writes > most || writes >= int64(total)/4 {
		t.Fatalf("%d ledger writes for %d held revocations over %v, want at most %d (one per %v)",
			writes, total, elapsed, most, membership.HeldSaveInterval)
	}

	n = reopen(t, n, dir, nil)
	if n.adm.held.Len() != total {
		t.Fatalf("after a restart %d revocations held, want %d", n.adm.held.Len(), total)
	}
	for _, k := range keys {
		if why := n.adm.refusedWhy(k); why != "revoked" {
			t.Fatalf("after a restart a held revocation's key is %q, want revoked", why)
		}
	}
}

// TestHeldBurstIsSavedByClose: statements held within the interval after a
// save are on disk once the node closes, and held again after a restart.
func TestHeldBurstIsSavedByClose(t *testing.T) {
	t.Parallel()
	members, relayers := relayerKeys(t, 2)
	n, dir := openAdmissionNode(t, members)
	keys := holdBurst(t, n, relayers, 32)
	n = reopen(t, n, dir, nil) // Close, at once: the last save is Close's
	if got := len(ledgerOf(t, dir).HeldRevoked); got != len(keys) {
		t.Fatalf("ledger holds %d revocations after Close, want %d", got, len(keys))
	}
	if n.adm.held.Len() != len(keys) {
		t.Fatalf("after a restart %d revocations held, want %d", n.adm.held.Len(), len(keys))
	}
}

// TestHeldSaveFailureIsRetried: while admission.json cannot be written,
// newly held revocations are still held (their keys refused) and answered;
// the failure is logged, and the save is retried until it succeeds.
// Before, a failed save dropped the statement and answered the pusher with
// an error.
func TestHeldSaveFailureIsRetried(t *testing.T) {
	t.Parallel()
	members, relayers := relayerKeys(t, 1)
	n, dir := openAdmissionNode(t, members)
	var mu sync.Mutex
	var logs bytes.Buffer
	n.adm.saver.Close() // the node's, replaced by one that logs here
	saver, err := membership.NewHeldSaver(membership.HeldSaverConfig{Save: n.adm.saveHeld,
		Log: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	n.adm.saver = saver
	// A directory in the ledger's place: the rename over it fails.
	path := filepath.Join(dir, AdmissionFile)
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	keys := holdBurst(t, n, relayers, 3)
	for _, k := range keys {
		if why := n.adm.refusedWhy(k); why != "revoked" {
			t.Fatalf("a held revocation whose save failed: key %q, want revoked", why)
		}
	}
	waitUntil(t, "a failed save logged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "held statements not saved")
	})
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the retried save", func() bool {
		_, err := os.Stat(path)
		return err == nil && len(ledgerOf(t, dir).HeldRevoked) == len(keys)
	})
	// The saver counts a save once its write has returned, a moment after
	// the file is in place.
	waitUntil(t, "the save counted", func() bool { return saver.Stats().Saves > 0 })
	if st := saver.Stats(); st.Failed == 0 {
		t.Errorf("saver stats %+v, want failed saves then a save", st)
	}
}
