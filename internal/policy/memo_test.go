package policy

import (
	"fmt"
	"slices"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

// A remembered decision is the decision Cedar gives: for every request of a
// policy that tests trust, level and depth, asked twice (the second answer
// from the memo) and compared with a fresh evaluation.
func TestMemoMatchesEvaluation(t *testing.T) {
	t.Parallel()
	alice, bob := key(t, 1), key(t, 2)
	src := `@id("trusted")
permit (principal, action == Action::"call", resource == Capability::"search")
when { context.trust.greaterThanOrEqual(decimal("0.8")) && context.depth < 2 && context.level != "low" };
@id("list")
permit (principal == Peer::"` + alice.String() + `", action == Action::"list", resource);
@id("no-bob")
forbid (principal == Peer::"` + bob.String() + `", action, resource == Capability::"search")
when { context.trust.lessThan(decimal("0.95")) };`
	e, err := Parse("t.cedar", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, peer := range []struct {
		name string
		k    identity.PublicKey
	}{{"alice", alice}, {"bob", bob}} {
		for _, a := range []Action{ActionCall, ActionList} {
			for _, c := range []string{"search", "other"} {
				for _, tr := range []float64{0, 0.79999, 0.8, 0.80001, 0.9499, 0.95, 1, 1.5} {
					for _, lv := range []string{"low", "medium"} {
						for _, depth := range []int{0, 1, 2} {
							pk := peer.k
							ctx := Context{Trust: tr, Level: lv, Depth: depth}
							first := e.Authorize(pk, a, c, ctx)
							second := e.Authorize(pk, a, c, ctx)
							key, _ := requestOf(pk, a, c, ctx)
							want := e.evaluate(key)
							name := fmt.Sprintf("%s %s %s trust=%v level=%s depth=%d", peer.name, a, c, tr, lv, depth)
							for _, got := range []Decision{first, second} {
								if got.Allowed != want.Allowed || !slices.Equal(got.Reasons, want.Reasons) || !slices.Equal(got.Errors, want.Errors) {
									t.Fatalf("%s: got %+v, want %+v", name, got, want)
								}
							}
							if want.Allowed {
								n++
							}
						}
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no request was allowed: the test proves nothing")
	}
}

// A caller that changes a decision it was given does not change the next
// caller's.
func TestMemoHandsOutCopies(t *testing.T) {
	t.Parallel()
	alice := key(t, 1)
	_, e := grantedReview(t, alice)
	for range 3 {
		d := e.Authorize(alice, ActionCall, "review", Context{Trust: 1})
		if !d.Allowed || len(d.Reasons) != 1 || d.Reasons[0] == "changed" {
			t.Fatalf("decision = %+v", d)
		}
		d.Reasons[0] = "changed"
	}
}

// A reloaded policy decides afresh: nothing the old Engine remembered
// survives a revoke.
func TestReloadForgets(t *testing.T) {
	t.Parallel()
	alice := key(t, 1)
	src, e := grantedReview(t, alice)
	var err error
	ctx := Context{Trust: 0.5, Level: "medium"}
	if !e.Authorize(alice, ActionCall, "review", ctx).Allowed {
		t.Fatal("granted call refused")
	}
	src, _, err = RemoveGrant(src, alice, "review")
	if err != nil {
		t.Fatal(err)
	}
	if e, err = Parse(FileName, src); err != nil {
		t.Fatal(err)
	}
	if e.Authorize(alice, ActionCall, "review", ctx).Allowed {
		t.Fatal("revoked call allowed after reload")
	}
}

// The memo stays bounded however many names a peer asks for.
func TestMemoBounded(t *testing.T) {
	t.Parallel()
	e, err := Parse("t.cedar", []byte(`permit (principal, action, resource == Capability::"c7");`))
	if err != nil {
		t.Fatal(err)
	}
	p := key(t, 1)
	for i := range 3 * maxMemo {
		c := fmt.Sprintf("c%d", i)
		if got := e.Authorize(p, ActionCall, c, Context{}).Allowed; got != (c == "c7") {
			t.Fatalf("%s: allowed = %v", c, got)
		}
		if n := len(e.memo); n > maxMemo {
			t.Fatalf("memo holds %d decisions, bound %d", n, maxMemo)
		}
	}
	if !e.Authorize(p, ActionCall, "c7", Context{}).Allowed {
		t.Fatal("c7 refused after the memo was cleared")
	}
}

// grantedReview returns a policy granting peer "review", and its Engine.
func grantedReview(t *testing.T, peer identity.PublicKey) ([]byte, *Engine) {
	t.Helper()
	src, _, err := AddGrant(nil, peer, "review")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Parse(FileName, src)
	if err != nil {
		t.Fatal(err)
	}
	return src, e
}
