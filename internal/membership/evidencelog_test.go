package membership

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/treaty-dev/treaty/internal/ratelog"
)

// lineCounter counts the log lines at Warn and above whose message has prefix.
type lineCounter struct {
	prefix string
	mu     sync.Mutex
	n      int
}

func (c *lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *lineCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn && strings.HasPrefix(r.Message, c.prefix) {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
	return nil
}
func (c *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *lineCounter) WithGroup(string) slog.Handler      { return c }
func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestEvidenceLogIsRateLimited: a member that keeps sending bad records gets
// every one reported to OnEvidence (trust weighs them all) but costs a
// bounded number of log lines: one, then one per interval with the count.
// Without the limit every bad packet wrote a Warn line.
func TestEvidenceLogIsRateLimited(t *testing.T) {
	t.Parallel()
	m := newInspectOnly(t)
	lines := &lineCounter{prefix: "membership: dropped gossip"}
	m.log = slog.New(lines)
	m.warns = mustWarnLimiter(t, m.log)
	var reported atomic.Int64
	m.cfg.OnEvidence = func(Evidence) { reported.Add(1) }
	relayer := testKey(t, 9).Public()
	bad := append([]byte{mlUser}, bytes.Repeat([]byte{'x'}, 40)...) // not a statement
	const n = 200
	for range n {
		if m.inspectPacket(relayer, bad) {
			t.Fatal("bad statement accepted")
		}
	}
	if got := reported.Load(); got != n {
		t.Errorf("OnEvidence saw %d of %d", got, n)
	}
	if got := lines.count(); got != 1 {
		t.Errorf("%d log lines for %d refusals of one member and reason, want 1 until the interval ends", got, n)
	}
	m.warns.Flush(t.Context(), true)
	if got := lines.count(); got != 2 {
		t.Errorf("%d log lines after the flush, want 2 (the first, then the count)", got)
	}
}

func mustWarnLimiter(tb testing.TB, log *slog.Logger) *ratelog.Limiter {
	tb.Helper()
	l, err := newWarnLimiter(log)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// TestMemberlistErrorLinesAreRateLimited: memberlist writes an [ERR] line for
// every junk packet a member sends ("msg type (n) not supported"); each kind
// of line is logged once, then with its count once per interval. Without the
// limit, 100 junk packets wrote 100 Warn lines.
func TestMemberlistErrorLinesAreRateLimited(t *testing.T) {
	t.Parallel()
	lines := &lineCounter{prefix: "[ERR] memberlist: msg type"}
	lg := slog.New(lines)
	w := slogWriter{l: lg, warns: mustWarnLimiter(t, lg)}
	for i := range 100 {
		fmt.Fprintf(w, "[ERR] memberlist: msg type (%d) not supported from=127.0.0.1:%d\n", 20+i%200, 40000+i)
		fmt.Fprintf(w, "[DEBUG] memberlist: probe %d\n", i)
	}
	if got := lines.count(); got != 1 {
		t.Errorf("%d Warn lines for 100 junk packets, want 1 until the interval ends", got)
	}
	w.warns.Flush(t.Context(), true)
	if got := lines.count(); got != 2 {
		t.Errorf("%d Warn lines after the flush, want 2 (the first, then the count)", got)
	}
	if k := lineKind("[WARN] memberlist: Got ping for unexpected node 'x' from=1.2.3.4:5"); k != "[WARN] memberlist: Got ping for unexpected node " {
		t.Errorf("lineKind = %q", k)
	}
}
