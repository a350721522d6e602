package policy

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	cedar "github.com/cedar-policy/cedar-go"

	"github.com/treaty-dev/treaty/internal/identity"
)

// These tests attack the decision memo: a cached Allow must never answer a
// request that differs from the one it was decided for in anything Cedar
// sees. The reference is the evaluation as it was before the memo, built
// from the raw arguments, not from the memo's key.

// freshAuthorize is Authorize without the memo, written out from the raw
// arguments.
func freshAuthorize(ps *cedar.PolicySet, peer identity.PublicKey, action Action, capability string, c Context) Decision {
	trust, err := cedar.NewDecimalFromFloat(clamp01(c.Trust))
	if err != nil {
		return Decision{Errors: []string{err.Error()}}
	}
	req := cedar.Request{
		Principal: cedar.NewEntityUID("Peer", cedar.String(peer.String())),
		Action:    cedar.NewEntityUID("Action", cedar.String(action)),
		Resource:  cedar.NewEntityUID("Capability", cedar.String(capability)),
		Context: cedar.NewRecord(cedar.RecordMap{
			"trust": trust,
			"level": cedar.String(c.Level),
			"depth": cedar.Long(c.Depth),
		}),
	}
	dec, diag := ps.IsAuthorized(cedar.EntityMap{}, req)
	d := Decision{Allowed: dec == cedar.Allow}
	for _, r := range diag.Reasons {
		d.Reasons = append(d.Reasons, string(r.PolicyID))
	}
	for _, er := range diag.Errors {
		d.Errors = append(d.Errors, er.String())
		if ps.Get(er.PolicyID).Effect() == cedar.Forbid {
			d.Allowed = false
		}
	}
	return d
}

// sameDecision compares decisions, with reasons and errors as sets (Cedar
// does not promise their order).
func sameDecision(a, b Decision) bool {
	sa, sb := slices.Sorted(slices.Values(a.Reasons)), slices.Sorted(slices.Values(b.Reasons))
	ea, eb := slices.Sorted(slices.Values(a.Errors)), slices.Sorted(slices.Values(b.Errors))
	return a.Allowed == b.Allowed && slices.Equal(sa, sb) && slices.Equal(ea, eb)
}

