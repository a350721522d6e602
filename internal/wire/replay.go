package wire

import (
	"container/heap"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
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
//
// Each peer holds at most perPeer of the capacity, so a peer that fills its
// share has only its own requests refused (ReasonReplayCacheFull); the others
// keep theirs. A full window or share refuses new nonces instead of evicting
// unexpired ones, because eviction would reopen the replay hole.
type ReplayWindow struct {
	capacity int
	perPeer  int
	seen     map[ReplayKey]held
	shares   map[identity.PublicKey]*share
	exp      expiryHeap
}

// held is one remembered nonce: its expiry and the share it counts against.
type held struct {
	until int64 // unix nanoseconds
	share *share
}

// share counts one peer's nonces in the window.
type share struct {
	peer identity.PublicKey
	n    int
}

// NewReplayWindow holds at most capacity unexpired nonces (1..1<<26), and at
// most perPeer (1..capacity) of them from any one peer.
func NewReplayWindow(capacity, perPeer int) (*ReplayWindow, error) {
	if capacity < 1 || capacity > 1<<26 {
		return nil, fmt.Errorf("wire: replay window capacity = %d, want 1..%d", capacity, 1<<26)
	}
	if perPeer < 1 || perPeer > capacity {
		return nil, fmt.Errorf("wire: replay window per-peer share = %d, want 1..%d", perPeer, capacity)
	}
	return &ReplayWindow{capacity: capacity, perPeer: perPeer, seen: make(map[ReplayKey]held), shares: make(map[identity.PublicKey]*share)}, nil
}

// Add records peer's key until the instant until. It returns ReasonReplayed
// if key is already held, and ReasonReplayCacheFull if the window, or peer's
// share of it, is full of entries that have not yet expired at now. Entries
// whose until is before now are dropped first; a key whose until is already
// past is not recorded.
func (w *ReplayWindow) Add(peer identity.PublicKey, key ReplayKey, until, now time.Time) error {
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
	s := w.shares[peer]
	if s == nil {
		s = &share{peer: peer}
		w.shares[peer] = s
	}
	if s.n >= w.perPeer {
		return fail(ReasonReplayCacheFull, "this peer's share of the replay window holds %d unexpired nonces", s.n)
	}
	s.n++
	w.seen[key] = held{until: u, share: s}
	heap.Push(&w.exp, entry{until: u, key: key})
	return nil
}

// restore records peer's key until the instant until, as Add does, but
// beyond the capacity and the peer's share if need be: the entry was held
// before a restart (ReplayJournal) and dropping it would reopen the replay
// hole. A key already held keeps the later expiry.
func (w *ReplayWindow) restore(peer identity.PublicKey, key ReplayKey, until int64) {
	if h, ok := w.seen[key]; ok {
		if h.until >= until {
			return
		}
		w.drop(key, h)
	}
	s := w.shares[peer]
	if s == nil {
		s = &share{peer: peer}
		w.shares[peer] = s
	}
	s.n++
	w.seen[key] = held{until: until, share: s}
	heap.Push(&w.exp, entry{until: until, key: key})
}

// Remove forgets key, so that a request refused before it cost its sender
// anything does not burn its nonce; the request may be sent again. Removing
// a key not held does nothing.
func (w *ReplayWindow) Remove(key ReplayKey) {
	h, ok := w.seen[key]
	if !ok {
		return
	}
	w.drop(key, h)
	// The heap entry stays until its expiry; rebuild once stale entries
	// would let the heap outgrow the window.
	if len(w.exp) > 2*w.capacity {
		w.exp = w.exp[:0]
		for k, h := range w.seen {
			w.exp = append(w.exp, entry{until: h.until, key: k})
		}
		heap.Init(&w.exp)
	}
}

func (w *ReplayWindow) drop(key ReplayKey, h held) {
	delete(w.seen, key)
	if h.share.n--; h.share.n == 0 {
		delete(w.shares, h.share.peer)
	}
}

// Expire drops every entry whose until is before now.
func (w *ReplayWindow) Expire(now time.Time) {
	n := now.UnixNano()
	for len(w.exp) > 0 && w.exp[0].until < n {
		e := heap.Pop(&w.exp).(entry)
		// A removed key may have been added again with another expiry;
		// only the entry that matches the held one drops it.
		if h, ok := w.seen[e.key]; ok && h.until == e.until {
			w.drop(e.key, h)
		}
	}
}

// Len returns the number of entries held (expired ones included until the
// next Add or Expire).
func (w *ReplayWindow) Len() int { return len(w.seen) }

// PeerLen returns the number of entries peer holds.
func (w *ReplayWindow) PeerLen(peer identity.PublicKey) int {
	if s := w.shares[peer]; s != nil {
		return s.n
	}
	return 0
}

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
