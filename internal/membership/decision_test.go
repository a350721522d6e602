package membership

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// govGroup is a group driven by hand: each entry is applied to one machine
// and certified by the members listed in signers.
type govGroup struct {
	t       *testing.T
	keys    []identity.PrivateKey
	g       fsm.Group
	m       *fsm.Machine
	index   uint64
	seq     map[identity.PublicKey]uint64
	records map[uint64]fsm.Record
}

func newGovGroup(t *testing.T, mode fsm.Mode, n int) *govGroup {
	return newGovGroupFrom(t, mode, n, 100)
}

// newGovGroupFrom makes the group "board" of n members whose keys are
// testKey(first), testKey(first+1), ...
func newGovGroupFrom(t *testing.T, mode fsm.Mode, n, first int) *govGroup {
	t.Helper()
	gg := &govGroup{t: t, seq: map[identity.PublicKey]uint64{}, records: map[uint64]fsm.Record{}}
	var pubs []identity.PublicKey
	for i := range n {
		k := testKey(t, first+i)
		gg.keys = append(gg.keys, k)
		pubs = append(pubs, k.Public())
	}
	g, err := fsm.NewGroup("board", mode, 0, pubs)
	if err != nil {
		t.Fatal(err)
	}
	gg.g = g
	if gg.m, err = fsm.New(g); err != nil {
		t.Fatal(err)
	}
	return gg
}

// do applies op by member i and records the entry, certified by the first
// quorum members for BFT.
func (gg *govGroup) do(i int, op fsm.Op) fsm.Record {
	gg.t.Helper()
	k := gg.keys[i]
	gg.seq[k.Public()]++
	q, err := fsm.SignRequest(k, gg.g.ID(), gg.seq[k.Public()], op)
	if err != nil {
		gg.t.Fatal(err)
	}
	gg.index++
	e := fsm.Entry{Time: int64(gg.index) * 1e9, Request: q.Encode()}
	before := gg.m.Group()
	res := gg.m.Apply(gg.index, e)
	var certs []fsm.Attestation
	if before.Mode == fsm.ModeBFT {
		for _, s := range gg.keys[:before.Quorum()] {
			certs = append(certs, fsm.Attest(s, before, gg.index, e, res))
		}
	}
	r := fsm.NewRecord(before, gg.index, e, res, certs)
	gg.records[gg.index] = r
	return r
}

// pass opens a governing motion for a with quorum and has the first quorum
// members vote yes; it returns the open and the passing records.
func (gg *govGroup) pass(a GroupAction, quorum uint32) (fsm.Record, fsm.Record) {
	gg.t.Helper()
	name := a.MotionName("t1")
	open := gg.do(0, fsm.OpenMotion(name, quorum, 0, a.MotionText()))
	var last fsm.Record
	for i := range int(quorum) {
		last = gg.do(i, fsm.Vote(name, true))
	}
	if len(last.Result.Closed) != 1 || last.Result.Closed[0].Outcome != fsm.OutcomePassed {
		gg.t.Fatalf("motion did not pass: %+v", last.Result)
	}
	return open, last
}

func TestDecidedRoundTrip(t *testing.T) {
	for _, mode := range []fsm.Mode{fsm.ModeBFT, fsm.ModeRaft} {
		t.Run(string(mode), func(t *testing.T) {
			gg := newGovGroup(t, mode, 4)
			victim := testKey(t, 7).Public()
			open, passed := gg.pass(GroupAction{Kind: ActionRevoke, Key: victim}, uint32(gg.g.Quorum()))
			text, d, err := SignDecided(gg.keys[1], open, passed, "")
			if err != nil {
				t.Fatal(err)
			}
			if d.Action.Kind != ActionRevoke || d.Action.Key != victim || d.Group.ID() != gg.g.ID() || d.Passed != passed.Index || d.Opened != open.Index {
				t.Fatalf("decided: %+v", d)
			}
			if d2, err := ParseDecided(text); err != nil || d2.Text != text {
				t.Fatalf("parse: %v", err)
			}
			newcomer := testKey(t, 8).Public()
			open, passed = gg.pass(GroupAction{Kind: ActionAdmit, Key: newcomer, Name: "delta"}, uint32(gg.g.Quorum()))
			if _, d, err = SignDecided(gg.keys[0], open, passed, "127.0.0.1:7443"); err != nil || d.Addr != "127.0.0.1:7443" || d.Action.Name != "delta" {
				t.Fatalf("admit: %+v %v", d, err)
			}
		})
	}
}