// reviewPolicy allows exactly one value of each input at a time, so a memo
// key that drops or coarsens any input lets an Allow through where the
// reference denies. It also has a policy that errors (a missing attribute)
// on some requests, so Errors are exercised.
func reviewPolicy(t testing.TB, alice identity.PublicKey) (*Engine, *cedar.PolicySet) {
	t.Helper()
	src := `@id("exact")
permit (principal == Peer::"` + alice.String() + `", action == Action::"call", resource == Capability::"search")
when { context.trust.greaterThanOrEqual(decimal("0.1234")) && context.trust.lessThan(decimal("0.1235")) && context.level == "medium" && context.depth == 1 };
@id("top")
permit (principal == Peer::"` + alice.String() + `", action == Action::"list", resource == Capability::"search")
when { context.trust == decimal("1.0") && context.level == "" && context.depth == 0 };
@id("zero")
permit (principal, action == Action::"call", resource == Capability::"zero")
when { context.trust == decimal("0.0") && context.depth == -1 };
@id("errs")
permit (principal, action, resource == Capability::"errs")
when { context.nosuch == 1 };
@id("deep")
forbid (principal, action, resource)
when { context.depth > 1000 };`
	e, err := Parse("review.cedar", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := cedar.NewPolicySetFromBytes("review.cedar", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return e, ps
}

var (
	reviewTrusts = []float64{math.NaN(), math.Copysign(0, -1), 0, -1, math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64,
		0.00005, 0.0001, 0.12339999, 0.1234, 0.12345, 0.12349999, 0.1235, 0.5, 0.99999, 0.99999999, 1, math.Nextafter(1, 2), 2, math.MaxFloat64}
	reviewLevels = []string{"", "medium", "Medium", "medium\x00", "medium ", "médium", "low", "high"}
	reviewDepths = []int{math.MinInt, -1, 0, 1, 2, 1000, 1001, math.MaxInt}
	reviewCaps   = []string{"search", "Search", "search ", "zero", "errs", "other", ""}
	reviewActs   = []Action{ActionCall, ActionList, "CALL", ""}
)

// Every request of the input grid, asked in a random order many times over
// (so most answers come from the memo, each after other requests filled
// it), gets the reference's decision.
func TestMemoReviewGridMatchesFresh(t *testing.T) {
	t.Parallel()
	alice, bob := key(t, 1), key(t, 2)
	e, ps := reviewPolicy(t, alice)
	type req struct {
		peer   identity.PublicKey
		action Action
		cp     string
		c      Context
	}
	var reqs []req
	for _, p := range []identity.PublicKey{alice, bob} {
		for _, a := range reviewActs {
			for _, cp := range reviewCaps {
				for _, tr := range reviewTrusts {
					for _, lv := range reviewLevels {
						for _, d := range reviewDepths {
							reqs = append(reqs, req{p, a, cp, Context{Trust: tr, Level: lv, Depth: d}})
						}
					}
				}
			}
		}
	}
	// The grid is larger than the memo, so it is also cleared on the way.
	if len(reqs) <= maxMemo {
		t.Fatalf("grid of %d requests does not overflow the memo (%d)", len(reqs), maxMemo)
	}
	want := make([]Decision, len(reqs))
	allowed := 0
	for i, r := range reqs {
		want[i] = freshAuthorize(ps, r.peer, r.action, r.cp, r.c)
		if want[i].Allowed {
			allowed++
		}
	}
	if allowed == 0 {
		t.Fatal("the reference allows nothing: the test proves nothing")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	// A small window of the grid at a time, so requests repeat while their
	// decision is still remembered, next to requests differing in one input.
	for range 40 {
		lo := rng.IntN(len(reqs) - 512)
		for range 2000 {
			i := lo + rng.IntN(512)
			r := reqs[i]
			if got := e.Authorize(r.peer, r.action, r.cp, r.c); !sameDecision(got, want[i]) {
				t.Fatalf("%v %q %q %+v: memo gives %+v, fresh evaluation %+v", r.peer, r.action, r.cp, r.c, got, want[i])
			}
		}
	}
}

// Right after an Allow is remembered, every request that differs from it
// in exactly one input (peer, action, capability, trust, level, depth) is
// decided as the reference decides it, and the other way round: a
// remembered Deny of a neighbour does not hide the Allow.
func TestMemoReviewOneInputAwayFromAnAllow(t *testing.T) {
	t.Parallel()
	alice, bob := key(t, 1), key(t, 2)
	type req struct {
		peer   identity.PublicKey
		action Action
		cp     string
		c      Context
	}
	allows := []req{
		{alice, ActionCall, "search", Context{Trust: 0.1234, Level: "medium", Depth: 1}},
		{alice, ActionList, "search", Context{Trust: 1, Level: "", Depth: 0}},
		{bob, ActionCall, "zero", Context{Trust: 0, Level: "low", Depth: -1}},
	}
	neighbours := func(a req) []req {
		var out []req
		for _, p := range []identity.PublicKey{alice, bob, key(t, 3)} {
			out = append(out, req{p, a.action, a.cp, a.c})
		}
		for _, x := range reviewActs {
			out = append(out, req{a.peer, x, a.cp, a.c})
		}
		for _, x := range reviewCaps {
			out = append(out, req{a.peer, a.action, x, a.c})
		}
		for _, x := range reviewTrusts {
			out = append(out, req{a.peer, a.action, a.cp, Context{Trust: x, Level: a.c.Level, Depth: a.c.Depth}})
		}
		for _, x := range reviewLevels {
			out = append(out, req{a.peer, a.action, a.cp, Context{Trust: a.c.Trust, Level: x, Depth: a.c.Depth}})
		}
		for _, x := range reviewDepths {
			out = append(out, req{a.peer, a.action, a.cp, Context{Trust: a.c.Trust, Level: a.c.Level, Depth: x}})
		}
		return out
	}
	check := func(e *Engine, ps *cedar.PolicySet, r req) {
		t.Helper()
		if got, want := e.Authorize(r.peer, r.action, r.cp, r.c), freshAuthorize(ps, r.peer, r.action, r.cp, r.c); !sameDecision(got, want) {
			t.Fatalf("%v %q %q %+v: memo gives %+v, fresh evaluation %+v", r.peer, r.action, r.cp, r.c, got, want)
		}
	}
	denied := 0
	for _, a := range allows {
		for _, n := range neighbours(a) {
			// The Allow first, then its neighbour; then, on a new Engine,
			// the neighbour first, then the Allow.
			e, ps := reviewPolicy(t, alice)
			if !freshAuthorize(ps, a.peer, a.action, a.cp, a.c).Allowed {
				t.Fatalf("%+v is not allowed by the reference: the test proves nothing", a)
			}
			if !freshAuthorize(ps, n.peer, n.action, n.cp, n.c).Allowed {
				denied++
			}
			check(e, ps, a)
			check(e, ps, n)
			check(e, ps, a)
			e, ps = reviewPolicy(t, alice)
			check(e, ps, n)
			check(e, ps, a)
			check(e, ps, n)
		}
	}
	if denied == 0 {
		t.Fatal("no neighbour of an Allow is denied: the test proves nothing")
	}
}

// Trusts that differ below Cedar's four places share a decision; trusts
// that differ at the fourth place, or that are NaN, -0 or out of range,
// are each decided as Cedar sees them after clamping.
func TestMemoReviewTrustEdges(t *testing.T) {
	t.Parallel()
	alice := key(t, 1)
	e, ps := reviewPolicy(t, alice)
	for _, order := range [][]float64{
		{0.1234, 0.1233, 0.12339999, 0.1235, 0.12349999, 0.1234},
		{0.12349999, 0.1235, 0.1234, 0.12339},
		{math.NaN(), 0, math.Copysign(0, -1), -5, 0.00001, 0.0001},
		{1, math.Inf(1), 2, 0.99999, math.Nextafter(1, 0), 1},
	} {
		for _, tr := range order {
			for _, cp := range []string{"search", "zero"} {
				for _, a := range []Action{ActionCall, ActionList} {
					for _, c := range []Context{{Trust: tr, Level: "medium", Depth: 1}, {Trust: tr, Depth: -1}, {Trust: tr}} {
						got := e.Authorize(alice, a, cp, c)
						if want := freshAuthorize(ps, alice, a, cp, c); !sameDecision(got, want) {
							t.Fatalf("trust %v %s %s %+v: memo gives %+v, fresh evaluation %+v", tr, a, cp, c, got, want)
						}
					}
				}
			}
		}
	}
}

// A caller may change anything in a decision it was given, from a fresh
// evaluation or from the memo (Reasons and Errors, including appending to
// them), without changing what the next caller is given.
func TestMemoReviewCallersOwnTheirCopies(t *testing.T) {
	t.Parallel()
	alice := key(t, 1)
	e, ps := reviewPolicy(t, alice)
	c := Context{Trust: 0.1234, Level: "medium", Depth: 1}
	for _, q := range []struct {
		cp     string
		action Action
	}{{"search", ActionCall}, {"errs", ActionCall}} {
		want := freshAuthorize(ps, alice, q.action, q.cp, c)
		if len(want.Reasons)+len(want.Errors) == 0 {
			t.Fatalf("%s: no reasons or errors to change: the test proves nothing", q.cp)
		}
		for range 4 {
			d := e.Authorize(alice, q.action, q.cp, c)
			if !sameDecision(d, want) {
				t.Fatalf("%s: got %+v after a caller changed an earlier one, want %+v", q.cp, d, want)
			}
			for i := range d.Reasons {
				d.Reasons[i] = "changed"
			}
			for i := range d.Errors {
				d.Errors[i] = "changed"
			}
			d.Reasons = append(d.Reasons[:0:len(d.Reasons)], "appended")
			d.Errors = append(d.Errors, "appended")
			d.Allowed = !d.Allowed
		}
	}
}

// Concurrent callers, over more distinct requests than the memo holds (so
// it is cleared while others read it), each get the reference's decision.
// Run with -race.
func TestMemoReviewConcurrent(t *testing.T) {
	t.Parallel()
	alice, bob := key(t, 1), key(t, 2)
	e, ps := reviewPolicy(t, alice)
	var wg sync.WaitGroup
	var bad atomic.Value
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 3000 {
				peer := alice
				if rng.IntN(4) == 0 {
					peer = bob
				}
				a := reviewActs[rng.IntN(len(reviewActs))]
				cp := reviewCaps[rng.IntN(len(reviewCaps))]
				if rng.IntN(3) == 0 {
					cp = fmt.Sprintf("c%d-%d", g, i) // distinct names fill the memo
				}
				c := Context{Trust: reviewTrusts[rng.IntN(len(reviewTrusts))], Level: reviewLevels[rng.IntN(len(reviewLevels))], Depth: reviewDepths[rng.IntN(len(reviewDepths))]}
				if rng.IntN(2) == 0 {
					c = Context{Trust: 0.1234, Level: "medium", Depth: 1} // the one allowed call, often
				}
				got := e.Authorize(peer, a, cp, c)
				if want := freshAuthorize(ps, peer, a, cp, c); !sameDecision(got, want) {
					bad.CompareAndSwap(nil, fmt.Sprintf("%v %s %s %+v: memo gives %+v, fresh %+v", peer, a, cp, c, got, want))
					return
				}
				if len(got.Reasons) > 0 {
					got.Reasons[0] = "changed" // a racing writer, if the memo shared its slices
				}
			}
		}()
	}
	wg.Wait()
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
	e.mu.RLock()
	n := len(e.memo)
	e.mu.RUnlock()
	if n > maxMemo {
		t.Fatalf("memo holds %d decisions, bound %d", n, maxMemo)
	}
}

// A reload racing with calls: every decision comes from the Engine the
// caller loaded, so a revoking Engine never allows the call, whatever the
// granting Engines before it remembered.
func TestMemoReviewReloadRace(t *testing.T) {
	t.Parallel()
	alice := key(t, 1)
	grant, _, err := AddGrant(nil, alice, "review")
	if err != nil {
		t.Fatal(err)
	}
	// Engines built before the race, alternately granting and revoking; the
	// map is only read while the callers run.
	engines := make([]*Engine, 200)
	grants := map[*Engine]bool{}
	for i := range engines {
		src := grant
		if i%2 == 1 {
			src = nil // revoked: deny all
		}
		if engines[i], err = Parse(FileName, src); err != nil {
			t.Fatal(err)
		}
		grants[engines[i]] = i%2 == 0
	}
	var cur atomic.Pointer[Engine]
	cur.Store(engines[0])
	c := Context{Trust: 0.5, Level: "medium"}
	var wg sync.WaitGroup
	var bad atomic.Value
	var calls atomic.Int64
	done := make(chan struct{})
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20000 {
				select {
				case <-done:
					return
				default:
				}
				eng := cur.Load()
				if d := eng.Authorize(alice, ActionCall, "review", c); d.Allowed != grants[eng] {
					bad.CompareAndSwap(nil, fmt.Sprintf("engine granting=%v gave Allowed=%v", grants[eng], d.Allowed))
					return
				}
				calls.Add(1)
			}
		}()
	}
	for i, eng := range engines[1:] {
		// Each reload waits for some calls on the Engine before it, so
		// memos are warm when they are replaced (bounded: the callers stop
		// after 20000 calls each).
		for want := int64(i * 50); calls.Load() < want && bad.Load() == nil; {
			if calls.Load() >= 3*20000 {
				break
			}
			runtime.Gosched()
		}
		cur.Store(eng)
	}
	close(done)
	wg.Wait()
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
}

