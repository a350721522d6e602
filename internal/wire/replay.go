package wire

import (
	"container/heap"
	"fmt"
	"time"
)

// ReplayKey identifies one (peer, nonce) pair in a ReplayWindow: the first
// 16 bytes of sha256(peer key || nonce). Keying by peer means one peer cannot
// burn another's nonces; hashing keeps every entry the same small size.
type ReplayKey [16]byte

// ReplayWindow remembers nonces until their requests can no longer be
// accepted. It is a pure state machine: it reads no clock (every call takes
// now) and is not safe for concurrent use (Verifier serializes it).
//
// Memory is bounded by capacity: about 80 bytes per entry (map slot plus
// heap slot, measured at 1<<18 entries), so the default 1<<20 entries cost
// roughly 80 MiB when full; steady state holds rate x (TTL + MaxSkew)
// entries, e.g. 1000 calls/s x 60 s = 60000 entries, about 5 MiB.
// A full window refuses new nonces (ReasonReplayCacheFull) instead of
// evicting unexpired ones, because eviction would reopen the replay hole.
type ReplayWindow struct {
	capacity int
	seen     map[ReplayKey]int64 // key -> expiry, unix nanoseconds
	exp      expiryHeap
}

// NewReplayWindow holds at most capacity unexpired nonces (1..1<<26).
func NewReplayWindow(capacity int) (*ReplayWindow, error) {
	if capacity < 1 || capacity > 1<<26 {
		return nil, fmt.Errorf("wire: replay window capacity = %d, want 1..%d", capacity, 1<<26)
	}
	return &ReplayWindow{capacity: capacity, seen: make(map[ReplayKey]int64)}, nil
}

// Add records key until the instant until. It returns ReasonReplayed if key
// is already held, and ReasonReplayCacheFull if the window is full of
// entries that have not yet expired at now. Entries whose until is before
// now are dropped first; a key whose until is already past is not recorded.
func (w *ReplayWindow) Add(key ReplayKey, until, now time.Time) error {
	w.Expire(now)
	if _, ok := w.seen[key]; ok {
		return fail(ReasonReplayed, "nonce already seen in the window")
	}
	u := until.UnixNano()
	if u < now.UnixNano() {
		return nil
	}
	if len(w.seen) >= w.capacity {
		return fail(ReasonReplayCacheFull, "replay window holds %d unexpired nonces", len(w.seen))
	}
	w.seen[key] = u
	heap.Push(&w.exp, entry{until: u, key: key})
	return nil
}

// Expire drops every entry whose until is before now.
func (w *ReplayWindow) Expire(now time.Time) {
	n := now.UnixNano()
	for len(w.exp) > 0 && w.exp[0].until < n {
		e := heap.Pop(&w.exp).(entry)
		delete(w.seen, e.key)
	}
}

// Len returns the number of entries held (expired ones included until the
// next Add or Expire).
func (w *ReplayWindow) Len() int { return len(w.seen) }

type entry struct {
	until int64
	key   ReplayKey
}

type expiryHeap []entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until < h[j].until }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
