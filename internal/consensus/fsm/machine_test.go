package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

func TestKV(t *testing.T) {
	ks := keys(t, 3)
	d := newDriver(t, group(t, ModeRaft, ks))
	a := ks[0]

	r := must(t, d.do(a, Put("pr/42", []byte("alice"))))
	if r.Version != 1 || r.Index != 1 {
		t.Fatalf("first put: %+v", r)
	}
	r = must(t, d.do(a, CAS("pr/42", []byte("bob"), 1)))
	if r.Version != 2 {
		t.Fatalf("cas: %+v", r)
	}
	r = d.do(ks[1], CAS("pr/42", []byte("carol"), 1))
	wantCode(t, r, CodeCASMismatch)
	if r.Version != 2 {
		t.Fatalf("cas mismatch must report the current version: %+v", r)
	}
	var re *RejectedError
	if err := r.Err(); !errors.As(err, &re) || re.Code != CodeCASMismatch {
		t.Fatalf("Err() = %v", err)
	}
	it, ok := d.m.Get("pr/42")
	if !ok || string(it.Value) != "bob" || it.Version != 2 || it.Index != 2 {
		t.Fatalf("Get = %+v %v", it, ok)
	}
	wantCode(t, d.do(a, CAS("fresh", []byte("x"), 1)), CodeCASMismatch)
	must(t, d.do(a, CAS("fresh", []byte("x"), 0))) // 0: create only if absent
	wantCode(t, d.do(a, CAS("fresh", []byte("y"), 0)), CodeCASMismatch)
	wantCode(t, d.do(a, Op{Kind: OpDelete, Key: "fresh", HasIfVersion: true, IfVersion: 5}), CodeCASMismatch)
	must(t, d.do(a, Op{Kind: OpDelete, Key: "fresh", HasIfVersion: true, IfVersion: 1}))
	wantCode(t, d.do(a, Delete("fresh")), CodeNotFound)
	if r := must(t, d.do(a, Put("fresh", []byte("again")))); r.Version != 1 {
		t.Fatalf("re-created key: version %d, want 1", r.Version)
	}
	if got := d.m.Keys("pr/"); len(got) != 1 || got[0] != "pr/42" {
		t.Fatalf("Keys = %v", got)
	}
}

// TestRejections covers every refusal of the authentication steps: each is a
// no-op that leaves the state (but the clock and index) as it was.
func TestRejections(t *testing.T) {
	ks := keys(t, 4)
	g := group(t, ModeBFT, ks)
	outsider := key(t, 99)
	otherGroup, _ := NewGroup("other", ModeBFT, 0, g.Members)

	forged := func() []byte {
		// The leader (ks[0]) claims ks[1] voted: ks[1]'s key, ks[0]'s signature.
		q, _ := SignRequest(ks[1], g.ID(), 50, Put("k", []byte("by 1")))
		b := q.Encode()
		sig := ks[0].Sign(q.Body())
		copy(b[len(b)-64:], sig)
		return b
	}
	cases := []struct {
		name string
		req  func(d *driver) []byte
		code Code
	}{
		{"malformed", func(*driver) []byte { return []byte("garbage") }, CodeMalformed},
		{"wrong group", func(*driver) []byte { return signed(t, ks[0], otherGroup.ID(), 1, Put("k", nil)) }, CodeWrongGroup},
		{"not a member", func(*driver) []byte { return signed(t, outsider, g.ID(), 1, Put("k", nil)) }, CodeNotMember},
		{"forged by leader", func(*driver) []byte { return forged() }, CodeBadSignature},
		{"replay", func(d *driver) []byte { return signed(t, ks[2], g.ID(), 7, Put("k", []byte("replayed"))) }, CodeReplay},
		{"seq below last", func(d *driver) []byte { return signed(t, ks[2], g.ID(), 3, Put("k", nil)) }, CodeReplay},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newDriver(t, g)
			must(t, d.raw(signed(t, ks[2], g.ID(), 7, Put("k", []byte("original")))))
			before := d.m.Snapshot()
			seqBefore := d.m.LastSeq(ks[1].Public())
			r := d.raw(c.req(d))
			wantCode(t, r, c.code)
			after := d.m.Snapshot()
			// Only index and clock (which follow the snapshot's group field) may move.
			m2, _ := Restore(before)
			m2.lastIndex, m2.clock = d.m.lastIndex, d.m.clock
			if !bytes.Equal(m2.Snapshot(), after) {
				t.Fatal("a refused request changed the state")
			}
			if d.m.LastSeq(ks[1].Public()) != seqBefore {
				t.Fatal("a forged request moved the victim's sequence number")
			}
		})
	}
}

