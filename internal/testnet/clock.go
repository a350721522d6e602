package testnet

import (
	"sync"
	"time"
)

// Clock is a settable clock shared by the nodes of a Cluster. It runs with
// real time, shifted by an offset that only grows: tests jump over waits
// (trust decay, breaker cooldowns, budget refills) with Advance instead of
// sleeping, while deadlines that nobody advances still pass on their own.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the clock's time; pass it as node.Options.Now.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d. A negative d is ignored: a node's
// clock does not run backwards.
func (c *Clock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}
