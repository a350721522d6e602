package node

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
)

// reopen closes n and opens a node on the same home with its admission
// state loaded: a restart.
func reopen(t *testing.T, n *Node, dir string, logger *slog.Logger) *Node {
	t.Helper()
	n.adm.wg.Wait()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n2, err := Open(Options{Home: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n2.Close() })
	if err := n2.loadAdmission(); err != nil {
		t.Fatal(err)
	}
	return n2
}

// joinWith presents a fresh invite of n to n's join protocol as key, over a
// pipe, and returns n's reply.
func joinWith(t *testing.T, n *Node, key identity.PublicKey) JoinReply {
	t.Helper()
	tok, _, err := n.Invite(t.Context(), time.Hour, 1, "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	server, client := net.Pipe()
	t.Cleanup(func() { server.Close(); client.Close() })
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		req, _ := json.Marshal(JoinRequest{Token: tok, Name: "newcomer", Addr: "127.0.0.1:2"})
		_, _ = client.Write(append(req, '\n'))
	})
	var reply JoinReply
	wg.Go(func() {
		b, _ := io.ReadAll(client)
		_ = json.Unmarshal(bytes.TrimSpace(b), &reply)
	})
	n.answerJoin(t.Context(), server, key)
	server.Close()
	wg.Wait()
	return reply
}

// TestHeldRevocationSurvivesRestart: a revocation of a key this node does
// not know is held, the node restarts, and then the key presents an invite:
// it is refused as revoked. Without persisting held revocations the restart
// forgot it and the revoked key was admitted.
func TestHeldRevocationSurvivesRestart(t *testing.T) {
	t.Parallel()
	relayer, revoked := mustKey(t), mustKey(t)
	n, dir := openAdmissionNode(t, map[string]identity.PrivateKey{"relayer": relayer})
	_, rt, err := membership.SignRevocation(revoked, n.now(), "stolen")
	if err != nil {
		t.Fatal(err)
	}
	if fresh, err := n.applyStatement(t.Context(), rt, relayer.Public(), nil); err != nil || fresh {
		t.Fatalf("revocation of an unknown key: fresh %v, err %v; want held", fresh, err)
	}
	if l := ledgerOf(t, dir); len(l.Revoked) != 0 || len(l.HeldRevoked) != 1 || l.HeldRevoked[0].Relayer != relayer.Public().String() {
		t.Fatalf("ledger: %d revoked, held %+v; want only the held one, naming its relayer", len(l.Revoked), l.HeldRevoked)
	}

	n = reopen(t, n, dir, nil)
	if why := n.adm.refusedWhy(revoked.Public()); why != "revoked" {
		t.Fatalf("after a restart the held revocation's key is %q, want revoked", why)
	}
	reply := joinWith(t, n, revoked.Public())
	if reply.Code != "refused" || !strings.Contains(reply.Reason, "revoked") {
		t.Fatalf("join of the revoked key after a restart: %+v, want refused as revoked", reply)
	}
	if _, ok := n.state.Load().peers[revoked.Public()]; ok {
		t.Fatal("the revoked key entered the peer book")
	}
	// The join made the key known: its revocation is in the ledger now, and
	// no longer held.
	n.adm.wg.Wait()
	if l := ledgerOf(t, dir); len(l.Revoked) != 1 || len(l.HeldRevoked) != 0 {
		t.Errorf("after the join: %d revoked, %d held in the ledger; want the revocation applied", len(l.Revoked), len(l.HeldRevoked))
	}
}

