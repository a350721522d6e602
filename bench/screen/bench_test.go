package benchscreen

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/screen"
)

// benignText is about 1 KiB of ordinary agent traffic: a review summary with a URL, an
// email address, numbers, punctuation and a little non-ASCII.
var benignText = strings.TrimSpace(`
Hi team, here is the summary of the review for PR #4821 (payments-service). The change
moves retry handling into the client and adds a 30 s timeout for the upstream ledger
call. Tests pass on CI (build 2024.11.28.1337); coverage went from 81.2% to 83.0%.
Two comments are still open: Jürgen asked whether the idempotency key should include the
merchant id, and Ana suggested logging the request id at debug level only. Please ignore
the flaky lint job on macOS, it is a known issue tracked in https://tracker.example.com/issues/1093
and unrelated to this change. Next steps: address the comments, rebase on main, and ask
payments-oncall@example.com for a final look before Thursday. Deployment is planned for
the 10:00 window; rollback is the usual feature flag. Benchmarks on the staging box show
p50 latency 41 ms (was 44 ms) and p99 180 ms (was 240 ms) at 1,200 requests per second.
Thanks everyone — great work on this one, and see you at the retro on Friday afternoon.
`)

// benignJSON is the same text as a JSON tool result of about the same size.
var benignJSON = func() []byte {
	b, _ := json.Marshal(map[string]any{
		"status": "ok", "pr": 4821, "summary": benignText[:700],
		"comments": []string{"include merchant id in the idempotency key?", "log request id at debug level"},
	})
	return b
}()

var sink any

// minPerOp runs fn in 15 rounds of about 2 ms and returns the fastest round's time per
// call. On a shared machine the minimum is the estimate least disturbed by other load,
// so two minimums measured the same way give a stable ratio.
func minPerOp(fn func()) float64 {
	n := 1
	for {
		start := time.Now()
		for range n {
			fn()
		}
		if time.Since(start) >= 2*time.Millisecond {
			break
		}
		n *= 2
	}
	best := math.Inf(1)
	for range 15 {
		start := time.Now()
		for range n {
			fn()
		}
		best = min(best, float64(time.Since(start).Nanoseconds())/float64(n))
	}
	return best
}

func benchScreen(b *testing.B, msg []byte) {
	s, err := screen.New(screen.Config{})
	if err != nil {
		b.Fatal(err)
	}
	pol := screen.DefaultPolicy()
	if v := s.Screen(pol, msg); v.Action != screen.ActionPass {
		b.Fatalf("benchmark message is not benign: %+v", v)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sink = s.Screen(pol, msg)
	}
	b.StopTimer()
	// The baseline: one bytes.Contains scan of the same bytes, in the same run. Both
	// sides are timed as the minimum over rounds, so the ratio survives a loaded machine.
	needle := []byte("ignore previous instructions")
	base := minPerOp(func() { sink = bytes.Contains(msg, needle) })
	ns := minPerOp(func() { sink = s.Screen(pol, msg) })
	b.ReportMetric(ns, "min-ns/op")
	b.ReportMetric(base, "baseline-min-ns/op")
	b.ReportMetric(ns/base, "x-bytes.Contains")
}

// BenchmarkScreenText1KiB screens 1 KiB of benign text; the x-bytes.Contains metric is
// its cost relative to one bytes.Contains scan of the same bytes (min-ns/op over
// baseline-min-ns/op; ns/op is the usual mean).
func BenchmarkScreenText1KiB(b *testing.B) { benchScreen(b, []byte(benignText)) }

// BenchmarkScreenJSON1KiB is the same for a JSON result of about 1 KiB.
func BenchmarkScreenJSON1KiB(b *testing.B) { benchScreen(b, benignJSON) }
