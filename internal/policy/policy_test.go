package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

func key(t *testing.T, b byte) identity.PublicKey {
	t.Helper()
	k, err := identity.FromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func TestDefaultDeny(t *testing.T) {
	t.Parallel()
	e, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := key(t, 1)
	for _, a := range []Action{ActionCall, ActionList} {
		if d := e.Authorize(p, a, "review", Context{Trust: 1}); d.Allowed {
			t.Fatalf("%s allowed with no policy", a)
		}
	}
	if v := e.Visible(p, []string{"review", "search"}, Context{}); len(v) != 0 {
		t.Fatalf("Visible = %v, want none", v)
	}
}

func TestGrantRevoke(t *testing.T) {
	t.Parallel()
	alice, bob := key(t, 1), key(t, 2)
	src, changed, err := AddGrant(nil, alice, "review")
	if err != nil || !changed {
		t.Fatalf("AddGrant = %v, %v", changed, err)
	}
	if _, changed, _ := AddGrant(src, alice, "review"); changed {
		t.Fatal("second AddGrant changed the policy")
	}
	e, err := Parse(FileName, src)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		peer   identity.PublicKey
		action Action
		cap    string
		want   bool
	}{
		{"granted call", alice, ActionCall, "review", true},
		{"granted list", alice, ActionList, "review", true},
		{"other capability", alice, ActionCall, "search", false},
		{"other peer", bob, ActionCall, "review", false},
		{"homoglyph capability", alice, ActionCall, "revіew", false}, // Cyrillic і
		{"case differs", alice, ActionCall, "Review", false},
		{"unknown action", alice, Action("delete"), "review", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.Authorize(tc.peer, tc.action, tc.cap, Context{}).Allowed; got != tc.want {
				t.Fatalf("Authorize = %v, want %v", got, tc.want)
			}
		})
	}
	src, changed, err = RemoveGrant(src, alice, "review")
	if err != nil || !changed {
		t.Fatalf("RemoveGrant = %v, %v", changed, err)
	}
	e, _ = Parse(FileName, src)
	if e.Authorize(alice, ActionCall, "review", Context{}).Allowed {
		t.Fatal("call allowed after RemoveGrant")
	}
}

func TestRevokeKeepsHandWrittenPolicies(t *testing.T) {
	t.Parallel()
	alice := key(t, 1)
	hand := "// hand-written\npermit (principal, action == Action::\"list\", resource == Capability::\"public\");"
	src, _, err := AddGrant([]byte(hand), alice, "review")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := RemoveGrant(src, alice, "review")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != hand+"\n" {
		t.Fatalf("policy.cedar after grant+revoke:\n%s\nwant:\n%s", b, hand)
	}
}

func TestTrustCondition(t *testing.T) {
	t.Parallel()
	src := `permit (principal, action == Action::"call", resource == Capability::"search")
when { context.trust.greaterThanOrEqual(decimal("0.8")) && context.depth < 2 };`
	e, err := Parse("t.cedar", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p := key(t, 3)
	for _, tc := range []struct {
		trust float64
		depth int
		want  bool
	}{{0.9, 0, true}, {0.8, 1, true}, {0.79, 0, false}, {0.95, 2, false}, {2, 0, true}, {-1, 0, false}} {
		if got := e.Authorize(p, ActionCall, "search", Context{Trust: tc.trust, Depth: tc.depth}).Allowed; got != tc.want {
			t.Errorf("trust %v depth %d: allowed = %v, want %v", tc.trust, tc.depth, got, tc.want)
		}
	}
}

func TestForbidOverridesPermit(t *testing.T) {
	t.Parallel()
	p := key(t, 4)
	src := `permit (principal, action, resource);
forbid (principal == Peer::"` + p.String() + `", action, resource);`
	e, err := Parse("t.cedar", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if e.Authorize(p, ActionCall, "x", Context{}).Allowed {
		t.Fatal("forbid did not override permit")
	}
	if !e.Authorize(key(t, 5), ActionCall, "x", Context{}).Allowed {
		t.Fatal("permit-all did not allow another peer")
	}
}

func TestRejectsBadInput(t *testing.T) {
	t.Parallel()
	if _, err := Parse("bad.cedar", []byte("permit (principal, action, resource")); err == nil {
		t.Fatal("Parse accepted a truncated policy")
	}
	if _, _, err := AddGrant(nil, key(t, 1), `x"); permit (principal, action, resource); //`); err == nil {
		t.Fatal("AddGrant accepted an injection in the capability name")
	}
	if _, err := Parse("big.cedar", make([]byte, MaxFileBytes+1)); err == nil {
		t.Fatal("Parse accepted an oversized file")
	}
}

func TestParseErrorNamesFile(t *testing.T) {
	t.Parallel()
	_, err := Load(writeHome(t, "permit (principal, action, resource"))
	if err == nil || !strings.Contains(err.Error(), FileName) {
		t.Fatalf("Load error = %v, want it to name %s", err, FileName)
	}
}

func writeHome(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A forbid that cannot be evaluated might have applied, so it denies: Cedar
// itself skips an erroring policy, which would let a broken forbid fail open.
// A permit that errors only fails to grant.
func TestForbidThatErrorsDenies(t *testing.T) {
	t.Parallel()
	p := key(t, 6)
	for _, forbid := range []string{
		`forbid (principal, action, resource == Capability::"deploy") when { principal.org == "acme" };`, // no entity
		`forbid (principal, action, resource == Capability::"deploy") when { context.region == "eu" };`,  // no attribute
		`forbid (principal, action, resource == Capability::"deploy") when { context.depth + 9223372036854775807 > 0 };`,
	} {
		e, err := Parse("t.cedar", []byte("permit (principal, action, resource);\n"+forbid))
		if err != nil {
			t.Fatal(err)
		}
		d := e.Authorize(p, ActionCall, "deploy", Context{Trust: 1, Level: "high", Depth: 1})
		if d.Allowed || len(d.Errors) == 0 {
			t.Errorf("%s: decision %+v, want denied with the error", forbid, d)
		}
		// The memo answers the same.
		if e.Authorize(p, ActionCall, "deploy", Context{Trust: 1, Level: "high", Depth: 1}).Allowed {
			t.Errorf("%s: memoized decision allowed", forbid)
		}
		// The forbid is scoped to deploy: other capabilities stay permitted.
		if !e.Authorize(p, ActionCall, "search", Context{Trust: 1, Level: "high", Depth: 1}).Allowed {
			t.Errorf("%s: search denied", forbid)
		}
	}
	e, err := Parse("t.cedar", []byte(`permit (principal, action, resource);
permit (principal, action, resource) when { context.region == "eu" };`))
	if err != nil {
		t.Fatal(err)
	}
	if d := e.Authorize(p, ActionCall, "x", Context{}); !d.Allowed || len(d.Errors) == 0 {
		t.Errorf("an erroring permit beside a plain one: %+v, want allowed with the error", d)
	}
}
