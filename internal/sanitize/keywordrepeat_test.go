package sanitize

import (
	"slices"
	"strings"
	"testing"
)

// repeatedKeywords are gitleaks keywords whose rule was run once per
// occurrence over a window kilobytes long (lead rules such as curl's, window
// rules over 8 KiB) or over the whole input (whole-input rules such as
// slack-config-access-token): 64 KiB of one of them repeated cost from 0.1
// to 125 s of CPU before the fix.
var repeatedKeywords = []string{"curl", "xoxe.xoxp-", "sgp_", "hooks.slack.com", "sourcegraph",
	"facebook", "webhookb2", "secret_key", "incomingwebhook", "age-secret-key-1", "webhook.office.com"}

// maxKeywordRate bounds 64 KiB of one repeated keyword over 64 KiB of
// ordinary prose. The prose runs at 2-4 µs per KiB; after the fix the
// worst keyword here costs about 150 times that (slack-config-access-token:
// regexp's own rate on a 64 KiB window), curl about 40 times; before it,
// curl cost 8,700 times and slack's 460,000 times.
const maxKeywordRate = 250

// The review's finding: a call stuffed with `curl` (or another rule's
// keyword) spends CPU at a rate far above the sanitizer's on ordinary text.
func TestKeywordRepeatRate(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("timing: skipped with -short and under the race detector, which distorts it")
	}
	s := newTest(t)
	prose := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog near the river bank. ", (64<<10)/65))
	base := minTime(5, func() { s.DryRun(peerA, scrub, prose) })
	for _, k := range repeatedKeywords {
		in := []byte(strings.Repeat(k+" ", (64<<10)/(len(k)+1)))
		d := minTime(3, func() { s.DryRun(peerA, scrub, in) })
		r := float64(d) / float64(base)
		t.Logf("%-20q 64K %v  prose %v  %.1fx", k, d, base, r)
		if r > maxKeywordRate {
			t.Errorf("64 KiB of %q took %.0fx the CPU time of 64 KiB of prose, want <= %d", k, r, maxKeywordRate)
		}
	}
}

// The same inputs are linear: 1 MiB costs at most maxLinearRatio times
// 64 KiB (the whole-input rules were quadratic: one run per occurrence).
func TestKeywordRepeatLinear(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("timing: skipped with -short and under the race detector, which distorts it")
	}
	s := newTest(t)
	for _, k := range []string{"curl", "xoxe.xoxp-", "webhookb2", "secret_key"} {
		small := []byte(strings.Repeat(k+" ", (64<<10)/(len(k)+1)))
		big := []byte(strings.Repeat(k+" ", (1<<20)/(len(k)+1)))
		ts := minTime(3, func() { s.DryRun(peerA, scrub, small) })
		tb := minTime(2, func() { s.DryRun(peerA, scrub, big) })
		r := float64(tb) / float64(ts)
		t.Logf("%-14q 64K %v  1M %v  ratio %.1f", k, ts, tb, r)
		if r > maxLinearRatio {
			t.Errorf("%q: 1 MiB took %.1fx the CPU time of 64 KiB, want <= %d", k, r, maxLinearRatio)
		}
	}
}

// Skipping the runs that cannot match loses no finding: a real one after,
// between or before the repeats, on one line or across non-ASCII text, is
// still reported by the same rule.
func TestKeywordRepeatKeepsFindings(t *testing.T) {
	s := newTest(t)
	curlAuth := `curl -H "Authorization: Bearer Hq7x9k2Lm4Np8Rs1Tv3Wx5Yz" https://api.example.com/`
	slack := "xoxe.xoxp-1-" + strings.Repeat("Q7x9K2LM4NP8RS1TV3WX5YZ", 8)[:164]
	for _, c := range []struct{ name, rule, in string }{
		{"curl last", "curl-auth-header", strings.Repeat("curl ", 4000) + "\n" + curlAuth},
		{"curl first", "curl-auth-header", curlAuth + "\n" + strings.Repeat("curl ", 4000)},
		{"curl middle", "curl-auth-header", strings.Repeat("curl ", 3000) + "\n" + curlAuth + "\n" + strings.Repeat("curl ", 3000)},
		{"curl same line", "curl-auth-header", strings.Repeat("curl é ", 50) + curlAuth},
		{"curl user", "curl-auth-user", strings.Repeat("curl ", 2000) + "\ncurl -u admin:Hq7x9k2Lm4Np8Rs1 https://x.example.com/"},
		{"slack whole", "slack-config-access-token", strings.Repeat("xoxe.xoxp- ", 2000) + slack + strings.Repeat(" xoxe.xoxp-", 2000)},
	} {
		t.Run(c.name, func(t *testing.T) {
			// gitleaksOnly: the rule itself, without the package's other
			// detectors, which report these values first under their names.
			fs := s.gitleaksOnly([]byte(c.in))
			if !slices.ContainsFunc(fs, func(f Finding) bool { return strings.HasSuffix(f.Rule, c.rule) }) {
				t.Errorf("no %s finding; got %v", c.rule, fs)
			}
			if len(s.Scan([]byte(c.in))) == 0 {
				t.Error("Scan reports nothing")
			}
		})
	}
}
