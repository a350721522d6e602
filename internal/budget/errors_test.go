package budget

import "testing"

func TestReasonSentence(t *testing.T) {
	t.Parallel()
	for tok, want := range map[string]string{
		"rate_limit_2_s_burst_3_exceeded_resets_in_479ms":   "rate limit 2/s (burst 3) exceeded; resets in 479 ms",
		"rate_limit_1_m_burst_1_exceeded_resets_in_59.983s": "rate limit 1/m (burst 1) exceeded; resets in 59.983 s",
		"rate_limit_0.5_s_burst_1_exceeded_resets_in_1.5s":  "rate limit 0.5/s (burst 1) exceeded; resets in 1.5 s",
		"rate_limit_5_10s_burst_5_exceeded_resets_in_1m30s": "rate limit 5/10s (burst 5) exceeded; resets in 1m30s",
		"concurrency_limit_4_exceeded_resets_in_0s":         "concurrency limit 4 exceeded; resets when a running call ends",
		"bytes_in_limit_1_mib_1m_exceeded":                  "bytes in limit 1 mib 1m exceeded",
		"quarantined":                                       "quarantined",
		"delegation_chain_too_deep":                         "delegation chain too deep",
		"":                                                  "",
	} {
		if got := ReasonSentence(tok); got != want {
			t.Errorf("ReasonSentence(%q) = %q, want %q", tok, got, want)
		}
	}
}
