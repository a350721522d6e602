package fsm

import "testing"

// TestSignaturesVerifiedByLeader: the option is refused for a BFT group, and
// only a Raft machine built with it skips the signature check, only on
// entries marked LeaderVerified. Group, membership and replay checks stay.
func TestSignaturesVerifiedByLeader(t *testing.T) {
	ks := keys(t, 3)
	raftG, bftG := group(t, ModeRaft, ks), group(t, ModeBFT, keys(t, 4))
	if _, err := New(bftG, SignaturesVerifiedByLeader()); err == nil {
		t.Fatal("New accepted SignaturesVerifiedByLeader for a BFT group")
	}
	if _, err := RestoreWith(machine(t, bftG).Snapshot(), SignaturesVerifiedByLeader()); err == nil {
		t.Fatal("RestoreWith accepted SignaturesVerifiedByLeader for a BFT group")
	}
	forge := func(g Group, seq uint64) []byte {
		b := signed(t, ks[1], g.ID(), seq, Put("k", []byte("forged")))
		b[len(b)-1] ^= 1
		return b
	}
	trusting := func(t *testing.T, g Group) *Machine {
		m, err := New(g, SignaturesVerifiedByLeader())
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Run("unmarked entry is verified", func(t *testing.T) {
		wantCode(t, trusting(t, raftG).Apply(1, Entry{Request: forge(raftG, 1)}), CodeBadSignature)
	})
	t.Run("machine without the option verifies a marked entry", func(t *testing.T) {
		for _, g := range []Group{raftG, bftG} {
			wantCode(t, machine(t, g).Apply(1, Entry{Request: forge(g, 1), LeaderVerified: true}), CodeBadSignature)
		}
	})
	t.Run("marked entry is trusted", func(t *testing.T) {
		// What the Raft engine guarantees never happens (its leader refuses a
		// bad signature before appending); here it shows the check is skipped.
		must(t, trusting(t, raftG).Apply(1, Entry{Request: forge(raftG, 1), LeaderVerified: true}))
	})
	t.Run("other checks stay", func(t *testing.T) {
		m := trusting(t, raftG)
		must(t, m.Apply(1, Entry{Request: signed(t, ks[1], raftG.ID(), 5, Put("k", nil)), LeaderVerified: true}))
		wantCode(t, m.Apply(2, Entry{Request: signed(t, ks[1], raftG.ID(), 5, Put("k", nil)), LeaderVerified: true}), CodeReplay)
		other, _ := NewGroup("other", ModeRaft, 0, raftG.Members)
		wantCode(t, m.Apply(3, Entry{Request: signed(t, ks[1], other.ID(), 6, Put("k", nil)), LeaderVerified: true}), CodeWrongGroup)
		wantCode(t, m.Apply(4, Entry{Request: signed(t, key(t, 99), raftG.ID(), 1, Put("k", nil)), LeaderVerified: true}), CodeNotMember)
		wantCode(t, m.Apply(5, Entry{Request: []byte("garbage"), LeaderVerified: true}), CodeMalformed)
	})
	t.Run("restored machine keeps the option", func(t *testing.T) {
		m, err := RestoreWith(machine(t, raftG).Snapshot(), SignaturesVerifiedByLeader())
		if err != nil {
			t.Fatal(err)
		}
		must(t, m.Apply(1, Entry{Request: forge(raftG, 1), LeaderVerified: true}))
		plain, _ := Restore(machine(t, raftG).Snapshot())
		wantCode(t, plain.Apply(1, Entry{Request: forge(raftG, 1), LeaderVerified: true}), CodeBadSignature)
	})
}
