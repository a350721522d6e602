package fsm

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

func TestGroupIDIgnoresMemberOrder(t *testing.T) {
	ks := pubs(keys(t, 4))
	a, err := NewGroup("g", ModeBFT, 0, ks)
	if err != nil {
		t.Fatal(err)
	}
	rev := slices.Clone(ks)
	slices.Reverse(rev)
	b, err := NewGroup("g", ModeBFT, 0, rev)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != b.ID() || Compare(a, b) != nil {
		t.Fatal("same members in another order gave another group")
	}
	p, err := ParseGroup(a.Canonical())
	if err != nil || p.ID() != a.ID() {
		t.Fatalf("ParseGroup round trip: %v", err)
	}
}

func TestGroupMismatch(t *testing.T) {
	ks := pubs(keys(t, 5))
	base, _ := NewGroup("g", ModeBFT, 0, ks[:4])
	other := func(name string, mode Mode, epoch uint64, m []identity.PublicKey) Group {
		g, err := NewGroup(name, mode, epoch, m)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	cases := []struct {
		name   string
		remote Group
		field  string
		member identity.PublicKey
		local  bool
	}{
		{"name", other("h", ModeBFT, 0, ks[:4]), "name", identity.PublicKey{}, false},
		{"mode", other("g", ModeRaft, 0, ks[:4]), "mode", identity.PublicKey{}, false},
		{"epoch", other("g", ModeBFT, 1, ks[:4]), "epoch", identity.PublicKey{}, false},
		{"remote lacks", other("g", ModeBFT, 0, ks[:3]), "member", ks[3], true},
		{"remote has extra", other("g", ModeBFT, 0, ks), "member", ks[4], false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if base.ID() == c.remote.ID() {
				t.Fatal("different definitions share an ID")
			}
			var me *MismatchError
			if err := Compare(base, c.remote); !errors.As(err, &me) {
				t.Fatalf("Compare = %v, want *MismatchError", err)
			}
			if me.Field != c.field || (c.field == "member" && (me.Member != c.member || me.LocalHas != c.local)) {
				t.Fatalf("got %+v (%v)", me, me)
			}
		})
	}
}

func TestGroupQuorumAndF(t *testing.T) {
	cases := []struct {
		n         int
		mode      Mode
		f, quorum int
	}{
		{1, ModeRaft, 0, 1}, {2, ModeRaft, 0, 2}, {3, ModeRaft, 0, 2}, {4, ModeRaft, 0, 3}, {5, ModeRaft, 0, 3},
		// BFT n=1..3: f=0, no lying member tolerated.
		{1, ModeBFT, 0, 1}, {2, ModeBFT, 0, 2}, {3, ModeBFT, 0, 2},
		{4, ModeBFT, 1, 3}, {5, ModeBFT, 1, 4}, {6, ModeBFT, 1, 4}, {7, ModeBFT, 2, 5}, {10, ModeBFT, 3, 7},
	}
	for _, c := range cases {
		g := group(t, c.mode, keys(t, c.n))
		if g.F() != c.f || g.Quorum() != c.quorum {
			t.Errorf("%s n=%d: f=%d quorum=%d, want f=%d quorum=%d", c.mode, c.n, g.F(), g.Quorum(), c.f, c.quorum)
		}
		if c.mode == ModeBFT && g.N() < 3*g.F()+1 {
			t.Errorf("n=%d < 3f+1", c.n)
		}
		// Two BFT quorums share at least f+1 members, so at least one honest one.
		if c.mode == ModeBFT && 2*g.Quorum()-g.N() < g.F()+1 {
			t.Errorf("bft n=%d: quorums intersect in %d < f+1", c.n, 2*g.Quorum()-g.N())
		}
	}
}

func TestGroupValidate(t *testing.T) {
	ks := pubs(keys(t, 2))
	many := make([]identity.PublicKey, MaxMembers+1)
	for i := range many {
		many[i] = pubs([]identity.PrivateKey{key(t, byte(i))})[0]
	}
	cases := []struct {
		name    string
		gname   string
		mode    Mode
		members []identity.PublicKey
	}{
		{"empty name", "", ModeRaft, ks},
		{"upper case", "Reviews", ModeRaft, ks},
		{"unicode lookalike", "revіews", ModeRaft, ks}, // Cyrillic і
		{"long name", string(make([]byte, MaxNameLen+1)), ModeRaft, ks},
		{"bad mode", "g", "paxos", ks},
		{"no members", "g", ModeBFT, nil},
		{"duplicate", "g", ModeBFT, []identity.PublicKey{ks[0], ks[0]}},
		{"zero key", "g", ModeBFT, []identity.PublicKey{{}}},
		{"too many", "g", ModeBFT, many},
	}
	for _, c := range cases {
		if _, err := NewGroup(c.gname, c.mode, 0, c.members); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// TestMismatchMessages: the operator reads these to fix a definition.
func TestMismatchMessages(t *testing.T) {
	ks := pubs(keys(t, 4))
	a, _ := NewGroup("g", ModeBFT, 0, ks[:3])
	b, _ := NewGroup("g", ModeBFT, 0, ks[1:])
	c, _ := NewGroup("g", ModeRaft, 0, ks[:3])
	for _, tc := range []struct {
		local, remote Group
		want          []string
	}{
		{a, b, []string{ks[0].String(), "local definition"}},
		{b, a, []string{ks[3].String(), "local definition"}},
		{a, c, []string{"mode", `"bft"`, `"raft"`}},
	} {
		msg := Compare(tc.local, tc.remote).Error()
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q lacks %q", msg, w)
			}
		}
	}
}
