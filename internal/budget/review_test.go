package budget

import (
	"math"
	"strings"
	"testing"
	"time"
)

// A rate so low that the next token is centuries away (valid: above zero)
// names that wait, capped, and never "resets now": the float-to-Duration
// conversion overflowed, and a client retrying at ResetIn would spin.
func TestTinyRateResetDoesNotOverflow(t *testing.T) {
	t.Parallel()
	p := peerID(t, 1)
	l := newLimiter(t, Config{Default: Limit{Rate: 1e-12}})
	acquireN(t, l, p, "c", In, 1, t0)
	_, err := l.Acquire(p, "c", In, 0, t0)
	e := mustExceed(t, err, BudgetRate)
	if e.ResetIn != time.Duration(math.MaxInt64) {
		t.Fatalf("ResetIn = %v, want the longest Duration", e.ResetIn)
	}
	if strings.Contains(e.Error(), "resets now") {
		t.Fatalf("message %q", e.Error())
	}
}
