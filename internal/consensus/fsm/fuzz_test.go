package fsm

import (
	"bytes"
	"testing"
)

// The seed corpora in testdata/fuzz hold one valid encoding of each
// operation, a BFT and a Raft decision record and a snapshot, plus truncated
// and flipped variants; f.Add below adds the edge cases worth naming.

// FuzzDecodeRequest: request bytes come from peers (through the engines). A
// decoded request re-encodes to the same bytes, and applying any bytes never
// panics and gives the same result on two replicas.
func FuzzDecodeRequest(f *testing.F) {
	ks := keys(f, 4)
	g := group(f, ModeBFT, ks)
	good := signed(f, ks[0], g.ID(), 1, CAS("k", []byte("v"), 0))
	f.Add(good)
	f.Add(good[:len(good)-1])           // signature cut short
	f.Add(append(bytes.Clone(good), 0)) // trailing byte
	f.Add([]byte(requestMagic))         // magic only
	f.Add([]byte{})                     // empty: a tick, applied as one
	f.Add(signed(f, ks[1], g.ID(), 1, Vote("m1", true)))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := DecodeRequest(b)
		if err == nil && !bytes.Equal(q.Encode(), b) {
			t.Fatal("decoded bytes do not re-encode to themselves")
		}
		m1, m2 := machine(t, g), machine(t, g)
		r1, r2 := m1.Apply(1, Entry{Time: 1, Request: b}), m2.Apply(1, Entry{Time: 1, Request: b})
		if r1.Digest() != r2.Digest() || m1.Digest() != m2.Digest() {
			t.Fatal("apply is not deterministic")
		}
		if len(b) > 0 && r1.OK() && (err != nil || !q.VerifySignature()) {
			t.Fatalf("applied a request that does not decode or verify: %v %+v", err, r1)
		}
	})
}

// FuzzParseRecord: records are files from anywhere. Parse and Verify never
// panic, and a record that verifies names a member-signed request.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"treaty-decision/v1","group":{"members":[]}}`))
	f.Add([]byte(`{"format":"treaty-decision/v1","certificate":[{"signer":"did:key:z","sig":"AA=="}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		if Verify(r) == nil && len(r.Request) > 0 {
			q, err := DecodeRequest(r.Request)
			if err != nil || !q.VerifySignature() {
				t.Fatal("verified a record whose request does not verify")
			}
		}
	})
}

// FuzzRestore: snapshots arrive from peers when a replica catches up. Restore
// never panics and accepts only canonical snapshots (a v1 snapshot, which
// Restore reads as v2 with no owners, is canonical when its v2 form restores
// to the same state).
func FuzzRestore(f *testing.F) {
	ks := keys(f, 3)
	d := newDriver(f, group(f, ModeRaft, ks))
	d.do(ks[0], Put("a", []byte("1")))
	d.do(ks[0], OpenMotion(d.name(), 2, 0, "m"))
	f.Add(d.m.Snapshot())
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Restore(b)
		if err != nil {
			return
		}
		if bytes.HasPrefix(b, []byte(snapshotMagicV1)) {
			again, err := Restore(m.Snapshot())
			if err != nil || !bytes.Equal(again.Snapshot(), m.Snapshot()) {
				t.Fatalf("a v1 snapshot's v2 form does not restore to the same state: %v", err)
			}
			// The v1 form is canonical: the same state, spelled the v1 way.
			if v1 := bytes.Replace(m.Snapshot(), []byte(snapshotMagic), []byte(snapshotMagicV1), 1); len(m.kv) == 0 && !bytes.Equal(v1, b) {
				t.Fatal("restored a non-canonical v1 snapshot")
			}
			return
		}
		if !bytes.Equal(m.Snapshot(), b) {
			t.Fatal("restored a non-canonical snapshot")
		}
	})
}
