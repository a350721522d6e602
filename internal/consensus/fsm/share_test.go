package fsm

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
)

// One member cannot fill the store: past its equal share (MaxKeys/n keys,
// MaxStoreBytes/n bytes) its writes are refused as member-share, and the
// other members still write. Every replica refuses the same writes.
func TestMemberShareOfKeys(t *testing.T) {
	ks := keys(t, 4)
	d := newDriver(t, group(t, ModeBFT, ks))
	d.m.lim.keys, d.m.lim.bytes = 16, 1<<20
	replica := machine(t, d.m.Group())
	replica.lim = d.m.lim
	apply := func(r Result) Result { // the same entry on a second replica
		t.Helper()
		if got := replica.Apply(d.index, Entry{Time: d.now, Request: d.lastReq}); got.Digest() != r.Digest() {
			t.Fatalf("replicas disagree at %d: %+v vs %+v", d.index, got, r)
		}
		return r
	}
	share, _ := d.m.Share()
	if share != 4 {
		t.Fatalf("share %d keys, want 16/4", share)
	}
	for i := range share {
		must(t, apply(d.do(ks[0], Put("a/"+strconv.Itoa(i), []byte("v")))))
	}
	r := apply(d.do(ks[0], Put("a/over", []byte("v"))))
	wantCode(t, r, CodeShare)
	if !strings.Contains(r.Reason, "share is 4") {
		t.Fatalf("reason %q", r.Reason)
	}
	if err := r.Err(); err == nil {
		t.Fatal("a share refusal is not an error")
	}
	// Overwriting its own key does not grow what it owns.
	must(t, apply(d.do(ks[0], Put("a/0", []byte("w")))))
	// The others still write, up to their own shares.
	for _, k := range ks[1:] {
		must(t, apply(d.do(k, Put("b/"+k.Public().Short(), []byte("v")))))
	}
	// Deleting frees a slot; the key a member takes over by writing it
	// becomes its own.
	must(t, apply(d.do(ks[1], Put("a/1", []byte("mine now")))))
	if n, _ := d.m.Owned(ks[0].Public()); n != 3 {
		t.Fatalf("ks[0] owns %d keys after another member took one over, want 3", n)
	}
	must(t, apply(d.do(ks[0], Put("a/again", []byte("v")))))
	wantCode(t, apply(d.do(ks[0], Put("a/over", []byte("v")))), CodeShare)
	must(t, apply(d.do(ks[2], Delete("a/again"))))
	must(t, apply(d.do(ks[0], Put("a/over", []byte("v")))))
	if !bytes.Equal(d.m.Snapshot(), replica.Snapshot()) {
		t.Fatal("replicas' states differ")
	}
}

func TestMemberShareOfBytes(t *testing.T) {
	ks := keys(t, 2)
	d := newDriver(t, group(t, ModeRaft, ks))
	d.m.lim.bytes = 200
	_, share := d.m.Share()
	if share != 100 {
		t.Fatalf("byte share %d, want 100", share)
	}
	must(t, d.do(ks[0], Put("k", bytes.Repeat([]byte("x"), 98)))) // 99 bytes
	wantCode(t, d.do(ks[0], Put("k", bytes.Repeat([]byte("x"), 100))), CodeShare)
	wantCode(t, d.do(ks[0], Put("j", []byte("x"))), CodeShare)
	must(t, d.do(ks[0], Put("k", []byte("short")))) // shrinking is never refused
	must(t, d.do(ks[1], Put("j", bytes.Repeat([]byte("y"), 90))))
}

// A snapshot keeps each key's owner, so a replica restored from one refuses
// the same writes as one that applied every entry.
func TestMemberShareSurvivesSnapshot(t *testing.T) {
	ks := keys(t, 2)
	d := newDriver(t, group(t, ModeRaft, ks))
	d.m.lim.keys = 4
	must(t, d.do(ks[0], Put("a", nil)))
	must(t, d.do(ks[0], Put("b", nil)))
	r, err := Restore(d.m.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	r.lim = d.m.lim
	if n, _ := r.Owned(ks[0].Public()); n != 2 {
		t.Fatalf("restored: ks[0] owns %d keys, want 2", n)
	}
	d.m = r
	wantCode(t, d.do(ks[0], Put("c", nil)), CodeShare)
}

// A v1 snapshot (an earlier version's, without owners) still restores; its
// keys count in no member's share.
func TestRestoreV1Snapshot(t *testing.T) {
	b, err := os.ReadFile("testdata/fuzz/FuzzRestore/state")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	q := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
	v1, err := strconv.Unquote(q)
	if err != nil || !strings.HasPrefix(v1, snapshotMagicV1) {
		t.Fatalf("seed: %v", err)
	}
	m, err := Restore([]byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.kv) == 0 {
		t.Fatal("the seed holds no key")
	}
	for k, it := range m.kv {
		if !it.Owner.IsZero() {
			t.Fatalf("key %q has an owner from a v1 snapshot", k)
		}
	}
	if len(m.owned) != 0 {
		t.Fatalf("owned %v", m.owned)
	}
	if !bytes.HasPrefix(m.Snapshot(), []byte(snapshotMagic)) {
		t.Fatal("a restored v1 machine does not snapshot as v2")
	}
}
