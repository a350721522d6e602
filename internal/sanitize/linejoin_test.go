package sanitize

import (
	"slices"
	"strings"
	"testing"
)

// Issue 10: a value split across lines of one string is still that value.
func TestValueSplitAcrossLines(t *testing.T) {
	s := newTest(t)
	for _, c := range []struct {
		name, in string
		cat      Category
		rest     string // a piece of the value that must not survive redaction
	}{
		{"card json \\n", `{"note":"card 4111 1111 1111\n1111 on file"}`, CategoryCreditCard, "\\n1111 on"},
		{"card json \\r\\n indented", `{"note":"card 4111 1111\r\n    1111 1111 on file"}`, CategoryCreditCard, "1111 1111 on"},
		{"card raw newline", "card 4111111111\n111111 on file", CategoryCreditCard, "111111 on"},
		{"aws key json \\n", `{"log":"key AKIAQWERTY\nUIOPASDFGH used"}`, CategoryAWSAccessKey, "UIOPASDFGH"},
		{"github token wrapped", "token: ghp_aB3dE5gH7jK9mN1pQ3\n  rS5tU7vW9xY1zA3bC5dE7f\n", CategoryGitHubToken, "rS5tU7"},
		{"email split", "mail hannah.schmidt@north\nwind.dev today", CategoryEmail, "wind.dev"},
		{"phone split", "call +1 415 555\n0100 today", CategoryPhone, "0100"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := s.Scan([]byte(c.in))
			if !slices.ContainsFunc(fs, func(f Finding) bool { return f.Category == c.cat }) {
				t.Fatalf("%q: findings %v, want %s", c.in, found([]byte(c.in), fs), c.cat)
			}
			res := s.DryRun(peerA, Policy{Secrets: ActionRedact, PII: ActionRedact}, []byte(c.in))
			if strings.Contains(res.Output, c.rest) {
				t.Fatalf("redacted output still holds the second line's piece: %q", res.Output)
			}
		})
	}
	// Near misses: separate numbers on consecutive lines that do not make a
	// valid value, prose, and a value whole on its line next to a word.
	for _, in := range []string{
		`{"note":"ids 4111 1111 1111\n1112 and more"}`, // Luhn fails
		"qty 1200\n3400 units",
		"build 2024\n1234 done",
		"the configuration\nmanagement team",
		`{"a":"order 41111111\n11111112"}`, // no Luhn either way
	} {
		if fs := s.Scan([]byte(in)); len(fs) > 0 {
			t.Errorf("%q: findings %v, want none", in, found([]byte(in), fs))
		}
	}
	in := "Contact\nhannah.schmidt@northwind.dev"
	fs := s.Scan([]byte(in))
	if len(fs) != 1 || in[fs[0].Start:fs[0].End] != "hannah.schmidt@northwind.dev" {
		t.Errorf("%q: findings %v, want the address alone", in, found([]byte(in), fs))
	}
}
