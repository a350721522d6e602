package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
)

// openAdmissionNode opens a node (not started) whose peer book holds the
// given members, with its admission state loaded.
func openAdmissionNode(t *testing.T, members map[string]identity.PrivateKey) (*Node, string) {
	t.Helper()
	dir := t.TempDir() + "/n"
	if _, err := home.Init(dir, "n", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	n, err := Open(Options{Home: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.loadAdmission(); err != nil {
		t.Fatal(err)
	}
	for name, k := range members {
		if _, err := home.LearnPeer(dir, name, "127.0.0.1:1", k.Public(), config.SourceOperator); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.reload(); err != nil {
		t.Fatal(err)
	}
	return n, dir
}

func signRotation(t *testing.T, n *Node, old, next identity.PrivateKey) string {
	t.Helper()
	_, text, err := membership.SignRotation(old, next, n.now())
	if err != nil {
		t.Fatal(err)
	}
	return text
}

func ledgerOf(t *testing.T, dir string) ledger {
	t.Helper()
	var l ledger
	b, err := os.ReadFile(filepath.Join(dir, AdmissionFile))
	if errors.Is(err, os.ErrNotExist) {
		return l
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRotationFloodBetweenUnknownKeysIsBounded: a member that relays
// rotations between fresh keys it made costs this node a bounded number of
// held rotations, no ledger entry, and a bounded number of audit entries,
// all naming that member; none of them is passed on. A real member's
// rotation that the same member relays in the middle of the flood, and a
// two-step chain of another member delivered out of order by an honest
// member, are still written to the ledger, applied, audited with their
// relayer and passed on. Without the bound each fresh rotation was written
// to the ledger (rewritten whole each time), audited and pushed on.
func TestRotationFloodBetweenUnknownKeysIsBounded(t *testing.T) {
	t.Parallel()
	flooder, victim, honest, chained := mustKey(t), mustKey(t), mustKey(t), mustKey(t)
	n, dir := openAdmissionNode(t, map[string]identity.PrivateKey{"flooder": flooder, "victim": victim, "honest": honest, "chained": chained})
	ctx := t.Context()
	from := flooder.Public()
	flood := 10_000
	if testing.Short() {
		flood = 2_000
	}
	victim2, chainB, chainC := mustKey(t), mustKey(t), mustKey(t)
	var passedOn, refusedOverRate int
	for i := range flood {
		fresh, err := n.applyStatement(ctx, signRotation(t, n, mustKey(t), mustKey(t)), from, nil)
		if fresh {
			passedOn++
		}
		if errors.Is(err, errHeldRotationOverRate) {
			refusedOverRate++
		} else if err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		switch i {
		case flood / 2: // a real member's rotation, relayed by the flooder
			if fresh, err := n.applyStatement(ctx, signRotation(t, n, victim, victim2), from, nil); err != nil || !fresh {
				t.Fatalf("rotation of a member during the flood: fresh %v, err %v; want applied and passed on", fresh, err)
			}
		case flood/2 + 1: // the second link of a chain first: held
			if fresh, err := n.applyStatement(ctx, signRotation(t, n, chainB, chainC), honest.Public(), nil); err != nil || fresh {
				t.Fatalf("second link of a chain, first: fresh %v, err %v; want held, not passed on", fresh, err)
			}
		case flood/2 + 2: // then the first: both apply
			if fresh, err := n.applyStatement(ctx, signRotation(t, n, chained, chainB), honest.Public(), nil); err != nil || !fresh {
				t.Fatalf("first link of a chain: fresh %v, err %v; want applied and passed on", fresh, err)
			}
		}
	}
	if passedOn != 0 {
		t.Errorf("%d rotations between unknown keys would be passed on, want 0", passedOn)
	}
	held := n.adm.heldRot.HeldBy(from)
	if held == 0 || held > 33 || refusedOverRate < flood-held {
		t.Errorf("held %d (refused over rate %d) of %d, want at most the allowance of 32 (+1 refilled)", held, refusedOverRate, flood)
	}
	if n.adm.heldRot.Len() != held {
		t.Errorf("%d rotations held, want only the flooder's %d (the chain's link applied)", n.adm.heldRot.Len(), held)
	}
	peers := n.state.Load().peers
	for _, k := range []identity.PrivateKey{victim2, chainC, flooder} {
		if _, ok := peers[k.Public()]; !ok {
			t.Errorf("%s not in the peer book, want it (rotated member, or the flooder itself)", k.Public().Short())
		}
	}
	for _, k := range []identity.PrivateKey{victim, chained, chainB} {
		if why := n.adm.refusedWhy(k.Public()); why == "" {
			t.Errorf("superseded key %s still admitted", k.Public().Short())
		}
	}
	if l := ledgerOf(t, dir); len(l.Rotations) != 3 {
		t.Errorf("ledger holds %d rotations, want only the 3 of members", len(l.Rotations))
	}

	n.adm.wg.Wait()
	n.flushRefusals(context.Background(), true)
	var rotated, refused, counted int
	for _, e := range AuditEntries(t, n) {
		var r map[string]any
		_ = json.Unmarshal(e.Report, &r)
		switch e.Kind {
		case KindKeyRotated:
			rotated++
			want := honest.Public().String()
			if e.Peer == victim2.Public().String() {
				want = from.String()
			}
			if r["relayed_by"] != want {
				t.Errorf("key.rotated entry for %s relayed by %v, want %s", e.Peer, r["relayed_by"], want)
			}
		case KindStmtRefused:
			if e.Peer == honest.Public().String() && r["reason"] == reasonRotationHeld {
				continue // the chain's second link, held until the first came
			}
			refused++
			if e.Peer != from.String() {
				t.Errorf("statement.refused entry names %q, want the relayer %s", e.Peer, from)
			}
			var c struct {
				Aggregated int `json:"aggregated"`
			}
			_ = json.Unmarshal(e.Report, &c)
			counted += max(c.Aggregated, 1)
		}
	}
	if rotated != 3 {
		t.Errorf("%d key.rotated entries, want 3 (the members')", rotated)
	}
	if refused == 0 || refused > 2 || counted != flood {
		t.Errorf("%d statement.refused entries naming the flooder counting %d, want at most 2 counting all %d", refused, counted, flood)
	}
	// A restart keeps the held rotations (the ledger keeps them, within the
	// same allowance) and the ledger's.
	heldBefore := n.adm.heldRot.Len()
	if err := n.loadAdmission(); err != nil {
		t.Fatal(err)
	}
	if n.adm.heldRot.Len() != heldBefore {
		t.Errorf("after a restart %d rotations held, want the %d held before", n.adm.heldRot.Len(), heldBefore)
	}
	if why := n.adm.refusedWhy(victim.Public()); why == "" {
		t.Error("after a restart the rotated member's old key is admitted again")
	}
}

// TestRotationsOfKnownButSpentKeysAreBounded: the keys a node knows without
// their being members (a member's superseded key, a revoked key) do not
// open the door again. A member that rotated its own key signs more
// rotations from its old key (forks), or from a revoked key it holds, or
// from fresh keys to its own current key: each is held, none written, and
// the new keys of rotations from the revoked key are refused while held. A
// rotation involving a key whose revocation is held still applies both for
// good, as before.
func TestRotationsOfKnownButSpentKeysAreBounded(t *testing.T) {
	t.Parallel()
	flooder, honest, stolen := mustKey(t), mustKey(t), mustKey(t)
	n, dir := openAdmissionNode(t, map[string]identity.PrivateKey{"flooder": flooder, "honest": honest, "stolen": stolen})
	ctx := t.Context()
	apply := func(text string, from identity.PublicKey) (bool, error) {
		t.Helper()
		return n.applyStatement(ctx, text, from, nil)
	}
	flooder2 := mustKey(t)
	if fresh, err := apply(signRotation(t, n, flooder, flooder2), flooder.Public()); err != nil || !fresh {
		t.Fatalf("the member's own rotation: fresh %v, err %v; want applied", fresh, err)
	}
	_, rev, err := membership.SignRevocation(stolen, n.now(), "stolen")
	if err != nil {
		t.Fatal(err)
	}
	if fresh, err := apply(rev, honest.Public()); err != nil || !fresh {
		t.Fatalf("revocation of a member: fresh %v, err %v", fresh, err)
	}
	before := ledgerOf(t, dir)

	relayer := flooder2.Public()
	thieves := make([]identity.PrivateKey, 10)
	cases := 0
	for i := range thieves {
		thieves[i] = mustKey(t)
		for _, text := range []string{
			signRotation(t, n, flooder, mustKey(t)),  // a fork from its superseded key
			signRotation(t, n, stolen, thieves[i]),   // from a revoked key to unknown ones
			signRotation(t, n, mustKey(t), flooder2), // history of its current key, made up
		} {
			cases++
			if fresh, err := apply(text, relayer); fresh || err != nil {
				t.Fatalf("rotation %d: fresh %v, err %v; want held, not passed on", cases, fresh, err)
			}
		}
	}
	after := ledgerOf(t, dir)
	if len(after.Rotations) != len(before.Rotations) {
		t.Errorf("ledger rotations went from %d to %d, want unchanged", len(before.Rotations), len(after.Rotations))
	}
	if got := n.adm.heldRot.HeldBy(relayer); got != cases {
		t.Errorf("%d held for the relayer, want %d", got, cases)
	}
	for i, k := range thieves {
		if why := n.adm.refusedWhy(k.Public()); why != "revoked" {
			t.Fatalf("new key %d of a held rotation from a revoked key is %q, want revoked", i, why)
		}
	}
	// The thief's key turns up in an introduction: it stays out, and the
	// held rotation is written for good.
	adm := membership.Admit{Inviter: honest.Public(), Member: thieves[0].Public(), Name: "thief", Addr: "127.0.0.1:2",
		Nonce: membership.Nonce{2}, Issued: n.now()}
	at, err := adm.Sign(honest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := apply(at, honest.Public()); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.state.Load().peers[thieves[0].Public()]; ok {
		t.Fatal("the new key of a rotation from a revoked key was admitted by an introduction")
	}
	n.adm.wg.Wait()
	if got := len(ledgerOf(t, dir).Rotations); got != len(before.Rotations)+1 {
		t.Errorf("ledger holds %d rotations, want %d: the held one from the revoked key written once its key turned up", got, len(before.Rotations)+1)
	}

	// A held revocation of a fresh key, then a rotation from it: both are
	// written (the key turned up) and the new key is refused.
	fresh, next := mustKey(t), mustKey(t)
	_, frev, err := membership.SignRevocation(fresh, n.now(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := apply(frev, honest.Public()); err != nil {
		t.Fatal(err)
	}
	if ok, err := apply(signRotation(t, n, fresh, next), honest.Public()); err != nil || !ok {
		t.Fatalf("rotation from a key with a held revocation: fresh %v, err %v; want applied and passed on", ok, err)
	}
	n.adm.wg.Wait()
	if err := n.loadAdmission(); err != nil { // a restart
		t.Fatal(err)
	}
	for _, k := range []identity.PrivateKey{fresh, next, thieves[0], stolen} {
		if why := n.adm.refusedWhy(k.Public()); why != "revoked" {
			t.Errorf("after a restart %s is %q, want revoked", k.Public().Short(), why)
		}
	}
}

// TestHeldRotationAppliesWhenItsKeyIsIntroduced: a rotation from a key this
// node does not know yet (its introduction is late) is held, and applied
// once the introduction arrives: the entry ends on the new key.
func TestHeldRotationAppliesWhenItsKeyIsIntroduced(t *testing.T) {
	t.Parallel()
	inviter := mustKey(t)
	n, _ := openAdmissionNode(t, map[string]identity.PrivateKey{"inviter": inviter})
	ctx := t.Context()
	newcomer, next := mustKey(t), mustKey(t)
	if fresh, err := n.applyStatement(ctx, signRotation(t, n, newcomer, next), inviter.Public(), nil); err != nil || fresh {
		t.Fatalf("rotation of an unknown key: fresh %v, err %v; want held", fresh, err)
	}
	adm := membership.Admit{Inviter: inviter.Public(), Member: newcomer.Public(), Name: "newcomer", Addr: "127.0.0.1:2",
		Nonce: membership.Nonce{3}, Issued: n.now()}
	at, err := adm.Sign(inviter)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.applyStatement(ctx, at, inviter.Public(), nil); err != nil {
		t.Fatal(err)
	}
	peers := n.state.Load().peers
	if _, ok := peers[next.Public()]; !ok {
		t.Error("the introduced member's rotated key is not in the book")
	}
	if _, ok := peers[newcomer.Public()]; ok {
		t.Error("the introduced member's superseded key is still in the book")
	}
	if n.adm.heldRot.Len() != 0 {
		t.Errorf("%d rotations still held, want none", n.adm.heldRot.Len())
	}
}

// TestRevocationReachesEveryRotationOfAStolenKey: a thief who rotated a
// stolen key twice (two new keys, both written: the operator published
// them) does not keep either out of the key's revocation. The ledger used
// to follow only the last rotation from each key.
func TestRevocationReachesEveryRotationOfAStolenKey(t *testing.T) {
	t.Parallel()
	stolen := mustKey(t)
	n, _ := openAdmissionNode(t, map[string]identity.PrivateKey{"stolen": stolen})
	ctx := t.Context()
	t1, t2 := mustKey(t), mustKey(t)
	for _, text := range []string{signRotation(t, n, stolen, t1), signRotation(t, n, stolen, t2)} {
		if _, err := n.Publish(ctx, text); err != nil {
			t.Fatal(err)
		}
	}
	_, rev, err := membership.SignRevocation(stolen, n.now(), "stolen")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(ctx, rev); err != nil {
		t.Fatal(err)
	}
	n.adm.wg.Wait()
	for _, k := range []identity.PrivateKey{stolen, t1, t2} {
		if why := n.adm.refusedWhy(k.Public()); why != "revoked" {
			t.Errorf("%s is %q, want revoked", k.Public().Short(), why)
		}
	}
}
