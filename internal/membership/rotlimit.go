package membership

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// RotationLimit bounds how often a member's key chain may rotate: once a
// rotation to a key is applied, a rotation from that key is refused until
// RotationLimitConfig.Interval has passed. A member holds its live key, so
// it can sign rotations of it at will, and each one a node applies rewrites
// the ledger, moves the member's entry, grants, trust and budgets, and is
// audited; an honest member rotates rarely (docs/adr/0022, amendment).
//
// Times are arrival times at this node, not the statements' Issued times,
// which the member chooses. The state is in memory: a restart forgets it.
type RotationLimit struct {
	cfg RotationLimitConfig

	mu      sync.Mutex
	last    map[identity.PublicKey]time.Time // a chain's current key -> when a rotation made it so
	refused atomic.Uint64
}

// RotationLimitConfig bounds a RotationLimit; a zero field takes the default
// noted on it.
type RotationLimitConfig struct {
	Interval time.Duration // between two rotations of one chain; zero: RotationInterval; allowed [1s, 24h]
	Max      int           // chains remembered; zero: MaxHeld; allowed [1, 65536]
}

// RotationInterval is the default least time between two rotations of one
// key chain.
const RotationInterval = time.Minute

// ErrRotationTooSoon marks a rotation refused by a RotationLimit.
var ErrRotationTooSoon = errors.New("membership: rotation too soon after the last rotation of its key chain")

// RotationRateError is a rotation a RotationLimit refused. It unwraps to
// ErrRotationTooSoon.
type RotationRateError struct {
	Old, New identity.PublicKey // New is zero for a rotation not yet made
	Wait     time.Duration      // until a rotation of the chain is accepted again
	Interval time.Duration
}

func (e *RotationRateError) Error() string {
	to := ""
	if !e.New.IsZero() {
		to = " to " + e.New.Short()
	}
	return fmt.Sprintf("membership: rotation of %s%s refused: its key chain may rotate once per %s; again in %s",
		e.Old.Short(), to, e.Interval, e.Wait.Round(time.Second))
}

func (e *RotationRateError) Unwrap() error { return ErrRotationTooSoon }

// NewRotationLimit validates cfg and returns a RotationLimit remembering no
// rotation.
func NewRotationLimit(cfg RotationLimitConfig) (*RotationLimit, error) {
	if cfg.Interval == 0 {
		cfg.Interval = RotationInterval
	}
	if cfg.Max == 0 {
		cfg.Max = MaxHeld
	}
	switch {
	case cfg.Interval < time.Second || cfg.Interval > 24*time.Hour:
		return nil, fmt.Errorf("membership: RotationLimitConfig.Interval %s out of range [1s, 24h]", cfg.Interval)
	case cfg.Max < 1 || cfg.Max > 1<<16:
		return nil, fmt.Errorf("membership: RotationLimitConfig.Max %d out of range [1, 65536]", cfg.Max)
	}
	return &RotationLimit{cfg: cfg, last: map[identity.PublicKey]time.Time{}}, nil
}

// Interval is the least time between two rotations of one chain.
func (l *RotationLimit) Interval() time.Duration { return l.cfg.Interval }

// Check returns nil if r may be applied at now, else a *RotationRateError
// (counted in Refused).
func (l *RotationLimit) Check(r Rotation, now time.Time) error {
	l.mu.Lock()
	at, ok := l.last[r.Old]
	l.mu.Unlock()
	if !ok {
		return nil
	}
	if wait := at.Add(l.cfg.Interval).Sub(now); wait > 0 {
		l.refused.Add(1)
		return &RotationRateError{Old: r.Old, New: r.New, Wait: wait, Interval: l.cfg.Interval}
	}
	return nil
}

// Applied records that r was applied at now: a rotation from r.New waits
// until now+Interval. When Max chains are remembered, those whose interval
// has passed are forgotten, and if none has, the oldest.
func (l *RotationLimit) Applied(r Rotation, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.last, r.Old)
	if len(l.last) >= l.cfg.Max {
		var oldest identity.PublicKey
		var oldestAt time.Time
		for k, at := range l.last {
			if !now.Before(at.Add(l.cfg.Interval)) {
				delete(l.last, k)
			} else if oldestAt.IsZero() || at.Before(oldestAt) {
				oldest, oldestAt = k, at
			}
		}
		if len(l.last) >= l.cfg.Max {
			delete(l.last, oldest)
		}
	}
	l.last[r.New] = now
}

// Refused is how many rotations Check refused.
func (l *RotationLimit) Refused() uint64 { return l.refused.Load() }
