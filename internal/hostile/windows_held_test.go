//go:build linux

package hostile

import (
	"testing"
	"time"
)

// The latency verdict must still fail a victim that holds the legitimate
// peer's calls: the prober is sequential, so while a call is held no other
// starts, and a window in which none started is a window the caller spent
// waiting, not a fast one. Calls are simulated the way measure makes them:
// one after another, callGap apart, until the attack ends.
func TestLatencyWindowsHeldCalls(t *testing.T) {
	ms := time.Millisecond
	sequential := func(took func(at time.Duration) time.Duration) legitRun {
		var r legitRun
		for at := time.Duration(0); at < attackFor; {
			d := took(at)
			r.calls, r.callsAt = append(r.calls, d), append(r.callsAt, at)
			at += d + callGap
		}
		return r
	}
	limit := 200 * ms
	for _, c := range []struct {
		name string
		took func(at time.Duration) time.Duration
		fail bool
	}{
		{"quiet", func(time.Duration) time.Duration { return 10 * ms }, false},
		{"one short stall", func(at time.Duration) time.Duration {
			if at >= 1100*ms && at < 1150*ms {
				return 700 * ms
			}
			return 10 * ms
		}, false},
		// Every call under probeMax, so none fails: only the latency
		// verdict can catch these.
		{"every call held longer than the attack", func(time.Duration) time.Duration { return 3500 * ms }, true},
		{"held for two thirds of the attack", func(at time.Duration) time.Duration {
			if at >= 500*ms && at < 600*ms {
				return 1900 * ms
			}
			return 10 * ms
		}, true},
	} {
		r := sequential(c.took)
		wins := r.windowP99s(latencyWindows, attackFor)
		// attack's verdict: fail when most windows are slow.
		if failed := slowWindows(wins, limit)*2 > latencyWindows; failed != c.fail {
			t.Errorf("%s: windows %v (calls %v): verdict failed=%v, want %v", c.name, wins, r.calls, failed, c.fail)
		}
	}
}
