package home

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/trust"
)

func seededDID(t *testing.T, b byte) string {
	t.Helper()
	k, err := identity.FromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k.Public().String()
}

// limitsHome returns a home with peers bob and carol.
func limitsHome(t *testing.T) (dir, bob, carol string) {
	t.Helper()
	dir = t.TempDir()
	if _, err := Init(dir, "alice", ""); err != nil {
		t.Fatal(err)
	}
	bob, carol = seededDID(t, 1), seededDID(t, 2)
	if err := AddPeer(dir, "bob", "127.0.0.1:7421", bob); err != nil {
		t.Fatal(err)
	}
	if err := AddPeer(dir, "carol", "127.0.0.1:7422", carol); err != nil {
		t.Fatal(err)
	}
	return dir, bob, carol
}

func rules(t *testing.T, dir string) []budget.Rule {
	t.Helper()
	c, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c.Budget.Rules
}

func ptr[T any](v T) *T { return &v }

func TestSetLimitAddReplace(t *testing.T) {
	dir, bob, _ := limitsHome(t)

	r, err := SetLimit(dir, "bob", "", budget.In, LimitChange{Rate: ptr(10.0), Burst: ptr(20)})
	if err != nil {
		t.Fatal(err)
	}
	want := budget.Rule{Peer: bob, Dir: budget.In, Limit: budget.Limit{Rate: 10, Burst: 20}}
	if r != want {
		t.Fatalf("SetLimit = %+v, want %+v", r, want)
	}
	if got := rules(t, dir); len(got) != 1 || got[0] != want {
		t.Fatalf("rules = %+v, want [%+v]", got, want)
	}

	// Only the fields given change; by did:key as well as by nickname.
	if _, err := SetLimit(dir, bob, "", budget.In, LimitChange{Concurrency: ptr(4)}); err != nil {
		t.Fatal(err)
	}
	want.Concurrency = 4
	if got := rules(t, dir); len(got) != 1 || got[0] != want {
		t.Fatalf("after replace rules = %+v, want [%+v]", got, want)
	}

	// Another direction, another capability and "*" are separate rules.
	if _, err := SetLimit(dir, "bob", "", budget.Out, LimitChange{Rate: ptr(1.0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := SetLimit(dir, "bob", "echo", budget.In, LimitChange{Cost: ptr(100.0), CostWindow: ptr(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := SetLimit(dir, "*", "", budget.Both, LimitChange{BytesIn: ptr(int64(1000))}); err != nil {
		t.Fatal(err)
	}
	if got := rules(t, dir); len(got) != 4 {
		t.Fatalf("rules = %+v, want 4", got)
	}
	if r, ok := mustConfig(t, dir).Budget.Rule("*", "", budget.Both); !ok || r.BytesIn != 1000 {
		t.Fatalf(`"*" rule = %+v, %v`, r, ok)
	}
}

func mustConfig(t *testing.T, dir string) *config.Config {
	t.Helper()
	c, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSetLimitGroup: group:NAME budgets a consensus group's proposals.
func TestSetLimitGroup(t *testing.T) {
	dir, bob, _ := limitsHome(t)
	r, err := SetLimit(dir, "bob", "group:reviews", budget.In, LimitChange{Rate: ptr(5.0)})
	if err != nil || r.Peer != bob || r.Capability != "group:reviews" {
		t.Fatalf("SetLimit group:reviews: %+v %v", r, err)
	}
	if got := rules(t, dir); len(got) != 1 || got[0].Capability != "group:reviews" || got[0].Rate != 5 {
		t.Fatalf("rules: %+v", got)
	}
}

func TestSetLimitZeroClearsDependents(t *testing.T) {
	dir, _, _ := limitsHome(t)
	if _, err := SetLimit(dir, "bob", "", budget.In, LimitChange{
		Rate: ptr(5.0), Burst: ptr(10), Cost: ptr(50.0), CostWindow: ptr(time.Hour),
		BytesIn: ptr(int64(100)), Window: ptr(time.Minute),
	}); err != nil {
		t.Fatal(err)
	}
	r, err := SetLimit(dir, "bob", "", budget.In, LimitChange{Rate: ptr(0.0), Cost: ptr(0.0), BytesIn: ptr(int64(0))})
	if err != nil {
		t.Fatalf("turning limits off: %v", err)
	}
	if !r.Limit.IsZero() {
		t.Fatalf("limit = %+v, want zero (burst, cost window and window cleared)", r.Limit)
	}
	// The rule stays: a zero rule overrides "*" and the default with "unlimited".
	if got := rules(t, dir); len(got) != 1 {
		t.Fatalf("rules = %+v, want the zero rule kept", got)
	}
}

func TestSetLimitErrors(t *testing.T) {
	dir, _, _ := limitsHome(t)
	if _, err := SetLimit(dir, "bob", "", budget.In, LimitChange{Rate: ptr(1.0)}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(dir, config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		peer    string
		cap     string
		dir     budget.Dir // zero: Both, a rule that does not exist yet
		ch      LimitChange
		bad     bool // ErrBadLimit
		unknown bool // *UnknownPeerError
	}{
		{name: "unknown nickname", peer: "dave", ch: LimitChange{Rate: ptr(1.0)}, unknown: true},
		{name: "did outside the book", peer: seededDID(t, 9), ch: LimitChange{Rate: ptr(1.0)}, unknown: true},
		{name: "empty peer", peer: "", ch: LimitChange{Rate: ptr(1.0)}, unknown: true},
		{name: "bad capability", peer: "bob", cap: "Echo!", ch: LimitChange{Rate: ptr(1.0)}, bad: true},
		{name: "reserved capability", peer: "bob", cap: "treaty.ping", ch: LimitChange{Rate: ptr(1.0)}, bad: true},
		{name: "group without a name", peer: "bob", cap: "group:", ch: LimitChange{Rate: ptr(1.0)}, bad: true},
		{name: "bad group name", peer: "bob", cap: "group:Board!", ch: LimitChange{Rate: ptr(1.0)}, bad: true},
		{name: "bad direction", peer: "bob", dir: budget.Dir(7), ch: LimitChange{Rate: ptr(1.0)}, bad: true},
		{name: "nothing to set", peer: "bob", bad: true},
		{name: "negative rate", peer: "bob", ch: LimitChange{Rate: ptr(-1.0)}, bad: true},
		{name: "rate too high", peer: "bob", ch: LimitChange{Rate: ptr(2e6)}, bad: true},
		{name: "burst without rate", peer: "bob", ch: LimitChange{Burst: ptr(3)}, bad: true},
		{name: "negative concurrency", peer: "bob", ch: LimitChange{Concurrency: ptr(-1)}, bad: true},
		{name: "window without bytes", peer: "bob", ch: LimitChange{Window: ptr(time.Minute)}, bad: true},
		{name: "window too short", peer: "bob", ch: LimitChange{BytesIn: ptr(int64(1)), Window: ptr(time.Millisecond)}, bad: true},
		{name: "cost window without cost", peer: "bob", ch: LimitChange{CostWindow: ptr(time.Hour)}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SetLimit(dir, tc.peer, tc.cap, tc.dir, tc.ch)
			if err == nil {
				t.Fatal("SetLimit succeeded")
			}
			var u *UnknownPeerError
			if got := errors.As(err, &u); got != tc.unknown {
				t.Errorf("UnknownPeerError = %v, want %v (%v)", got, tc.unknown, err)
			}
			if got := errors.Is(err, ErrBadLimit); got != tc.bad {
				t.Errorf("ErrBadLimit = %v, want %v (%v)", got, tc.bad, err)
			}
			after, _ := os.ReadFile(filepath.Join(dir, config.FileName))
			if !bytes.Equal(before, after) {
				t.Errorf("treaty.yaml changed by a refused edit")
			}
		})
	}
}

func TestRemoveLimit(t *testing.T) {
	dir, bob, _ := limitsHome(t)
	for _, d := range []budget.Dir{budget.In, budget.Out} {
		if _, err := SetLimit(dir, "bob", "", d, LimitChange{Rate: ptr(1.0)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := SetLimit(dir, "bob", "echo", budget.In, LimitChange{Rate: ptr(1.0)}); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveLimit(dir, "bob", "", budget.In)
	if err != nil || !removed {
		t.Fatalf("RemoveLimit = %v, %v", removed, err)
	}
	got := rules(t, dir)
	if len(got) != 2 {
		t.Fatalf("rules = %+v, want the out and echo rules left", got)
	}
	for _, r := range got {
		if r.Capability == "" && r.Dir == budget.In {
			t.Fatalf("the removed rule is still there: %+v", got)
		}
	}
	if removed, err := RemoveLimit(dir, "bob", "", budget.In); err != nil || removed {
		t.Fatalf("second RemoveLimit = %v, %v; want false, nil", removed, err)
	}
	if _, err := RemoveLimit(dir, "dave", "", budget.In); !errors.As(err, new(*UnknownPeerError)) {
		t.Fatalf("unknown peer: %v", err)
	}
	if _, err := RemoveLimit(dir, "bob", "BAD", budget.In); !errors.Is(err, ErrBadLimit) {
		t.Fatalf("bad capability: %v", err)
	}

	// A rule of a peer removed from the book can still be removed by its did:key.
	if err := RemovePeer(dir, "bob"); err != nil {
		t.Fatal(err)
	}
	if removed, err := RemoveLimit(dir, bob, "", budget.Out); err != nil || !removed {
		t.Fatalf("stale did: RemoveLimit = %v, %v", removed, err)
	}
	if _, err := RemoveLimit(dir, "did:key:zNotAKey", "", budget.Out); !errors.As(err, new(*UnknownPeerError)) {
		t.Fatalf("malformed did: %v", err)
	}
}

func TestLimitsNamesAndOrder(t *testing.T) {
	dir, bob, carol := limitsHome(t)
	for _, s := range []struct {
		peer, cap string
		d         budget.Dir
	}{{"carol", "", budget.In}, {"bob", "echo", budget.In}, {"*", "", budget.Both}, {"bob", "", budget.Out}} {
		if _, err := SetLimit(dir, s.peer, s.cap, s.d, LimitChange{Rate: ptr(1.0)}); err != nil {
			t.Fatal(err)
		}
	}
	def, got, err := Limits(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !def.IsZero() {
		t.Fatalf("default = %+v", def)
	}
	type row struct{ name, peer, cap string }
	want := []row{{"", "*", ""}, {"bob", bob, ""}, {"bob", bob, "echo"}, {"carol", carol, ""}}
	if bob > carol {
		want[1], want[2], want[3] = want[3], want[1], want[2]
	}
	if len(got) != len(want) {
		t.Fatalf("Limits = %+v", got)
	}
	for i, w := range want {
		if g := (row{got[i].Name, got[i].Peer, got[i].Capability}); g != w {
			t.Errorf("Limits[%d] = %+v, want %+v", i, g, w)
		}
	}
}

func TestTrustOverrideJSON(t *testing.T) {
	peer := seededDID(t, 1)
	b, err := json.Marshal(TrustOverride{Peer: peer, Floor: ptr("trusted"), Lift: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"peer":"` + peer + `","floor":"trusted","lift":true}`; string(b) != want {
		t.Fatalf("JSON = %s, want %s", b, want)
	}
	var o TrustOverride
	if err := json.Unmarshal([]byte(`{"peer":"`+peer+`","ceiling":"none","lift":false}`), &o); err != nil {
		t.Fatal(err)
	}
	if o.Floor != nil || o.Ceiling == nil || *o.Ceiling != ClearBound {
		t.Fatalf("decoded %+v", o)
	}
}

func TestTrustOverrideValidate(t *testing.T) {
	peer := seededDID(t, 1)
	for _, tc := range []struct {
		name string
		o    TrustOverride
		ok   bool
	}{
		{"floor", TrustOverride{Peer: peer, Floor: ptr("trusted")}, true},
		{"case-insensitive", TrustOverride{Peer: peer, Ceiling: ptr("HIGH")}, true},
		{"clear", TrustOverride{Peer: peer, Floor: ptr("none"), Ceiling: ptr("none")}, true},
		{"lift only", TrustOverride{Peer: peer, Lift: true}, true},
		{"in order", TrustOverride{Peer: peer, Floor: ptr("trusted"), Ceiling: ptr("trusted")}, true},
		{"nothing", TrustOverride{Peer: peer}, false},
		{"bad level", TrustOverride{Peer: peer, Floor: ptr("great")}, false},
		{"empty clears", TrustOverride{Peer: peer, Ceiling: ptr("")}, true},
		{"unknown level", TrustOverride{Peer: peer, Ceiling: ptr("max")}, false},
		{"floor above ceiling", TrustOverride{Peer: peer, Floor: ptr("high"), Ceiling: ptr("untrusted")}, false},
		{"nickname", TrustOverride{Peer: "bob", Lift: true}, false},
		{"empty peer", TrustOverride{Lift: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadOverride) {
				t.Fatalf("error %v does not wrap ErrBadOverride", err)
			}
		})
	}
}

func readTrust(t *testing.T, dir, peer string) trust.Snapshot {
	t.Helper()
	snaps, err := trust.ReadFile(trust.Config{}, filepath.Join(dir, homedir.TrustFile), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if s.Peer == peer {
			return s
		}
	}
	t.Fatalf("no trust state for %s", peer)
	return trust.Snapshot{}
}

func TestSetTrust(t *testing.T) {
	dir, bob, _ := limitsHome(t)
	now := time.Now()
	lv := func(l trust.Level) *trust.Level { return &l }
	eq := func(a, b *trust.Level) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

	steps := []struct {
		name             string
		o                TrustOverride
		floor, ceiling   *trust.Level
		level            trust.Level
		wantFloorCeiling bool // expect trust.ErrFloorAboveCeiling
	}{
		{name: "ceiling", o: TrustOverride{Ceiling: ptr("provisional")}, ceiling: lv(trust.LevelProvisional), level: trust.LevelProvisional},
		// Raising both above the old ceiling must set the ceiling first.
		{name: "raise both", o: TrustOverride{Floor: ptr("high"), Ceiling: ptr("high")}, floor: lv(trust.LevelHigh), ceiling: lv(trust.LevelHigh), level: trust.LevelHigh},
		// Lowering both below the old floor must set the floor first.
		{name: "lower both", o: TrustOverride{Floor: ptr("untrusted"), Ceiling: ptr("untrusted")}, floor: lv(trust.LevelUntrusted), ceiling: lv(trust.LevelUntrusted), level: trust.LevelUntrusted},
		{name: "floor above existing ceiling", o: TrustOverride{Floor: ptr("trusted")}, floor: lv(trust.LevelUntrusted), ceiling: lv(trust.LevelUntrusted), level: trust.LevelUntrusted, wantFloorCeiling: true},
		{name: "clear", o: TrustOverride{Floor: ptr("none"), Ceiling: ptr("")}, level: trust.LevelProvisional},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.o.Peer = bob
			err := SetTrust(dir, s.o, now)
			if got := errors.Is(err, trust.ErrFloorAboveCeiling); got != s.wantFloorCeiling {
				t.Fatalf("SetTrust = %v", err)
			}
			st := readTrust(t, dir, bob)
			if !eq(st.Floor, s.floor) || !eq(st.Ceiling, s.ceiling) || st.Level != s.level {
				t.Fatalf("state floor %v ceiling %v level %v; want %v %v %v",
					levelString(st.Floor), levelString(st.Ceiling), st.Level, levelString(s.floor), levelString(s.ceiling), s.level)
			}
		})
	}
}

func levelString(l *trust.Level) string {
	if l == nil {
		return "-"
	}
	return l.String()
}

func TestSetTrustLift(t *testing.T) {
	dir, bob, _ := limitsHome(t)
	b, err := trust.Open(trust.Config{}, filepath.Join(dir, homedir.TrustFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Observe(bob, trust.Evidence{Kind: trust.KindBadSignature, Detail: "test"}); err != nil {
		t.Fatal(err)
	}

	// While a Book (a running node) holds the file, SetTrust refuses and changes nothing.
	if err := SetTrust(dir, TrustOverride{Peer: bob, Lift: true}, time.Now()); !errors.Is(err, trust.ErrLocked) {
		t.Fatalf("SetTrust with the book held = %v, want ErrLocked", err)
	}
	if !readTrust(t, dir, bob).Quarantined {
		t.Fatal("not quarantined after a bad signature")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	if err := SetTrust(dir, TrustOverride{Peer: bob, Lift: true}, time.Now()); err != nil {
		t.Fatal(err)
	}
	st := readTrust(t, dir, bob)
	if st.Quarantined || st.Level == trust.LevelQuarantined {
		t.Fatalf("after lift: quarantined %v level %v", st.Quarantined, st.Level)
	}
	// The book is released again: a node could open it now.
	b, err = trust.Open(trust.Config{}, filepath.Join(dir, homedir.TrustFile))
	if err != nil {
		t.Fatalf("book still locked after SetTrust: %v", err)
	}
	b.Close()
}
