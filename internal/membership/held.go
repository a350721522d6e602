package membership

import (
	"fmt"
	"sync"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Held keeps, in memory, the revocations of keys a node does not know
// (not itself, not in its peer book, not in its ledger). Any member can mint
// those at will: a revocation signed by a fresh key is valid by
// construction. They still matter, since a revocation must beat an admission
// of its key that arrives later, so a node holds them (the key is refused
// while held) but does not write them to its ledger, pass them on, or audit
// each one (docs/adr/0021-revocations-of-unknown-keys.md). Records and
// Restore let the node keep them across a restart (heldstore.go).
//
// Bounds: at most HeldConfig.Max revocations in all. Each relayer has an
// allowance of HeldConfig.Burst revocations, refilled by one every
// HeldConfig.Refill; a revocation over it is not held (OverRate). When the
// store is full, the relayer holding the most gives up its oldest, so that
// one relayer's flood displaces its own revocations before anyone else's.
// A revocation of a key the node knows never goes through Held.
type Held struct {
	cfg HeldConfig

	mu    sync.Mutex
	byKey map[identity.PublicKey]heldRevocation
	quota relayerQuota[identity.PublicKey] // the revoked keys each relayer holds
}

// HeldConfig bounds a Held; a zero field takes the default noted on it.
type HeldConfig struct {
	Max    int           // revocations held in all; zero: MaxHeld; allowed [1, 65536]
	Burst  int           // revocations a relayer may have held at once before its allowance refills; zero: 32; allowed [1, Max]
	Refill time.Duration // one more of a relayer's allowance per Refill; zero: 1 min; allowed [1s, 24h]
}

// MaxHeld is the default bound of revocations of unknown keys held.
const MaxHeld = 4096

type heldRevocation struct {
	text    string
	relayer identity.PublicKey
	at      time.Time // when it was held
}

// HoldResult says what Hold did with a revocation.
type HoldResult int

const (
	// HoldNew: the revocation is held from now on.
	HoldNew HoldResult = iota + 1
	// HoldAlready: a revocation of that key was held already; nothing changed.
	HoldAlready
	// HoldOverRate: the relayer's allowance is spent; the revocation is not held.
	HoldOverRate
)

// NewHeld validates cfg and returns an empty Held.
func NewHeld(cfg HeldConfig) (*Held, error) {
	if cfg.Max == 0 {
		cfg.Max = MaxHeld
	}
	if cfg.Burst == 0 {
		cfg.Burst = min(32, cfg.Max)
	}
	if cfg.Refill == 0 {
		cfg.Refill = time.Minute
	}
	switch {
	case cfg.Max < 1 || cfg.Max > 1<<16:
		return nil, fmt.Errorf("membership: HeldConfig.Max %d out of range [1, 65536]", cfg.Max)
	case cfg.Burst < 1 || cfg.Burst > cfg.Max:
		return nil, fmt.Errorf("membership: HeldConfig.Burst %d out of range [1, %d]", cfg.Burst, cfg.Max)
	case cfg.Refill < time.Second || cfg.Refill > 24*time.Hour:
		return nil, fmt.Errorf("membership: HeldConfig.Refill %s out of range [1s, 24h]", cfg.Refill)
	}
	return &Held{cfg: cfg, byKey: map[identity.PublicKey]heldRevocation{}, quota: newRelayerQuota[identity.PublicKey](cfg)}, nil
}

// Hold holds r (whose canonical text is text), relayed by relayer (zero: any
// relayer the caller cannot hold accountable, which then share one
// allowance), at now.
func (h *Held) Hold(relayer identity.PublicKey, r Revocation, text string, now time.Time) HoldResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.byKey[r.Key]; ok {
		return HoldAlready
	}
	if !h.quota.spend(relayer, now) {
		return HoldOverRate
	}
	if len(h.byKey) >= h.cfg.Max {
		if k, ok := h.quota.victim(); ok {
			h.dropLocked(k)
		}
	}
	h.byKey[r.Key] = heldRevocation{text: text, relayer: relayer, at: now}
	h.quota.add(relayer, r.Key)
	return HoldNew
}

// Revoked reports whether a revocation of k is held.
func (h *Held) Revoked(k identity.PublicKey) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.byKey[k]
	return ok
}

// Take removes and returns the held revocation of k and who relayed it, when
// the caller comes to know k and applies it for good.
func (h *Held) Take(k identity.PublicKey) (text string, relayer identity.PublicKey, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hr, ok := h.dropLocked(k)
	return hr.text, hr.relayer, ok
}

// dropLocked forgets the revocation of k held.
func (h *Held) dropLocked(k identity.PublicKey) (heldRevocation, bool) {
	hr, ok := h.byKey[k]
	if ok {
		delete(h.byKey, k)
		h.quota.remove(hr.relayer, k)
	}
	return hr, ok
}

// Len is how many revocations are held.
func (h *Held) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byKey)
}

// HeldBy is how many of the held revocations relayer relayed.
func (h *Held) HeldBy(relayer identity.PublicKey) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.quota.count(relayer)
}
