package bftengine

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// A decision record exported by one member verifies offline (from its JSON
// alone) and fails once any byte of the entry, the request, the result or a
// signature changes, or a signer is not a member.
func TestRecordTamperFails(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	a := h.propose(2, h.req(2, fsm.CAS("pr/12", []byte("approved"), 0)), 10*time.Second)
	h.waitIndex([]int{0}, a.Index, 10*time.Second)
	ctx, cancel := contextWithin(10 * time.Second)
	defer cancel()
	rec, err := h.engines[0].Record(ctx, a.Index)
	if err != nil {
		t.Fatal(err)
	}
	// Keep exactly Quorum signatures, so that every one of them matters.
	rec.Certificate = rec.Certificate[:h.c.Group.Quorum()]
	js, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := fsm.ParseRecord(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsm.Verify(parsed); err != nil {
		t.Fatalf("exported record does not verify offline: %v", err)
	}
	clone := func() fsm.Record {
		var r fsm.Record
		if err := json.Unmarshal(js, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	mustFail := func(what string, r fsm.Record) {
		t.Helper()
		if err := fsm.Verify(r); err == nil {
			t.Fatalf("%s: record still verifies", what)
		}
	}
	for i := range rec.Request {
		r := clone()
		r.Request[i] ^= 0x01
		mustFail("request byte", r)
	}
	for i := range rec.Certificate {
		for j := range rec.Certificate[i].Sig {
			r := clone()
			r.Certificate[i].Sig[j] ^= 0x01
			mustFail("signature byte", r)
		}
	}
	r := clone()
	r.Time++
	mustFail("entry time", r)
	r = clone()
	r.Index++
	mustFail("index", r)
	r = clone()
	r.Result.Version++
	mustFail("result version", r)
	r = clone()
	r.Result.Code = fsm.CodeCASMismatch
	mustFail("result code", r)
	r = clone()
	r.Certificate = r.Certificate[:len(r.Certificate)-1]
	mustFail("a missing signature", r)
	// A stranger's valid signature over the same statement does not count.
	stranger, err := identity.FromSeed(bytes.Repeat([]byte{0x99}, 32))
	if err != nil {
		t.Fatal(err)
	}
	r = clone()
	g, _ := fsm.NewGroup(r.Group.Name, r.Group.Mode, r.Group.Epoch, r.Group.Members)
	e := fsm.Entry{Time: r.Time, Request: r.Request}
	res := fsm.Result{Index: r.Index, Time: r.Result.Time, Code: r.Result.Code, Reason: r.Result.Reason,
		Version: r.Result.Version, Motion: r.Result.Motion, Outcome: r.Result.Outcome, Closed: r.Result.Closed}
	r.Certificate[0] = fsm.Attest(stranger, g, r.Index, e, res)
	mustFail("a non-member signer", r)
}
