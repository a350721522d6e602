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

// TestRevocationFloodOfUnknownKeysIsBounded: a member that relays
// self-signed revocations of fresh keys it made costs this node a bounded
// number of held revocations, no ledger entry, and a bounded number of audit
// entries, all naming that member; none of them is passed on. A revocation
// of a real member that the same member relays in the middle of the flood is
// still written to the ledger, passed on and in force, and survives a
// restart. Without the bound each fresh key's revocation was written to the
// ledger (rewritten whole each time), audited as key.revoked naming the fresh
// key, and pushed on to every member.
func TestRevocationFloodOfUnknownKeysIsBounded(t *testing.T) {
	t.Parallel()
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
	flooder, victim := mustKey(t), mustKey(t)
	for name, k := range map[string]identity.PrivateKey{"flooder": flooder, "victim": victim} {
		if _, err := home.LearnPeer(dir, name, "127.0.0.1:1", k.Public(), config.SourceOperator); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.reload(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	from := flooder.Public()
	flood := 10_000
	if testing.Short() {
		flood = 2_000
	}
	var passedOn, refusedOverRate int
	var firstFresh identity.PublicKey
	for i := range flood {
		k := mustKey(t)
		if i == 0 {
			firstFresh = k.Public()
		}
		_, text, err := membership.SignRevocation(k, n.now(), "")
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := n.applyStatement(ctx, text, from, nil)
		if fresh {
			passedOn++
		}
		if errors.Is(err, errHeldOverRate) {
			refusedOverRate++
		} else if err != nil {
			t.Fatalf("revocation %d: %v", i, err)
		}
		if i == flood/2 {
			_, vt, err := membership.SignRevocation(victim, n.now(), "stolen")
			if err != nil {
				t.Fatal(err)
			}
			if fresh, err := n.applyStatement(ctx, vt, from, nil); err != nil || !fresh {
				t.Fatalf("revocation of a member during the flood: fresh %v, err %v; want applied and passed on", fresh, err)
			}
		}
	}
	if passedOn != 0 {
		t.Errorf("%d revocations of unknown keys would be passed on, want 0", passedOn)
	}
	held := n.adm.held.Len()
	if held == 0 || held > 33 || refusedOverRate < flood-held {
		t.Errorf("held %d (refused over rate %d) of %d, want at most the allowance of 32 (+1 refilled)", held, refusedOverRate, flood)
	}
	if why := n.adm.refusedWhy(firstFresh); why != "revoked" {
		t.Errorf("a held revocation's key is %q, want refused as revoked", why)
	}
	if why := n.adm.refusedWhy(victim.Public()); why != "revoked" {
		t.Errorf("revoked member is %q, want revoked", why)
	}
	if _, ok := n.state.Load().peers[victim.Public()]; ok {
		t.Error("revoked member still in the peer book")
	}
	if _, ok := n.state.Load().peers[from]; !ok {
		t.Error("the flooder left the peer book; only its statements should be refused")
	}

	var l ledger
	b, err := os.ReadFile(filepath.Join(dir, AdmissionFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Revoked) != 1 {
		t.Fatalf("ledger holds %d revocations, want only the member's", len(l.Revoked))
	}

	n.adm.wg.Wait()
	n.flushRefusals(context.Background(), true)
	var revoked, refused, counted int
	for _, e := range AuditEntries(t, n) {
		switch e.Kind {
		case KindKeyRevoked:
			revoked++
			var r map[string]any
			_ = json.Unmarshal(e.Report, &r)
			if e.Peer != victim.Public().String() || r["relayed_by"] != from.String() {
				t.Errorf("key.revoked entry for %s relayed by %v, want the member relayed by the flooder", e.Peer, r["relayed_by"])
			}
		case KindStmtRefused:
			refused++
			if e.Peer != from.String() {
				t.Errorf("statement.refused entry names %q, want the relayer %s", e.Peer, from)
			}
			var r struct {
				Aggregated int `json:"aggregated"`
			}
			_ = json.Unmarshal(e.Report, &r)
			counted += max(r.Aggregated, 1)
		}
	}
	if revoked != 1 {
		t.Errorf("%d key.revoked entries, want 1 (the member)", revoked)
	}
	if refused == 0 || refused > 2 || counted != flood {
		t.Errorf("%d statement.refused entries counting %d, want at most 2 counting all %d", refused, counted, flood)
	}

	// A restart keeps the held revocations (the ledger keeps them, within
	// the same allowance) and the ledger's.
	if err := n.loadAdmission(); err != nil {
		t.Fatal(err)
	}
	if why := n.adm.refusedWhy(victim.Public()); why != "revoked" {
		t.Errorf("after a restart the revoked member is %q, want revoked", why)
	}
	if n.adm.held.Len() != held || n.adm.refusedWhy(firstFresh) != "revoked" {
		t.Errorf("after a restart %d revocations held, want the %d held before", n.adm.held.Len(), held)
	}
}

// TestHeldRevocationWinsOverALaterIntroduction: a revocation of a key this
// node does not know yet is held, and beats the introduction of that key
// that comes later: the key stays out, and the revocation is then written to
// the ledger (it survives a restart).
func TestHeldRevocationWinsOverALaterIntroduction(t *testing.T) {
	t.Parallel()
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
	inviter, newcomer := mustKey(t), mustKey(t)
	if _, err := home.LearnPeer(dir, "inviter", "127.0.0.1:1", inviter.Public(), config.SourceOperator); err != nil {
		t.Fatal(err)
	}
	if err := n.reload(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	_, rt, err := membership.SignRevocation(newcomer, n.now(), "lost")
	if err != nil {
		t.Fatal(err)
	}
	if fresh, err := n.applyStatement(ctx, rt, inviter.Public(), nil); err != nil || fresh {
		t.Fatalf("revocation of an unknown key: fresh %v, err %v; want held, not passed on", fresh, err)
	}
	adm := membership.Admit{Inviter: inviter.Public(), Member: newcomer.Public(), Name: "newcomer", Addr: "127.0.0.1:2",
		Nonce: membership.Nonce{1}, Issued: n.now()}
	at, err := adm.Sign(inviter)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.applyStatement(ctx, at, inviter.Public(), nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.state.Load().peers[newcomer.Public()]; ok {
		t.Fatal("a key with a held revocation was admitted by a later introduction")
	}
	n.adm.wg.Wait()
	if err := n.loadAdmission(); err != nil { // a restart
		t.Fatal(err)
	}
	if why := n.adm.refusedWhy(newcomer.Public()); why != "revoked" {
		t.Errorf("after a restart the introduced key is %q, want revoked (the revocation written once the key turned up)", why)
	}
}

func mustKey(tb testing.TB) identity.PrivateKey {
	tb.Helper()
	k, err := identity.Generate(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