func TestIndexMustGrow(t *testing.T) {
	ks := keys(t, 1)
	g := group(t, ModeRaft, ks)
	m := machine(t, g)
	must(t, m.Apply(5, Entry{Time: 1, Request: signed(t, ks[0], g.ID(), 1, Put("k", nil))}))
	for _, idx := range []uint64{5, 4, 0} {
		wantCode(t, m.Apply(idx, Entry{Time: 2, Request: signed(t, ks[0], g.ID(), 2, Put("k", nil))}), CodeIndex)
	}
	if m.LastSeq(ks[0].Public()) != 1 || m.LastIndex() != 5 {
		t.Fatal("refused index changed state")
	}
	must(t, m.Apply(9, Entry{Time: 2, Request: signed(t, ks[0], g.ID(), 2, Put("k", nil))})) // gaps are fine
}

func TestClockIsMaxOfAgreedTimes(t *testing.T) {
	ks := keys(t, 1)
	m := machine(t, group(t, ModeRaft, ks))
	for i, c := range []struct{ in, want int64 }{{100, 100}, {50, 100}, {200, 200}, {0, 200}} {
		if r := m.Apply(uint64(i+1), Entry{Time: c.in}); r.Time != c.want || m.Clock() != c.want {
			t.Fatalf("time %d: clock %d, want %d", c.in, m.Clock(), c.want)
		}
	}
}

func TestMotionPassesAtQuorum(t *testing.T) {
	ks := keys(t, 4)
	d := newDriver(t, group(t, ModeBFT, ks))
	r := must(t, d.do(ks[0], OpenMotion(d.name(), 3, 0, "approve PR 42")))
	id := r.Motion
	if id != fmt.Sprintf("m%d", r.Index) || r.Outcome != OutcomeOpen {
		t.Fatalf("open: %+v", r)
	}
	must(t, d.do(ks[0], Vote(id, true)))
	must(t, d.do(ks[1], Vote(id, false)))
	wantCode(t, d.do(ks[1], Vote(id, true)), CodeAlreadyVoted) // votes are final
	must(t, d.do(ks[2], Vote(id, true)))
	r = must(t, d.do(ks[3], Vote(id, true)))
	if r.Outcome != OutcomePassed || len(r.Closed) != 1 || r.Closed[0].Motion != id {
		t.Fatalf("third yes: %+v", r)
	}
	wantCode(t, d.do(ks[1], Vote(id, true)), CodeClosed)
	mo, _ := d.m.Motion(id)
	if mo.Outcome != OutcomePassed || mo.Decided != r.Index || len(mo.Yes) != 3 || len(mo.No) != 1 {
		t.Fatalf("motion: %+v", mo)
	}
}

func TestMotionFailsWhenUnreachable(t *testing.T) {
	ks := keys(t, 4)
	d := newDriver(t, group(t, ModeBFT, ks))
	id := must(t, d.do(ks[0], OpenMotion(d.name(), 3, 0, ""))).Motion
	must(t, d.do(ks[0], Vote(id, false)))
	r := must(t, d.do(ks[1], Vote(id, false))) // 2 no of 4: at most 2 yes < 3
	if r.Outcome != OutcomeFailed {
		t.Fatalf("%+v", r)
	}
}

