package budget

import (
	"math/big"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// The token bucket against an exact model in rational arithmetic: a call is admitted
// exactly when the model has a whole token (within 1e-6 of a token for float
// rounding), and a refusal's ResetIn is the first nanosecond at which it would have
// one.
func TestPropTokenBucketExact(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		num := rapid.Int64Range(1, 2000).Draw(t, "rateNum")
		den := rapid.Int64Range(1, 20).Draw(t, "rateDen")
		burst := rapid.IntRange(1, 50).Draw(t, "burst")
		rate := big.NewRat(num, den*1e9) // tokens per nanosecond
		l, err := New(Config{Default: Limit{Rate: float64(num) / float64(den), Burst: burst}})
		if err != nil {
			t.Fatal(err)
		}
		slack := big.NewRat(1, 1e6)
		one := big.NewRat(1, 1)
		tokens := big.NewRat(int64(burst), 1)
		capacity := big.NewRat(int64(burst), 1)
		now := t0
		retry := time.Duration(-1)
		for range rapid.IntRange(1, 200).Draw(t, "calls") {
			var gap time.Duration
			if retry >= 0 {
				gap = retry // come back exactly when the refusal said
			} else {
				gap = time.Duration(rapid.Int64Range(0, int64(3*time.Second)).Draw(t, "gap"))
			}
			now = now.Add(gap)
			tokens.Add(tokens, new(big.Rat).Mul(rate, big.NewRat(int64(gap), 1)))
			if tokens.Cmp(capacity) > 0 {
				tokens.Set(capacity)
			}
			_, err := l.Acquire("p", "", In, 0, now)
			if err == nil {
				if tokens.Cmp(new(big.Rat).Sub(one, slack)) < 0 {
					t.Fatalf("admitted with %v tokens (model)", tokens.FloatString(9))
				}
				tokens.Sub(tokens, one)
				retry = -1
				continue
			}
			e, ok := err.(*Exceeded)
			if !ok || e.Budget != BudgetRate {
				t.Fatalf("err = %v", err)
			}
			if retry >= 0 {
				t.Fatalf("refused at the ResetIn %v the previous refusal named (model %v tokens)", retry, tokens.FloatString(9))
			}
			if tokens.Cmp(one) >= 0 {
				t.Fatalf("refused with %v tokens (model)", tokens.FloatString(9))
			}
			// Minimal: one nanosecond earlier the model would still lack a token.
			at := func(d time.Duration) *big.Rat {
				return new(big.Rat).Add(tokens, new(big.Rat).Mul(rate, big.NewRat(int64(d), 1)))
			}
			if at(e.ResetIn).Cmp(new(big.Rat).Sub(one, slack)) < 0 {
				t.Fatalf("ResetIn %v too short: model %v tokens then", e.ResetIn, at(e.ResetIn).FloatString(9))
			}
			if e.ResetIn > 0 && at(e.ResetIn-1).Cmp(new(big.Rat).Add(one, slack)) >= 0 {
				t.Fatalf("ResetIn %v too long: model %v tokens 1ns earlier", e.ResetIn, at(e.ResetIn-1).FloatString(9))
			}
			retry = e.ResetIn
		}
	})
}

// Any number of peers hammering their buckets leaves every other peer's full.
func TestPropIsolation(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		burst := rapid.IntRange(1, 20).Draw(t, "burst")
		l, err := New(Config{Default: Limit{Rate: 1, Burst: burst, Concurrency: burst}})
		if err != nil {
			t.Fatal(err)
		}
		peers := []string{"a", "b", "c", "d"}
		quiet := rapid.SampledFrom(peers).Draw(t, "quiet")
		for range rapid.IntRange(0, 200).Draw(t, "noise") {
			p := rapid.SampledFrom(peers).Draw(t, "noisy")
			if p == quiet {
				continue
			}
			tk, err := l.Acquire(p, rapid.SampledFrom([]string{"", "x"}).Draw(t, "cap"), In, 0, t0)
			if err == nil && rapid.Bool().Draw(t, "release") {
				tk.Release(1, 0, t0)
			}
		}
		for i := range burst {
			if _, err := l.Acquire(quiet, "x", In, 0, t0); err != nil {
				t.Fatalf("quiet peer's call %d of %d refused: %v", i+1, burst, err)
			}
		}
	})
}
