package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// bftRecord is a BFT decision record signed by all four members.
func bftRecord(t *testing.T) []byte {
	t.Helper()
	var ks []identity.PrivateKey
	var pubs []identity.PublicKey
	for i := range 4 {
		k, err := identity.FromSeed(bytes.Repeat([]byte{byte(i + 1)}, 32))
		if err != nil {
			t.Fatal(err)
		}
		ks, pubs = append(ks, k), append(pubs, k.Public())
	}
	g, err := fsm.NewGroup("reviews", fsm.ModeBFT, 0, pubs)
	if err != nil {
		t.Fatal(err)
	}
	q, err := fsm.SignRequest(ks[0], g.ID(), 1, fsm.OpenMotion("merge-pr-42", 3, 0, "merge it"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := fsm.New(g)
	e := fsm.Entry{Time: 1000, Request: q.Encode()}
	res := m.Apply(1, e)
	var certs []fsm.Attestation
	for _, k := range ks[:3] {
		certs = append(certs, fsm.Attest(k, g, 1, e, res))
	}
	b, err := json.Marshal(fsm.NewRecord(g, 1, e, res, certs))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecisionVerifyOffline: the record verifies with no home and no node;
// a changed byte of the request, the result or a signature fails with exit 1.
func TestDecisionVerifyOffline(t *testing.T) {
	rec := bftRecord(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "decision.json")
	os.WriteFile(path, rec, 0o600)
	out, errOut, code := runTL(t, "decision", "verify", path)
	if code != 0 || !strings.Contains(out, "ok: decision 1 of group reviews") || !strings.Contains(out, "3 member signatures") {
		t.Fatalf("verify: code %d\n%s%s", code, out, errOut)
	}
	var r fsm.Record
	json.Unmarshal(rec, &r)
	for name, change := range map[string]func(r *fsm.Record){
		"request byte":  func(r *fsm.Record) { r.Request[len(r.Request)-70] ^= 1 },
		"result":        func(r *fsm.Record) { r.Result.Outcome = fsm.OutcomePassed },
		"signature":     func(r *fsm.Record) { r.Certificate[1].Sig[0] ^= 1 },
		"time":          func(r *fsm.Record) { r.Time++ },
		"one signature": func(r *fsm.Record) { r.Certificate = r.Certificate[:1] },
	} {
		var c fsm.Record
		json.Unmarshal(rec, &c)
		change(&c)
		b, _ := json.Marshal(c)
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		os.WriteFile(p, b, 0o600)
		if _, errOut, code := runTL(t, "decision", "verify", p); code != 1 || !strings.Contains(errOut, "decision record") {
			t.Errorf("%s changed: exit %d, stderr %q", name, code, errOut)
		}
	}
	if _, _, code := runTL(t, "decision", "verify", filepath.Join(dir, "missing.json")); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, _, code := runTL(t, "decision", "verify", path); code != 1 {
		t.Errorf("garbage: exit %d, want 1", code)
	}
}

// TestDecisionVerifyPinsTheGroup: a record carries its own group definition,
// so anyone can make one that verifies for a group of their own keys with
// the same name. --group-id refuses every record that is not of that group.
func TestDecisionVerifyPinsTheGroup(t *testing.T) {
	rec := bftRecord(t)
	var r fsm.Record
	if err := json.Unmarshal(rec, &r); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "decision.json")
	os.WriteFile(path, rec, 0o600)
	if out, errOut, code := runTL(t, "decision", "verify", "--group-id", r.Group.ID.String(), path); code != 0 {
		t.Fatalf("verify with its own group: exit %d\n%s%s", code, out, errOut)
	}
	var other fsm.ID
	other[0] = 1
	if out, errOut, code := runTL(t, "decision", "verify", "--group-id", other.String(), path); code != 1 || !strings.Contains(errOut, "group") {
		t.Fatalf("verify against another group: exit %d\n%s%s", code, out, errOut)
	}
	if _, _, code := runTL(t, "decision", "verify", "--group-id", "xyz", path); code != 2 {
		t.Fatalf("a malformed --group-id: exit %d, want 2", code)
	}
}

// TestDecisionVerifyRefusedStaleRequest: a member's request signed for an
// epoch that a membership change ended while it waited is ordered and
// refused by the group; its honest record verifies (exit 0) and says the
// request is not attributable; the same record claiming the request applied
// fails (exit 1).
func TestDecisionVerifyRefusedStaleRequest(t *testing.T) {
	var ks []identity.PrivateKey
	var pubs []identity.PublicKey
	for i := range 4 {
		k, _ := identity.FromSeed(bytes.Repeat([]byte{byte(i + 1)}, 32))
		ks, pubs = append(ks, k), append(pubs, k.Public())
	}
	g0, _ := fsm.NewGroup("reviews", fsm.ModeBFT, 0, pubs)
	m, _ := fsm.New(g0)
	index := uint64(0)
	apply := func(k identity.PrivateKey, g fsm.Group, seq uint64, op fsm.Op) (fsm.Entry, fsm.Result) {
		q, err := fsm.SignRequest(k, g.ID(), seq, op)
		if err != nil {
			t.Fatal(err)
		}
		index++
		e := fsm.Entry{Time: int64(1000 + index), Request: q.Encode()}
		return e, m.Apply(index, e)
	}
	_, res := apply(ks[0], g0, 1, fsm.RemoveMember(ks[3].Public(), 0, ""))
	for i, k := range ks[:3] {
		apply(k, g0, uint64(2+i), fsm.Vote(res.Motion, true))
	}
	g1 := m.Group()
	if g1.Epoch != 1 {
		t.Fatalf("removal did not pass: epoch %d", g1.Epoch)
	}
	e, res := apply(ks[1], g0, 10, fsm.Put("pr/42/reviewer", []byte("alice"))) // signed for epoch 0
	if res.Code != fsm.CodeWrongGroup {
		t.Fatalf("stale request: code %q", res.Code)
	}
	var certs []fsm.Attestation
	for _, k := range ks[:3] {
		certs = append(certs, fsm.Attest(k, g1, index, e, res))
	}
	r := fsm.NewRecord(g1, index, e, res, certs)
	dir := t.TempDir()
	path := filepath.Join(dir, "refused.json")
	b, _ := json.Marshal(r)
	os.WriteFile(path, b, 0o600)
	out, errOut, code := runTL(t, "decision", "verify", path)
	if code != 0 || !strings.Contains(out, "not attributable") || !strings.Contains(out, "wrong-group") {
		t.Fatalf("honest refused record: exit %d\n%s%s", code, out, errOut)
	}
	r.Result.Code, r.Result.Reason = fsm.CodeOK, ""
	b, _ = json.Marshal(r)
	os.WriteFile(path, b, 0o600)
	if out, errOut, code := runTL(t, "decision", "verify", path); code != 1 {
		t.Fatalf("record claiming the stale request applied: exit %d\n%s%s", code, out, errOut)
	}
}
