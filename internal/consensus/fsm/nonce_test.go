package fsm

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// A group without a nonce keeps the encoding, and so the ID, of groups made
// before nonces existed: the v1 snapshot seed an earlier version wrote holds
// the same group bytes this version encodes.
func TestGroupWithoutNonceKeepsItsEncoding(t *testing.T) {
	b, err := os.ReadFile("testdata/fuzz/FuzzRestore/state")
	if err != nil {
		t.Fatal(err)
	}
	q := strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(string(b), "\n", 3)[1], "[]byte("), ")")
	v1, err := strconv.Unquote(q)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Restore([]byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	g := m.Group()
	if !g.Nonce.IsZero() || !bytes.Contains([]byte(v1), g.Canonical()) {
		t.Fatal("a group without a nonce no longer encodes as it did")
	}
}

// A group created again with the same name, mode and members but a new
// nonce has another ID: requests signed for the earlier group (or one with
// another nonce) are refused as wrong-group, so a member cannot replay them.
func TestNonceSeparatesRecreatedGroups(t *testing.T) {
	ks := keys(t, 4)
	old := group(t, ModeBFT, ks)
	n1, err := NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	n2, _ := NewNonce()
	g1, g2 := old, old
	g1.Nonce, g2.Nonce = n1, n2
	if old.ID() == g1.ID() || g1.ID() == g2.ID() {
		t.Fatal("the nonce does not change the ID")
	}
	for _, g := range []Group{old, g1} {
		p, err := ParseGroup(g.Canonical())
		if err != nil || p.ID() != g.ID() || p.Nonce != g.Nonce {
			t.Fatalf("round trip of %s: %v", g, err)
		}
	}
	var mm *MismatchError
	if err := Compare(g1, g2); !errors.As(err, &mm) || mm.Field != "nonce" {
		t.Fatalf("Compare = %v, want a nonce mismatch", err)
	}

	d := newDriver(t, g1)
	for _, prev := range []Group{old, g2} {
		wantCode(t, d.raw(signed(t, ks[1], prev.ID(), 1, Put("k", []byte("replayed")))), CodeWrongGroup)
	}
	must(t, d.do(ks[1], Put("k", []byte("fresh"))))

	// A membership change keeps the nonce.
	mo := must(t, d.do(ks[0], RemoveMember(ks[3].Public(), 0, ""))).Motion
	for _, k := range ks[:3] {
		d.do(k, Vote(mo, true))
	}
	if g := d.m.Group(); g.Epoch != 1 || g.Nonce != n1 {
		t.Fatalf("after a change: %s", g)
	}
	r, err := Restore(d.m.Snapshot())
	if err != nil || r.Group().Nonce != n1 {
		t.Fatalf("snapshot lost the nonce: %v", err)
	}
}

func TestParseNonce(t *testing.T) {
	n, _ := NewNonce()
	if p, err := ParseNonce(n.String()); err != nil || p != n {
		t.Fatalf("round trip: %v", err)
	}
	if p, err := ParseNonce(""); err != nil || !p.IsZero() {
		t.Fatalf("empty: %v", err)
	}
	for _, bad := range []string{"00", strings.Repeat("0", 32), strings.Repeat("g", 32), strings.Repeat("a", 34)} {
		if _, err := ParseNonce(bad); err == nil {
			t.Errorf("ParseNonce(%q) accepted", bad)
		}
	}
	zero := []byte(groupMagicNonce)
	zero = append(zero, 0, 0, 0, 1, 'a', 1)
	zero = append(zero, make([]byte, 8+16)...)
	if _, err := ParseGroup(zero); err == nil {
		t.Error("a v2 encoding with a zero nonce parsed")
	}
}

// A record of a group with a nonce carries it and verifies; dropping or
// changing the nonce fails the group check.
func TestRecordWithNonce(t *testing.T) {
	ks := keys(t, 4)
	g := group(t, ModeBFT, ks)
	g.Nonce, _ = NewNonce()
	m := machine(t, g)
	e := Entry{Time: 5, Request: signed(t, ks[0], g.ID(), 1, Put("k", []byte("v")))}
	res := must(t, m.Apply(1, e))
	var certs []Attestation
	for _, k := range ks[:3] {
		certs = append(certs, Attest(k, g, 1, e, res))
	}
	r := roundTrip(t, NewRecord(g, 1, e, res, certs))
	if r.Group.Nonce != g.Nonce.String() {
		t.Fatalf("record nonce %q", r.Group.Nonce)
	}
	if err := Verify(r); err != nil {
		t.Fatal(err)
	}
	other, _ := NewNonce()
	for name, nonce := range map[string]string{"dropped": "", "changed": other.String(), "malformed": "xyz"} {
		c := roundTrip(t, r)
		c.Group.Nonce = nonce
		var ve *VerifyError
		if err := Verify(c); !errors.As(err, &ve) || ve.Check != "group" {
			t.Errorf("nonce %s: Verify = %v, want a group failure", name, err)
		}
	}
}
