package sanitize

import "testing"

// TestPlaceholderNeedsAWordStartForShortWords: a real token that happens to
// hold "XxXX" or "fAkE" is not a stand-in (it leaked before), while
// ghp_xxxx…, sk_fake_… and YOUR_API_KEY_HERE still are.
func TestPlaceholderNeedsAWordStartForShortWords(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{
		"ghp_Q2fByIbJJ8ri12PXxXXcPEFcBy4LMh8nSMuq": false,
		"ghp_Q2fByIbJJ8ri12PfAkEcPEFcBy4LMh8nSMuq": false,
		"ghp_Q2fByIbJJ8ri12PdUmMycPEFcBy4LMh8nSMu": false,
		"ghp_xxxxQ2fByIbJJ8ri12PcPEFcBy4LMh8nSMuq": true,
		"xxxx-xxxx-xxxx":                           true,
		"sk_fake_4eC39HqLyjWDarjtT1zdp7dc":         true,
		"dummy-token-1234":                         true,
		"YOUR_API_KEY_HERE":                        true,
		"AKIAIOSFODNN7EXAMPLE":                     true,
		"ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX": true,
		// A later short word at a word start counts after one inside a word;
		// a long word counts anywhere.
		"ab1fAkE2_fake3Q": true,
		"Q9wsampleZ":      true,
		"aXxxxx7Q":        false,
	} {
		if got := placeholder([]byte(v)); got != want {
			t.Errorf("placeholder(%q) = %v, want %v", v, got, want)
		}
	}
}