// TestDecidedForgeries: every way of faking a group's decision is refused,
// and refused as a proof that does not verify (trust evidence bad_signature)
// or a malformed statement.
func TestDecidedForgeries(t *testing.T) {
	gg := newGovGroup(t, fsm.ModeBFT, 4)
	victim := testKey(t, 7).Public()
	open, passed := gg.pass(GroupAction{Kind: ActionRevoke, Key: victim}, 3)
	outsider := testKey(t, 50)

	// A motion opened with a quorum below the group's, passed by one vote.
	lowName := GroupAction{Kind: ActionRevoke, Key: victim}.MotionName("low")
	lowOpen := gg.do(3, fsm.OpenMotion(lowName, 1, 0, GroupAction{Kind: ActionRevoke, Key: victim}.MotionText()))
	lowPass := gg.do(3, fsm.Vote(lowName, true))
	// An ordinary motion that passed.
	plainOpen := gg.do(0, fsm.OpenMotion("lunch", 3, 0, "pizza"))
	gg.do(0, fsm.Vote("lunch", true))
	gg.do(1, fsm.Vote("lunch", true))
	plainPass := gg.do(2, fsm.Vote("lunch", true))

	// The same decision by another group with the same name (other members).
	other := newGovGroupFrom(t, fsm.ModeBFT, 4, 200)
	otherOpen, otherPass := other.pass(GroupAction{Kind: ActionRevoke, Key: victim}, 3)

	badCert := passed
	badCert.Certificate = append([]fsm.Attestation{}, passed.Certificate...)
	badCert.Certificate[0].Sig = append([]byte{}, badCert.Certificate[0].Sig...)
	badCert.Certificate[0].Sig[5] ^= 1
	strangerCert := passed
	strangerCert.Certificate = append([]fsm.Attestation{}, passed.Certificate...)
	strangerCert.Certificate[0] = fsm.Attestation{Signer: outsider.Public(), Sig: passed.Certificate[0].Sig}
	shortCert := passed
	shortCert.Certificate = passed.Certificate[:2]
	flipped := passed
	flipped.Result.Closed = []fsm.Closure{{Motion: passed.Result.Closed[0].Motion, Outcome: fsm.OutcomeFailed}}

	cases := []struct {
		name        string
		signer      identity.PrivateKey
		open, close fsm.Record
		addr        string
		bad         error
	}{
		{"certificate signature changed", gg.keys[1], open, badCert, "", ErrBadSignature},
		{"certificate signer not a member", gg.keys[1], open, strangerCert, "", ErrBadSignature},
		{"certificate below quorum", gg.keys[1], open, shortCert, "", ErrBadSignature},
		{"outcome changed to passed", gg.keys[1], open, flipped, "", ErrBadSignature},
		{"quorum below the group's", gg.keys[1], lowOpen, lowPass, "", ErrBadSignature},
		{"ordinary motion", gg.keys[1], plainOpen, plainPass, "", ErrBadSignature},
		{"close of another motion", gg.keys[1], open, plainPass, "", ErrBadSignature},
		{"records of two groups", gg.keys[1], open, otherPass, "", ErrBadSignature},
		{"close before open", gg.keys[1], passed, open, "", ErrBadSignature},
		{"address not from the opener", gg.keys[2], open, passed, "10.0.0.1:1", ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := SignDecided(c.signer, c.open, c.close, c.addr)
			if !errors.Is(err, c.bad) {
				t.Fatalf("err = %v, want %v", err, c.bad)
			}
		})
	}
	// A valid decision of another group verifies alone; the node refuses it
	// as not the governing group's (checked against its configuration).
	if _, d, err := SignDecided(gg.keys[0], otherOpen, otherPass, ""); err != nil || d.Group.ID() == gg.g.ID() {
		t.Fatalf("other group's decision: %v", err)
	}

	// A Raft decision is a member's word: an outsider's wrapper is refused.
	rg := newGovGroup(t, fsm.ModeRaft, 3)
	ro, rp := rg.pass(GroupAction{Kind: ActionRevoke, Key: victim}, 2)
	if _, _, err := SignDecided(outsider, ro, rp, ""); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("raft decision wrapped by an outsider: %v", err)
	}

	// The wrapper's own signature and encoding.
	text, _, err := SignDecided(gg.keys[1], open, passed, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(text, DecidedPrefix+"."))
	raw[len(raw)-1] ^= 1
	if _, err := ParseDecided(DecidedPrefix + "." + base64.RawURLEncoding.EncodeToString(raw)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrapper signature changed: %v", err)
	}
	for _, bad := range []string{"", text + "=", strings.Replace(text, DecidedPrefix, "treaty-decided-v2", 1), text[:len(text)-3], DecidedPrefix + "." + strings.Repeat("A", MaxDecidedText)} {
		if _, err := ParseDecided(bad); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%.40q: %v", bad, err)
		}
	}
}

