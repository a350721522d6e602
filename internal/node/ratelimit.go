package node

import (
	"sync"
	"time"
)

// refusalBudget bounds how many refused handshakes per second get an audit
// entry of their own. Anyone who can reach the port can cause refusals; beyond
// the budget they are counted, and the next recorded entry carries the count,
// so the log still shows every refusal but cannot be grown without bound.
type refusalBudget struct {
	mu         sync.Mutex
	perSecond  int
	window     time.Time // start of the current one-second window
	used       int
	suppressed int // refusals not recorded since the last recorded one
}

// take reports whether a refusal at now may be recorded, and if so how many
// were suppressed before it.
func (b *refusalBudget) take(now time.Time) (ok bool, suppressed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.window) >= time.Second || now.Before(b.window) {
		b.window, b.used = now, 0
	}
	if b.used >= b.perSecond {
		b.suppressed++
		return false, 0
	}
	b.used++
	s := b.suppressed
	b.suppressed = 0
	return true, s
}