func TestMotionDeadlineUsesAgreedTime(t *testing.T) {
	ks := keys(t, 4)
	d := newDriver(t, group(t, ModeBFT, ks))
	id := must(t, d.do(ks[0], OpenMotion(d.name(), 2, 5000, ""))).Motion
	must(t, d.do(ks[0], Vote(id, true)))
	// An entry stamped earlier than the clock does not move it back.
	d.now = 10
	must(t, d.do(ks[1], Put("k", nil)))
	if mo, _ := d.m.Motion(id); mo.Outcome != OutcomeOpen {
		t.Fatal("closed before its deadline")
	}
	// A vote in an entry stamped at the deadline is too late: expiry runs first.
	d.now = 4999
	r := d.do(ks[1], Vote(id, true))
	wantCode(t, r, CodeClosed)
	if len(r.Closed) != 1 || r.Closed[0].Outcome != OutcomeFailed {
		t.Fatalf("%+v", r)
	}
	wantCode(t, d.do(ks[0], OpenMotion(d.name(), 1, 4000, "")), CodeInvalid) // deadline in the past
}

func TestMotionTickCloses(t *testing.T) {
	ks := keys(t, 3)
	d := newDriver(t, group(t, ModeRaft, ks))
	a := must(t, d.do(ks[0], OpenMotion(d.name(), 2, 3000, ""))).Motion
	b := must(t, d.do(ks[0], OpenMotion(d.name(), 2, 2000, ""))).Motion
	r := d.tickTo(3000)
	if len(r.Closed) != 2 || r.Closed[0].Motion != a || r.Closed[1].Motion != b {
		t.Fatalf("tick closed %+v, want both in ID order", r.Closed)
	}
}

func TestMotionOpenRejects(t *testing.T) {
	ks := keys(t, 3)
	d := newDriver(t, group(t, ModeRaft, ks))
	wantCode(t, d.do(ks[0], OpenMotion(d.name(), 0, 0, "")), CodeInvalid)
	must(t, d.do(ks[0], OpenMotion("same", 1, 0, "")))
	wantCode(t, d.do(ks[0], OpenMotion("same", 1, 0, "")), CodeInvalid) // names are unique
	wantCode(t, d.do(ks[0], OpenMotion(d.name(), 4, 0, "")), CodeInvalid)
	wantCode(t, d.do(ks[0], Vote("nope", true)), CodeNotFound)
	wantCode(t, d.do(ks[0], AddMember(ks[1].Public(), 0, "")), CodeInvalid)
	wantCode(t, d.do(ks[0], RemoveMember(key(t, 50).Public(), 0, "")), CodeInvalid)
}