func TestGroupActionText(t *testing.T) {
	k := testKey(t, 9).Public()
	for _, a := range []GroupAction{{Kind: ActionRevoke, Key: k}, {Kind: ActionAdmit, Key: k, Name: "delta"}} {
		got, ok, err := ParseGroupAction(a.MotionText())
		if err != nil || !ok || got != a {
			t.Fatalf("%+v: %+v %v %v", a, got, ok, err)
		}
		if err := fsm.ValidMotionName(a.MotionName("abc123")); err != nil {
			t.Fatalf("motion name: %v", err)
		}
	}
	if _, ok, err := ParseGroupAction("merge PR 42"); ok || err != nil {
		t.Fatalf("plain motion: %v %v", ok, err)
	}
	for _, bad := range []string{
		GovernorTextPrefix + " revoke",
		GovernorTextPrefix + " revoke " + k.String() + " extra",
		GovernorTextPrefix + " admit " + k.String(),
		GovernorTextPrefix + " admit " + k.String() + " Bad\u202eName",
		GovernorTextPrefix + " admit " + k.String() + " -dash",
		GovernorTextPrefix + " evict " + k.String(),
		GovernorTextPrefix + " revoke did:key:zzz",
		GovernorTextPrefix + "  revoke " + k.String(),
	} {
		if _, ok, err := ParseGroupAction(bad); !ok || !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: ok %v err %v", bad, ok, err)
		}
	}
}

// FuzzParseDecided: a decided statement arrives from any member; whatever
// its bytes, the parser returns a verified decision or a typed error, and a
// decision it returns parses again to the same one.
func FuzzParseDecided(f *testing.F) {
	gg := newGovGroup(&testing.T{}, fsm.ModeBFT, 4)
	open, passed := gg.pass(GroupAction{Kind: ActionRevoke, Key: testKey(&testing.T{}, 7).Public()}, 3)
	text, _, err := SignDecided(gg.keys[0], open, passed, "")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(text)
	f.Add(text[:len(text)/2])
	f.Add(DecidedPrefix + ".")
	f.Add(DecidedPrefix + ".e30")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDecided(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if d2, err := ParseDecided(d.Text); err != nil || d2.Passed != d.Passed || d2.Action != d.Action {
			t.Fatalf("does not parse again: %v", err)
		}
	})
}