// FuzzMemoMatchesFresh asks one Engine, whose memo lives across inputs,
// for two requests in a row and compares both answers with a fresh
// evaluation: the second may be answered from what the first (or any
// earlier input) left in the memo.
func FuzzMemoMatchesFresh(f *testing.F) {
	peers := []identity.PublicKey{seedKey(f, 1), seedKey(f, 2), seedKey(f, 3)}
	e, ps := reviewPolicy(f, peers[0])
	f.Add(uint8(0), uint8(0), "search", 0.1234, "medium", 1, uint8(0), uint8(0), "search", 0.12345, "medium", 1)
	f.Add(uint8(0), uint8(0), "search", 0.1234, "medium", 1, uint8(1), uint8(0), "search", 0.1234, "medium", 1)
	f.Add(uint8(0), uint8(0), "search", 0.1234, "medium", 1, uint8(0), uint8(1), "search", 0.1234, "medium", 1)
	f.Add(uint8(0), uint8(0), "search", 0.1234, "medium", 1, uint8(0), uint8(0), "search", 0.1234, "medium", 2)
	f.Add(uint8(0), uint8(0), "search", 0.1234, "medium", 1, uint8(0), uint8(0), "search", 0.1234, "Medium", 1)
	f.Add(uint8(0), uint8(0), "search", 0.1234, "medium", 1, uint8(0), uint8(0), "search", 0.1233, "medium", 1)
	f.Add(uint8(1), uint8(0), "zero", math.NaN(), "", -1, uint8(1), uint8(0), "zero", math.Copysign(0, -1), "", -1)
	f.Add(uint8(0), uint8(1), "search", math.Inf(1), "", 0, uint8(0), uint8(1), "search", 1.0, "", 0)
	f.Add(uint8(2), uint8(2), "errs", 0.5, "x", 1001, uint8(2), uint8(2), "errs", 0.5, "x", 1000)
	actions := []Action{ActionCall, ActionList, "CALL", ""}
	f.Fuzz(func(t *testing.T, p1, a1 uint8, c1 string, t1 float64, l1 string, d1 int, p2, a2 uint8, c2 string, t2 float64, l2 string, d2 int) {
		for _, r := range []struct {
			p, a uint8
			c    string
			tr   float64
			l    string
			d    int
		}{{p1, a1, c1, t1, l1, d1}, {p2, a2, c2, t2, l2, d2}} {
			peer, act := peers[int(r.p)%len(peers)], actions[int(r.a)%len(actions)]
			ctx := Context{Trust: r.tr, Level: r.l, Depth: r.d}
			got := e.Authorize(peer, act, r.c, ctx)
			if want := freshAuthorize(ps, peer, act, r.c, ctx); !sameDecision(got, want) {
				t.Fatalf("%v %q %q %+v: memo gives %+v, fresh evaluation %+v", peer, act, r.c, ctx, got, want)
			}
		}
	})
}

