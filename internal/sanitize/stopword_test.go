package sanitize

import (
	"testing"

	"github.com/zricethezav/gitleaks/v8/config"
)

// TestContainsStopWordAgrees checks the ASCII fast path against gitleaks'
// own ContainsStopWord: capitals in the secret, stop words with capitals or
// non-ASCII bytes (which only match after Unicode lowercasing), non-ASCII
// secrets (the Kelvin sign lowercases to k) and an empty stop word.
func TestContainsStopWordAgrees(t *testing.T) {
	lists := [][]string{
		{"example", "token"},
		{"Upper", "clé", "kx"},
		{"abc", ""},
	}
	secrets := []string{
		"", "EXAMPLEkey123", "x_ToKeN_y", "nothing-here", "UPPERcase", "uPPer",
		"cl\u00c9f", "cl\u00e9f", "\u212ax", "KX", "a\u0130b", "ab", "ABC", "\xff\xfeexample",
	}
	for _, words := range lists {
		a := &config.Allowlist{StopWords: words}
		if err := a.Validate(); err != nil {
			t.Fatal(err)
		}
		l := newAllowList(a)
		for _, s := range secrets {
			want, _ := a.ContainsStopWord(s)
			if got := l.containsStopWord([]byte(s)); got != want {
				t.Errorf("stop words %q, secret %q: got %v, gitleaks says %v", words, s, got, want)
			}
		}
	}
}