func TestMembershipChange(t *testing.T) {
	ks := keys(t, 5)
	d := newDriver(t, group(t, ModeBFT, ks[:4]))
	oldID := d.m.Group().ID()
	newcomer := ks[4]

	plain := must(t, d.do(ks[0], OpenMotion(d.name(), 4, 0, "needs everyone"))).Motion
	must(t, d.do(ks[3], Vote(plain, true)))

	id := must(t, d.do(ks[0], AddMember(newcomer.Public(), 0, "welcome"))).Motion
	if mo, _ := d.m.Motion(id); mo.Quorum != 3 || id[0] != '#' {
		t.Fatalf("membership quorum %d, want the group's 3", mo.Quorum)
	}
	wantCode(t, d.do(newcomer, Vote(id, true)), CodeNotMember)
	must(t, d.do(ks[0], Vote(id, true)))
	must(t, d.do(ks[1], Vote(id, true)))
	r := must(t, d.do(ks[2], Vote(id, true)))
	g := d.m.Group()
	if r.Outcome != OutcomePassed || g.Epoch != 1 || g.N() != 5 || !g.IsMember(newcomer.Public()) || g.ID() == oldID {
		t.Fatalf("after add: %+v group %v", r, g)
	}
	// Requests signed for the old epoch are refused now.
	wantCode(t, d.raw(signed(t, ks[0], oldID, 100, Put("k", nil))), CodeWrongGroup)
	must(t, d.do(newcomer, Put("k", []byte("hello"))))

	// Remove ks[3]: its yes vote on the plain motion stops counting, and the
	// plain motion's quorum of 4 stays reachable among 4 members.
	rm := must(t, d.do(ks[0], RemoveMember(ks[3].Public(), 0, ""))).Motion
	for _, k := range ks[:4] {
		if r = must(t, d.do(k, Vote(rm, true))); r.Outcome == OutcomePassed {
			break
		}
	}
	g = d.m.Group()
	if g.Epoch != 2 || g.IsMember(ks[3].Public()) {
		t.Fatalf("after remove: %v", g)
	}
	wantCode(t, d.do(ks[3], Put("k", nil)), CodeNotMember)
	for _, k := range []int{0, 1, 2} {
		must(t, d.do(ks[k], Vote(plain, true)))
	}
	if mo, _ := d.m.Motion(plain); mo.Outcome != OutcomeOpen {
		t.Fatalf("plain motion %s with a removed member's vote counted", mo.Outcome)
	}
	if r = must(t, d.do(newcomer, Vote(plain, true))); r.Outcome != OutcomePassed {
		t.Fatalf("%+v", r)
	}
}

func TestMembershipShrinkFailsUnreachableMotions(t *testing.T) {
	ks := keys(t, 3)
	d := newDriver(t, group(t, ModeRaft, ks))
	all := must(t, d.do(ks[0], OpenMotion(d.name(), 3, 0, ""))).Motion
	rm := must(t, d.do(ks[0], RemoveMember(ks[2].Public(), 0, ""))).Motion
	must(t, d.do(ks[0], Vote(rm, true)))
	r := must(t, d.do(ks[1], Vote(rm, true)))
	if len(r.Closed) != 2 || r.Closed[1].Motion != all || r.Closed[1].Outcome != OutcomeFailed {
		t.Fatalf("closed %+v, want the removal then the 3-of-3 motion failed", r.Closed)
	}
}

func TestRemoveLastMemberRefused(t *testing.T) {
	ks := keys(t, 1)
	d := newDriver(t, group(t, ModeRaft, ks))
	wantCode(t, d.do(ks[0], RemoveMember(ks[0].Public(), 0, "")), CodeInvalid)
}

func TestStaleMembershipMotionFails(t *testing.T) {
	ks := keys(t, 4)
	d := newDriver(t, group(t, ModeRaft, ks[:3]))
	a := must(t, d.do(ks[0], AddMember(ks[3].Public(), 0, ""))).Motion
	b := must(t, d.do(ks[1], AddMember(ks[3].Public(), 0, ""))).Motion
	must(t, d.do(ks[0], Vote(a, true)))
	must(t, d.do(ks[1], Vote(a, true))) // passes: 4 members, quorum of b is now 3
	must(t, d.do(ks[0], Vote(b, true)))
	must(t, d.do(ks[1], Vote(b, true)))
	r := must(t, d.do(ks[2], Vote(b, true)))
	if r.Outcome != OutcomeFailed || d.m.Group().Epoch != 1 {
		t.Fatalf("second add of the same member: %+v epoch %d", r, d.m.Group().Epoch)
	}
}

