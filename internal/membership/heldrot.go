package membership

import (
	"fmt"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// HeldRotations keeps, in memory, the rotations a node has no use for
// yet: neither key is one it knows (docs/adr/0022-rotations-of-unknown-keys.md).
// Any member can mint those at will (a rotation signed by two keys it made is
// valid), but one may still matter later: the second link of a chain whose
// first link has not arrived yet, or the rotation of a revoked key whose new
// key has not turned up yet. A node holds them, indexed by both keys, and
// applies one for good once either of its keys turns up. Records and Restore
// let the node keep them across a restart (heldstore.go).
//
// Bounds are those of Held: at most HeldConfig.Max rotations in all; each
// relayer has an allowance of HeldConfig.Burst, refilled by one every
// HeldConfig.Refill, and a rotation over it is not held (HoldOverRate); when
// full, the relayer holding the most gives up its oldest.
type HeldRotations struct {
	cfg HeldConfig

	mu     sync.Mutex
	byText map[string]heldRotation
	byKey  map[identity.PublicKey][]string // texts of the held rotations naming the key, old or new
	quota  relayerQuota[string]            // the texts each relayer holds
}

type heldRotation struct {
	r       Rotation
	relayer identity.PublicKey
	at      time.Time // when it was held
}

// NewHeldRotations validates cfg (defaults and ranges as NewHeld) and
// returns an empty HeldRotations.
func NewHeldRotations(cfg HeldConfig) (*HeldRotations, error) {
	h, err := NewHeld(cfg) // the same defaults and checks
	if err != nil {
		return nil, fmt.Errorf("%w (held rotations)", err)
	}
	return &HeldRotations{cfg: h.cfg, byText: map[string]heldRotation{}, byKey: map[identity.PublicKey][]string{},
		quota: newRelayerQuota[string](h.cfg)}, nil
}

// Hold holds r (whose canonical text is text), relayed by relayer (zero: any
// relayer the caller cannot hold accountable, which then share one
// allowance), at now.
func (h *HeldRotations) Hold(relayer identity.PublicKey, r Rotation, text string, now time.Time) HoldResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.byText[text]; ok {
		return HoldAlready
	}
	if !h.quota.spend(relayer, now) {
		return HoldOverRate
	}
	if len(h.byText) >= h.cfg.Max {
		if t, ok := h.quota.victim(); ok {
			h.dropLocked(t)
		}
	}
	h.byText[text] = heldRotation{r: r, relayer: relayer, at: now}
	h.byKey[r.Old] = append(h.byKey[r.Old], text)
	h.byKey[r.New] = append(h.byKey[r.New], text)
	h.quota.add(relayer, text)
	return HoldNew
}

// dropLocked forgets the held rotation text everywhere it is indexed.
func (h *HeldRotations) dropLocked(text string) (heldRotation, bool) {
	hr, ok := h.byText[text]
	if !ok {
		return heldRotation{}, false
	}
	delete(h.byText, text)
	for _, k := range []identity.PublicKey{hr.r.Old, hr.r.New} {
		h.byKey[k] = without(h.byKey[k], text)
		if len(h.byKey[k]) == 0 {
			delete(h.byKey, k)
		}
	}
	h.quota.remove(hr.relayer, text)
	return hr, true
}

// HeldRotation is a rotation given back by Take.
type HeldRotation struct {
	Rotation Rotation
	Text     string
	Relayer  identity.PublicKey
}

// Take removes and returns the held rotations naming k (as old or new key),
// oldest first, when the caller comes to know k and applies them for good.
func (h *HeldRotations) Take(k identity.PublicKey) []HeldRotation {
	h.mu.Lock()
	defer h.mu.Unlock()
	texts := append([]string(nil), h.byKey[k]...)
	out := make([]HeldRotation, 0, len(texts))
	for _, text := range texts {
		if hr, ok := h.dropLocked(text); ok {
			out = append(out, HeldRotation{Rotation: hr.r, Text: text, Relayer: hr.relayer})
		}
	}
	return out
}

// Drop forgets the held rotation text, if it is held, and reports whether
// it was (the caller could not persist it).
func (h *HeldRotations) Drop(text string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.dropLocked(text)
	return ok
}

// Names reports whether a held rotation names k, as old or new key.
func (h *HeldRotations) Names(k identity.PublicKey) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byKey[k]) > 0
}

// OldKeysTo returns the old keys of the held rotations to k.
func (h *HeldRotations) OldKeysTo(k identity.PublicKey) []identity.PublicKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []identity.PublicKey
	for _, text := range h.byKey[k] {
		if hr := h.byText[text]; hr.r.New == k {
			out = append(out, hr.r.Old)
		}
	}
	return out
}

// Len is how many rotations are held.
func (h *HeldRotations) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byText)
}

// HeldBy is how many of the held rotations relayer relayed.
func (h *HeldRotations) HeldBy(relayer identity.PublicKey) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.quota.count(relayer)
}
