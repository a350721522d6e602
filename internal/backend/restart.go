package backend

import "time"

// Restart backoff of the long-lived backends (exec workers, MCP servers): a
// process that dies is started again at once the first time, then no sooner
// than a backoff that doubles from restartMinBackoff to restartMaxBackoff
// with each further death; one call that works resets it.
const (
	restartMinBackoff = 100 * time.Millisecond
	restartMaxBackoff = 5 * time.Second
)

// restartBackoff is the restart state of one process position. It is not
// safe for concurrent use: its owner's mutex guards it.
type restartBackoff struct {
	failures int       // consecutive deaths
	notUntil time.Time // no restart before this
}

// died records a death at now.
func (b *restartBackoff) died(now time.Time) {
	if b.failures > 0 {
		b.notUntil = now.Add(min(restartMinBackoff<<min(b.failures-1, 16), restartMaxBackoff))
	}
	b.failures = min(b.failures+1, 17)
}

// wait is how long a restart must still wait at now; zero or less: go.
func (b *restartBackoff) wait(now time.Time) time.Duration { return b.notUntil.Sub(now) }

// healthy ends the backoff: the process answered.
func (b *restartBackoff) healthy() { *b = restartBackoff{} }
