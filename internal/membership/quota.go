package membership

import (
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// relayerQuota is what Held and HeldRotations share: each relayer's
// allowance (HeldConfig.Burst, refilled by one every HeldConfig.Refill) and
// the items it has held, oldest first, so that a full store takes its room
// from the relayer holding the most. Callers hold their own lock.
type relayerQuota[T comparable] struct {
	cfg      HeldConfig
	relayers map[identity.PublicKey]*relayerItems[T]
}

type relayerItems[T comparable] struct {
	items  []T
	tokens float64
	at     time.Time
}

func newRelayerQuota[T comparable](cfg HeldConfig) relayerQuota[T] {
	return relayerQuota[T]{cfg: cfg, relayers: map[identity.PublicKey]*relayerItems[T]{}}
}

// spend takes one of relayer's allowance at now; false when none is left.
// Relayers holding nothing are forgotten, with what they spent, once there
// are as many relayers as items may be held.
func (q *relayerQuota[T]) spend(relayer identity.PublicKey, now time.Time) bool {
	r := q.relayers[relayer]
	if r == nil {
		if len(q.relayers) >= q.cfg.Max {
			for k, x := range q.relayers {
				if len(x.items) == 0 {
					delete(q.relayers, k)
				}
			}
		}
		r = &relayerItems[T]{tokens: float64(q.cfg.Burst), at: now}
		q.relayers[relayer] = r
	}
	if d := now.Sub(r.at); d > 0 {
		r.tokens = min(float64(q.cfg.Burst), r.tokens+float64(d)/float64(q.cfg.Refill))
		r.at = now
	}
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}

// add records that relayer, which just spent its allowance, holds item.
func (q *relayerQuota[T]) add(relayer identity.PublicKey, item T) {
	r := q.relayers[relayer]
	r.items = append(r.items, item)
}

// victim is the oldest item of the relayer holding the most.
func (q *relayerQuota[T]) victim() (item T, ok bool) {
	var v *relayerItems[T]
	for _, r := range q.relayers {
		if v == nil || len(r.items) > len(v.items) {
			v = r
		}
	}
	if v == nil || len(v.items) == 0 {
		return item, false
	}
	return v.items[0], true
}

// remove forgets that relayer holds item.
func (q *relayerQuota[T]) remove(relayer identity.PublicKey, item T) {
	if r := q.relayers[relayer]; r != nil {
		r.items = without(r.items, item)
	}
}

// count is how many items relayer holds.
func (q *relayerQuota[T]) count(relayer identity.PublicKey) int {
	if r := q.relayers[relayer]; r != nil {
		return len(r.items)
	}
	return 0
}

func without[T comparable](list []T, x T) []T {
	for i, y := range list {
		if y == x {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}
