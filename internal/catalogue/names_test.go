package catalogue

import (
	"fmt"
	"strings"
	"testing"
)

func TestFitNamePlain(t *testing.T) {
	t.Parallel()
	for _, c := range [][3]string{
		{"globex", "code-review", "globex__code-review"},
		{"acme-eu", "v1-search", "acme-eu__v1-search"},
		{"a", "b", "a__b"},
	} {
		if got := FitName(c[0], c[1]); got != c[2] {
			t.Errorf("FitName(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

func TestFitNameAdjusted(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("p", 64)
	cases := [][2]string{
		{long, strings.Repeat("c", 64)},       // 130 characters: too long
		{long, strings.Repeat("c", 63) + "d"}, // same 124-byte prefix as above
		{"did:key:z6MkabcDEF", "echo"},        // ':' is not allowed
		{"über", "echo"}, {"uber", "echo"},    // non-ASCII
		{"a_", "b"}, {"a", "_b"}, // both would be a___b
		{"a__b", "c"}, {"a", "b__c"}, // both would be a__b__c
		{"peer", "cap\u202eevil"}, // bidi override
		{"", "x"}, {"x", ""},      // empty halves
		{"tab\tpeer", "x"}, {"tab peer", "x"}, // different invalid runes
	}
	seen := map[string][2]string{}
	for _, c := range cases {
		got := FitName(c[0], c[1])
		if len(got) == 0 || len(got) > MaxToolName || !ValidName(got) {
			t.Errorf("FitName(%q, %q) = %q: not a valid tool name", c[0], c[1], got)
		}
		if again := FitName(c[0], c[1]); again != got {
			t.Errorf("FitName(%q, %q) is not stable: %q then %q", c[0], c[1], got, again)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("FitName(%q, %q) = FitName(%q, %q) = %q", c[0], c[1], prev[0], prev[1], got)
		}
		seen[got] = c
	}
	// The unambiguous one of an ambiguous pair keeps its plain name.
	if got := FitName("a", "_b"); got != "a___b" {
		t.Errorf(`FitName("a", "_b") = %q, want the plain a___b`, got)
	}
}

// TestFitNameNeverCollides: many near-identical long pairs stay distinct.
func TestFitNameNeverCollides(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	base := strings.Repeat("x", 70)
	for i := range 2000 {
		p, c := base, fmt.Sprintf("%s-%d", base, i)
		got := FitName(p, c)
		if len(got) > MaxToolName {
			t.Fatalf("%q is %d long", got, len(got))
		}
		if prev, dup := seen[got]; dup {
			t.Fatalf("%s and %s both fit to %q", prev, c, got)
		}
		seen[got] = c
	}
}