func TestSnapshotRestore(t *testing.T) {
	ks := keys(t, 4)
	d := newDriver(t, group(t, ModeBFT, ks))
	must(t, d.do(ks[0], Put("b", []byte("2"))))
	must(t, d.do(ks[1], Put("a", []byte("1"))))
	id := must(t, d.do(ks[0], OpenMotion(d.name(), 2, 9000, "x"))).Motion
	must(t, d.do(ks[2], Vote(id, false)))
	must(t, d.do(ks[0], AddMember(key(t, 77).Public(), 0, "")))
	snap := d.m.Snapshot()
	r, err := Restore(snap)
	if err != nil {
		t.Fatal(err)
	}
	if r.Digest() != d.m.Digest() || !bytes.Equal(r.Snapshot(), snap) {
		t.Fatal("restore changed the state")
	}
	// Both continue identically, replays included.
	next := []Entry{
		{Time: 2000, Request: signed(t, ks[1], d.m.Group().ID(), 2, Vote(id, true))},
		{Time: 2001, Request: signed(t, ks[1], d.m.Group().ID(), 2, Vote(id, true))},
		{Time: 9500},
	}
	for i, e := range next {
		a, b := d.m.Apply(d.index+uint64(i)+1, e), r.Apply(d.index+uint64(i)+1, e)
		if a.Digest() != b.Digest() {
			t.Fatalf("entry %d: results differ after restore", i)
		}
	}
	if r.Digest() != d.m.Digest() {
		t.Fatal("digests differ after restore")
	}
}

