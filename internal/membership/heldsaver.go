package membership

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// HeldSaveInterval is the default shortest time between two saves a
// HeldSaver starts. Each save rewrites the node's whole admission ledger
// (up to 4,096 held revocations and as many rotations, a few MiB, with an
// fsync), and many colluding members, each within its allowance, can make
// statements become held far more often than that. A second bounds the
// rewrites to one a second whatever they do, and is what a crash can lose
// of them: held statements are evidence other members still have and pass
// on again (docs/adr/0021-revocations-of-unknown-keys.md, amendment).
const HeldSaveInterval = time.Second

// heldSaveRetryMax bounds the wait before retrying a save that failed; the
// wait doubles from the interval with each failure in a row.
const heldSaveRetryMax = time.Minute

// HeldSaver coalesces the saves of what Held and HeldRotations hold. A
// statement newly held calls Mark. The first Mark after a quiet interval
// saves at once, on the caller's goroutine, so a lone statement is on disk
// before its caller goes on; Marks within the interval after a save only
// mark the store dirty, and one save covers them all when the interval
// ends. At most one save runs at a time, and saves start at most once per
// interval. A save that fails is logged and retried (after the interval,
// doubling with each failure in a row, at most a minute); it never reaches
// the caller of Mark. Close makes the last save; a Mark after Close saves
// at once.
type HeldSaver struct {
	save     func() error
	interval time.Duration
	log      *slog.Logger

	saveMu sync.Mutex // held while a save runs: one at a time

	mu     sync.Mutex
	dirty  bool        // marked since the last save began
	saving bool        // a save runs
	last   time.Time   // when the last save began
	timer  *time.Timer // the save scheduled, or nil
	fails  int         // saves failed in a row
	closed bool

	saves, failed atomic.Int64
}

// HeldSaverConfig configures a HeldSaver.
type HeldSaverConfig struct {
	// Save writes everything held now, atomically (required). It runs on
	// the goroutine of Mark, Flush or Close, or on a timer's.
	Save func() error
	// Interval is the shortest time between two saves; zero:
	// HeldSaveInterval; allowed [1ms, 1m].
	Interval time.Duration
	// Log receives failed saves; nil: discarded.
	Log *slog.Logger
}

// HeldSaverStats counts what a HeldSaver did.
type HeldSaverStats struct {
	Saves  int64 // saves that succeeded
	Failed int64 // saves that failed
}

// NewHeldSaver validates cfg and returns a HeldSaver with nothing to save.
func NewHeldSaver(cfg HeldSaverConfig) (*HeldSaver, error) {
	if cfg.Interval == 0 {
		cfg.Interval = HeldSaveInterval
	}
	switch {
	case cfg.Save == nil:
		return nil, errors.New("membership: HeldSaverConfig.Save is nil")
	case cfg.Interval < time.Millisecond || cfg.Interval > time.Minute:
		return nil, fmt.Errorf("membership: HeldSaverConfig.Interval %s out of range [1ms, 1m]", cfg.Interval)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &HeldSaver{save: cfg.Save, interval: cfg.Interval, log: cfg.Log}, nil
}

// Mark records that what is held changed: it saves now when no save began
// within the interval (nor runs), else it leaves the save to the one
// scheduled at the interval's end.
func (s *HeldSaver) Mark() {
	s.mu.Lock()
	s.dirty = true
	now := time.Now()
	if s.closed || !s.saving && s.timer == nil && now.Sub(s.last) >= s.interval {
		s.saving = true // claimed: a Mark meanwhile waits for the timer
		s.mu.Unlock()
		_ = s.Flush()
		return
	}
	s.scheduleLocked(now)
	s.mu.Unlock()
}

// scheduleLocked starts the timer of the next save, unless one is pending
// or the saver is closed: at the interval's end (later after failures).
func (s *HeldSaver) scheduleLocked(now time.Time) {
	if s.timer != nil || s.closed {
		return
	}
	wait := s.interval
	for i := 0; i < s.fails && wait < heldSaveRetryMax; i++ {
		wait *= 2
	}
	wait = min(wait, heldSaveRetryMax)
	if !s.saving {
		wait -= now.Sub(s.last) // the interval counts from the last save's start
	}
	s.timer = time.AfterFunc(max(wait, 0), s.timed)
}

// timed is the scheduled save; once closed, Close has saved.
func (s *HeldSaver) timed() {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	s.timer = nil
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.saving = true // claimed until flushLocked begins
	s.mu.Unlock()
	_ = s.flushLocked()
}

// Flush saves now if anything was marked since the last save began, and
// returns that save's error.
func (s *HeldSaver) Flush() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	return s.flushLocked()
}

// flushLocked saves if dirty; s.saveMu is held.
func (s *HeldSaver) flushLocked() error {
	s.mu.Lock()
	if !s.dirty {
		s.saving = false
		s.mu.Unlock()
		return nil
	}
	s.dirty, s.saving, s.last = false, true, time.Now()
	s.mu.Unlock()

	err := s.save()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.saving = false
	if err == nil {
		s.fails = 0
		s.saves.Add(1)
		if s.dirty { // marked while it ran: its own save, after the interval
			s.scheduleLocked(time.Now())
		}
		return nil
	}
	s.failed.Add(1)
	s.fails++
	s.dirty = true // what it did not write is still to be written
	s.log.Error("held statements not saved; retrying later", "failures_in_a_row", s.fails, "err", err)
	s.scheduleLocked(time.Now())
	return fmt.Errorf("membership: save of held statements: %w", err)
}

// Close stops the timer and makes the last save, returning its error. A
// Mark after Close saves at once. Close may be called more than once.
func (s *HeldSaver) Close() error {
	s.mu.Lock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop() // a timed save already started finds the saver closed
		s.timer = nil
	}
	s.mu.Unlock()
	return s.Flush()
}

// Stats counts the saves made and failed so far.
func (s *HeldSaver) Stats() HeldSaverStats {
	return HeldSaverStats{Saves: s.saves.Load(), Failed: s.failed.Load()}
}