// TestHeldRotationSurvivesRestart: a member's key is revoked, and then a
// rotation from it to a key this node does not know arrives: it is held
// (the thief's new key). After a restart it is still held and still
// refuses its new key.
func TestHeldRotationSurvivesRestart(t *testing.T) {
	t.Parallel()
	relayer, old, next := mustKey(t), mustKey(t), mustKey(t)
	n, dir := openAdmissionNode(t, map[string]identity.PrivateKey{"relayer": relayer, "old": old})
	_, rvt, err := membership.SignRevocation(old, n.now(), "stolen")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{rvt, signRotation(t, n, old, next)} {
		if _, err := n.applyStatement(t.Context(), text, relayer.Public(), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n.adm.heldRot.Len() != 1 {
		t.Fatalf("held %d rotations, want the one from the revoked key", n.adm.heldRot.Len())
	}
	n = reopen(t, n, dir, nil)
	if n.adm.heldRot.Len() != 1 || n.adm.heldRot.HeldBy(relayer.Public()) != 1 {
		t.Fatalf("after a restart held %d rotations (%d by the relayer), want it held again", n.adm.heldRot.Len(), n.adm.heldRot.HeldBy(relayer.Public()))
	}
	if why := n.adm.refusedWhy(next.Public()); why != "revoked" {
		t.Errorf("after a restart the new key of a rotation from a revoked key is %q, want revoked", why)
	}
}

// TestHeldRestoreDropsDamagedRecords: a damaged held record in the ledger
// (its signature no longer verifies) is dropped at start with a log line;
// the good one beside it is held again and the node starts.
func TestHeldRestoreDropsDamagedRecords(t *testing.T) {
	t.Parallel()
	relayer, a, b := mustKey(t), mustKey(t), mustKey(t)
	n, dir := openAdmissionNode(t, map[string]identity.PrivateKey{"relayer": relayer})
	for _, k := range []identity.PrivateKey{a, b} {
		_, rt, err := membership.SignRevocation(k, n.now(), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.applyStatement(t.Context(), rt, relayer.Public(), nil); err != nil {
			t.Fatal(err)
		}
	}
	n.adm.wg.Wait()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, AdmissionFile)
	l := ledgerOf(t, dir)
	for i, h := range l.HeldRevoked {
		if r, err := membership.ParseRevocation(h.Text); err == nil && r.Key == b.Public() {
			txt := []byte(h.Text)
			j := len(txt) - 3 // still base64url, no longer the signature
			txt[j] = map[bool]byte{true: 'B', false: 'A'}[txt[j] == 'A']
			l.HeldRevoked[i].Text = string(txt)
		}
	}
	raw, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	n2 := reopen(t, n, dir, logger)
	if why := n2.adm.refusedWhy(a.Public()); why != "revoked" {
		t.Errorf("the good held revocation's key is %q after the restart, want revoked", why)
	}
	if why := n2.adm.refusedWhy(b.Public()); why != "" {
		t.Errorf("the damaged held revocation's key is %q, want it dropped", why)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "held statement dropped") {
		t.Errorf("no log line for the dropped record; log:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestJoinPromotesHeldRotationFromTheKey: a rotation from a key this node
// does not know is held; the key then joins by invite. Its rotation is
// applied once it is a member: written to the ledger, no longer held, and
// the new member's entry moved to the new key. Without it the member stayed
// on the key it had rotated away from (held revocations were applied at a
// join; held rotations were not).
func TestJoinPromotesHeldRotationFromTheKey(t *testing.T) {
	t.Parallel()
	relayer, old, next := mustKey(t), mustKey(t), mustKey(t)
	n, dir := openAdmissionNode(t, map[string]identity.PrivateKey{"relayer": relayer})
	rot := signRotation(t, n, old, next)
	if fresh, err := n.applyStatement(t.Context(), rot, relayer.Public(), nil); err != nil || fresh {
		t.Fatalf("rotation between unknown keys: fresh %v, err %v; want held", fresh, err)
	}
	if n.adm.heldRot.Len() != 1 {
		t.Fatal("rotation not held")
	}
	if reply := joinWith(t, n, old.Public()); reply.Code != "" {
		t.Fatalf("join of the rotation's old key refused: %+v", reply)
	}
	n.adm.wg.Wait()
	if n.adm.heldRot.Len() != 0 {
		t.Errorf("%d rotations still held after their old key joined, want none", n.adm.heldRot.Len())
	}
	if l := ledgerOf(t, dir); !slices.Contains(l.Rotations, rot) || len(l.HeldRotations) != 0 {
		t.Errorf("ledger rotations %d (held %d), want the rotation applied", len(l.Rotations), len(l.HeldRotations))
	}
	peers := n.state.Load().peers
	if _, ok := peers[old.Public()]; ok {
		t.Error("the joined member is still on its old key")
	}
	if _, ok := peers[next.Public()]; !ok {
		t.Error("the joined member's entry was not moved to its new key")
	}
	if why := n.adm.refusedWhy(old.Public()); !strings.HasPrefix(why, "superseded") {
		t.Errorf("the old key is %q, want superseded", why)
	}
}

// TestGroupAdmissionPromotesHeld: a key the governing group admits is a key
// that turned up, as at a join: a held rotation from it is applied, and a
// held revocation of another admitted key is written to the ledger (the
// admission itself still refused).
func TestGroupAdmissionPromotesHeld(t *testing.T) {
	t.Parallel()
	relayer, old, next, revoked := mustKey(t), mustKey(t), mustKey(t), mustKey(t)
	n, dir := openAdmissionNode(t, map[string]identity.PrivateKey{"relayer": relayer})
	rot := signRotation(t, n, old, next)
	_, rvt, err := membership.SignRevocation(revoked, n.now(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{rot, rvt} {
		if _, err := n.applyStatement(t.Context(), text, relayer.Public(), nil); err != nil {
			t.Fatal(err)
		}
	}
	admit := func(k identity.PublicKey, name string) error {
		d := membership.Decided{Action: membership.GroupAction{Kind: membership.ActionAdmit, Key: k, Name: name},
			Motion: "m-" + name, Time: n.now().UnixNano(), Addr: "127.0.0.1:3"}
		return n.applyGroupAdmission(t.Context(), d, relayer.Public(), false)
	}
	if err := admit(old.Public(), "old"); err != nil {
		t.Fatal(err)
	}
	if err := admit(revoked.Public(), "revoked"); err != nil {
		t.Fatal(err)
	}
	n.adm.wg.Wait()
	peers := n.state.Load().peers
	if _, ok := peers[next.Public()]; !ok || n.adm.heldRot.Len() != 0 {
		t.Errorf("group-admitted key's held rotation not applied (entry on the new key %v, %d held)", ok, n.adm.heldRot.Len())
	}
	if _, ok := peers[revoked.Public()]; ok {
		t.Error("a key with a held revocation was admitted by the group")
	}
	l := ledgerOf(t, dir)
	if !slices.Contains(l.Rotations, rot) || !slices.Contains(l.Revoked, rvt) || len(l.HeldRevoked)+len(l.HeldRotations) != 0 {
		t.Errorf("ledger: %d rotations, %d revoked, %d+%d held; want both applied", len(l.Rotations), len(l.Revoked),
			len(l.HeldRevoked), len(l.HeldRotations))
	}
}