func TestRestoreRejects(t *testing.T) {
	ks := keys(t, 3)
	d := newDriver(t, group(t, ModeRaft, ks))
	must(t, d.do(ks[0], Put("a", []byte("1"))))
	must(t, d.do(ks[0], Put("b", []byte("2"))))
	must(t, d.do(ks[0], OpenMotion(d.name(), 1, 0, "")))
	snap := d.m.Snapshot()
	if _, err := Restore(append(bytes.Clone(snap), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	for i := 0; i < len(snap); i++ {
		if _, err := Restore(snap[:i]); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
	// Every accepted mutation must still re-encode to itself (canonical).
	for i := range snap {
		c := bytes.Clone(snap)
		c[i] ^= 0x80
		if m, err := Restore(c); err == nil && !bytes.Equal(m.Snapshot(), c) {
			t.Fatalf("flip at %d: accepted a non-canonical snapshot", i)
		}
	}
}

func TestCheckProposedTime(t *testing.T) {
	const skew = 1000
	cases := []struct {
		proposed, local int64
		ok              bool
	}{
		{5000, 5000, true}, {5999, 5000, true}, {6000, 5000, true}, {6001, 5000, false},
		{1, 5000, true}, // behind is harmless: the agreed clock is a maximum
		{1 << 62, -(1 << 62), false},
	}
	for _, c := range cases {
		err := CheckProposedTime(c.proposed, c.local, skew)
		var te *TimeSkewError
		if c.ok != (err == nil) || (err != nil && !errors.As(err, &te)) {
			t.Errorf("CheckProposedTime(%d, %d) = %v", c.proposed, c.local, err)
		}
	}
}

// A membership motion passes with the group's quorum: the quorum in force
// when it is decided, not the smaller one of the epoch that opened it.
func TestMembershipMotionTakesTheCurrentQuorum(t *testing.T) {
	ks := keys(t, 6)
	d := newDriver(t, group(t, ModeRaft, ks[:3]))
	stale := must(t, d.do(ks[0], AddMember(ks[5].Public(), 0, "opened at n=3, quorum 2"))).Motion
	for _, k := range ks[3:5] {
		add := must(t, d.do(ks[0], AddMember(k.Public(), 0, ""))).Motion
		for _, v := range ks[:3] {
			if must(t, d.do(v, Vote(add, true))).Outcome == OutcomePassed {
				break
			}
		}
	}
	if g := d.m.Group(); g.N() != 5 || g.Quorum() != 3 {
		t.Fatalf("group %v quorum %d, want 5 members and quorum 3", g, g.Quorum())
	}
	if mo, _ := d.m.Motion(stale); mo.Quorum != 3 {
		t.Fatalf("open membership motion keeps quorum %d, want the group's 3", mo.Quorum)
	}
	must(t, d.do(ks[0], Vote(stale, true)))
	if r := must(t, d.do(ks[1], Vote(stale, true))); r.Outcome != OutcomeOpen || d.m.Group().N() != 5 {
		t.Fatalf("2 yes of 5 members decided a membership change: %+v, group %v", r, d.m.Group())
	}
	if r := must(t, d.do(ks[2], Vote(stale, true))); r.Outcome != OutcomePassed || d.m.Group().N() != 6 {
		t.Fatalf("3 yes of 5: %+v, group %v", r, d.m.Group())
	}
}

// Results are signed by every BFT member (the certificate covers the
// result's digest), so a reason must not depend on the Go release that built
// the member: %q escapes by the release's Unicode tables, which change. A
// reason quotes member-chosen text in ASCII only.
func TestReasonsQuoteInASCII(t *testing.T) {
	ks := keys(t, 2)
	d := newDriver(t, group(t, ModeBFT, ks))
	const key = "k\u00e9y\U0001FAE8\u2066" // a rune of Unicode 15 and an invisible isolate
	rs := []Result{d.do(ks[0], CAS(key, []byte("v"), 7)), d.do(ks[0], Delete(key))}

	var w writer
	w.raw([]byte(requestMagic))
	id := d.m.Group().ID()
	w.raw(id[:])
	w.raw(ks[1].Public().Bytes())
	w.u64(1)
	w.u8(uint8(OpMotionVote))
	w.str("vote\U0001FAE8")
	w.boolean(true)
	rs = append(rs, d.raw(append(w.b, make([]byte, 64)...)))
	for i, want := range []Code{CodeCASMismatch, CodeNotFound, CodeMalformed} {
		wantCode(t, rs[i], want)
		for _, c := range []byte(rs[i].Reason) {
			if c < 0x20 || c > 0x7e {
				t.Fatalf("reason %q holds byte %#x: it depends on the Go release's Unicode tables", rs[i].Reason, c)
			}
		}
	}
}

// Every state the group can reach is one Restore accepts (a Raft member
// restarts and catches up from snapshots): a motion that stays open while
// members come and go must not pile up the votes of members that left.
func TestOpenMotionAcrossMemberChurnRestores(t *testing.T) {
	ks := make([]identity.PrivateKey, MaxMembers+3)
	for i := range ks {
		ks[i] = key(t, byte(i+1))
	}
	d := newDriver(t, group(t, ModeRaft, ks[:2]))
	owner, voter := ks[0], ks[1]
	p := must(t, d.do(owner, OpenMotion(d.name(), 2, 0, "stays open"))).Motion
	must(t, d.do(voter, Vote(p, true)))
	pass := func(op Op) {
		t.Helper()
		id := must(t, d.do(owner, op)).Motion
		for _, k := range ks {
			if !d.m.Group().IsMember(k.Public()) {
				continue
			}
			if must(t, d.do(k, Vote(id, true))).Outcome != OutcomeOpen {
				return
			}
		}
		t.Fatalf("membership motion %s not decided", id)
	}
	for _, next := range ks[2:] {
		pass(AddMember(next.Public(), 0, ""))
		pass(RemoveMember(voter.Public(), 0, ""))
		voter = next
		must(t, d.do(voter, Vote(p, true)))
	}
	mo, _ := d.m.Motion(p)
	if mo.Outcome != OutcomeOpen || len(mo.Yes) > d.m.Group().N() {
		t.Fatalf("motion %s with %d yes votes in a group of %d", mo.Outcome, len(mo.Yes), d.m.Group().N())
	}
	r, err := Restore(d.m.Snapshot())
	if err != nil {
		t.Fatalf("restore of a reachable state: %v", err)
	}
	if r.Digest() != d.m.Digest() {
		t.Fatal("restored state differs")
	}
}
