// Package ratelog bounds repeated log lines without losing their evidence.
//
// Events are grouped by a caller-chosen key (for example reason and source
// address). The first event of a key is logged at once with count=1. Later
// events of that key within Interval are only counted; the next line for the
// key, written once Interval has passed (by the next event or by Flush),
// carries count (events since the previous line of the key), first and last
// (their times) and the attributes of the latest one. So the sum of the counts
// is the number of events, and a key costs at most one line per Interval plus
// its first line.
//
// At most MaxKeys keys are tracked; events of further keys share one overflow
// entry (attribute overflow=true), so many sources cannot multiply the lines
// either: a Limiter writes at most (MaxKeys+1) lines per Interval in steady
// state, plus one first line for each key that was quiet for an Interval.
package ratelog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

const (
	defaultInterval = 10 * time.Second
	defaultMaxKeys  = 128
)

// Config configures a Limiter. Logger is required.
type Config struct {
	Logger   *slog.Logger
	Interval time.Duration    // zero: 10s; allowed [1ms, 1h]
	MaxKeys  int              // zero: 128; allowed [1, 65536]
	Now      func() time.Time // nil: time.Now
}

// Limiter is safe for concurrent use.
type Limiter struct {
	log      *slog.Logger
	interval time.Duration
	maxKeys  int
	now      func() time.Time

	mu       sync.Mutex
	entries  map[string]*entry
	overflow *entry
}

type entry struct {
	since time.Time // time of the key's previous line
	count int       // events since that line
	first time.Time // first of them
	last  time.Time // last of them
	level slog.Level
	msg   string
	attrs []any // of the last of them
}

// New validates cfg and returns a Limiter.
func New(cfg Config) (*Limiter, error) {
	if cfg.Logger == nil {
		return nil, errors.New("ratelog: Config.Logger is required")
	}
	if cfg.Interval == 0 {
		cfg.Interval = defaultInterval
	}
	if cfg.Interval < time.Millisecond || cfg.Interval > time.Hour {
		return nil, fmt.Errorf("ratelog: Config.Interval %v outside [1ms, 1h]", cfg.Interval)
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = defaultMaxKeys
	}
	if cfg.MaxKeys < 1 || cfg.MaxKeys > 65536 {
		return nil, fmt.Errorf("ratelog: Config.MaxKeys %d outside [1, 65536]", cfg.MaxKeys)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limiter{log: cfg.Logger, interval: cfg.Interval, maxKeys: cfg.MaxKeys, now: cfg.Now,
		entries: make(map[string]*entry)}, nil
}

// line is a log line decided under the lock and written after it.
type line struct {
	level slog.Level
	msg   string
	attrs []any
}

// Log records one event of key; it writes a line now if the key is new (or
// was quiet for an Interval) or if Interval has passed since its last line.
func (l *Limiter) Log(ctx context.Context, level slog.Level, key, msg string, attrs ...any) {
	now := l.now()
	var out *line
	l.mu.Lock()
	e, ok := l.entries[key]
	overflow := false
	if !ok {
		if len(l.entries) < l.maxKeys {
			e = &entry{since: now}
			l.entries[key] = e
			e.record(now, level, msg, attrs)
			out = e.take(now, false)
			l.mu.Unlock()
			l.write(ctx, out)
			return
		}
		if l.overflow == nil {
			l.overflow = &entry{since: now.Add(-l.interval)} // its first event is written at once
		}
		e, overflow = l.overflow, true
	}
	e.record(now, level, msg, attrs)
	if now.Sub(e.since) >= l.interval {
		out = e.take(now, overflow)
	}
	l.mu.Unlock()
	l.write(ctx, out)
}

// Flush writes the pending line of every key whose Interval has passed and
// forgets keys that had no event for a whole Interval. Call it periodically
// (about every Interval) and once at shutdown with force, which writes every
// pending line regardless of Interval.
func (l *Limiter) Flush(ctx context.Context, force bool) {
	now := l.now()
	var out []*line
	l.mu.Lock()
	for k, e := range l.entries {
		if !force && now.Sub(e.since) < l.interval {
			continue
		}
		if e.count == 0 {
			delete(l.entries, k)
			continue
		}
		out = append(out, e.take(now, false))
	}
	if e := l.overflow; e != nil && (force || now.Sub(e.since) >= l.interval) {
		if e.count == 0 {
			l.overflow = nil
		} else {
			out = append(out, e.take(now, true))
		}
	}
	l.mu.Unlock()
	for _, ln := range out {
		l.write(ctx, ln)
	}
}

// Keys returns how many keys are tracked (for tests and stats).
func (l *Limiter) Keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

func (e *entry) record(now time.Time, level slog.Level, msg string, attrs []any) {
	if e.count == 0 {
		e.first = now
	}
	e.count++
	e.last, e.level, e.msg, e.attrs = now, level, msg, attrs
}

// take makes the line for the events counted so far and starts a new period.
func (e *entry) take(now time.Time, overflow bool) *line {
	attrs := make([]any, 0, len(e.attrs)+8)
	attrs = append(attrs, e.attrs...)
	attrs = append(attrs, "count", e.count, "first", e.first, "last", e.last)
	if overflow {
		attrs = append(attrs, "overflow", true)
	}
	ln := &line{level: e.level, msg: e.msg, attrs: attrs}
	e.since, e.count, e.attrs = now, 0, nil
	return ln
}

func (l *Limiter) write(ctx context.Context, ln *line) {
	if ln != nil {
		l.log.Log(ctx, ln.level, ln.msg, ln.attrs...)
	}
}