// seedKey is key for any test or fuzz target.
func seedKey(tb testing.TB, b byte) identity.PublicKey {
	tb.Helper()
	k, err := identity.FromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return k.Public()
}

// Every field of Context is part of the memo's key: a field added to
// Context (and so, presumably, to what Cedar sees) but not to the key
// would let one context's decision answer another's. Each field, set on
// its own, must change the key.
func TestMemoReviewKeyCoversEveryContextField(t *testing.T) {
	t.Parallel()
	p := seedKey(t, 1)
	base, err := requestOf(p, ActionCall, "c", Context{})
	if err != nil {
		t.Fatal(err)
	}
	ct := reflect.TypeFor[Context]()
	for i := range ct.NumField() {
		var c Context
		f := reflect.ValueOf(&c).Elem().Field(i)
		switch f.Kind() {
		case reflect.Float64:
			f.SetFloat(0.5)
		case reflect.String:
			f.SetString("x")
		case reflect.Int, reflect.Int64:
			f.SetInt(1)
		case reflect.Bool:
			f.SetBool(true)
		default:
			t.Fatalf("Context.%s is a %s: extend this test and the memo key for it", ct.Field(i).Name, f.Kind())
		}
		k, err := requestOf(p, ActionCall, "c", c)
		if err != nil {
			t.Fatal(err)
		}
		if k == base {
			t.Errorf("Context.%s does not change the memo key: decisions for different contexts would be shared", ct.Field(i).Name)
		}
	}
}
