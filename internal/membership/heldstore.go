package membership

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// HeldRecord is one held statement as a node persists it: the signed
// statement itself, who relayed it and when it was held. The node keeps
// them in its admission ledger, so a restart does not forget a revocation
// that must beat a later admission (docs/adr/0021, amendment).
type HeldRecord struct {
	Text    string    `json:"text"`
	Relayer string    `json:"relayer,omitempty"` // did:key; empty: the shared allowance
	At      time.Time `json:"at"`
}

// ErrHeldRecordDropped marks a persisted held statement Restore did not hold
// again: malformed, not verifying, a duplicate, or over its relayer's
// allowance or the store's bound as they were when it was held.
var ErrHeldRecordDropped = errors.New("membership: persisted held statement dropped")

// Records returns the held revocations, oldest first.
func (h *Held) Records() []HeldRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]HeldRecord, 0, len(h.byKey))
	for _, hr := range h.byKey {
		out = append(out, heldRecord(hr.text, hr.relayer, hr.at))
	}
	sortRecords(out)
	return out
}

// Restore holds recs again, oldest first, as Hold would have when each
// arrived: each signature is verified again, and the relayer allowances
// and the bound apply as they did then, so an edited ledger cannot hold
// more than the live node would have. A revocation for which skip reports
// true (the ledger already has it) is left out quietly. It returns how
// many were held and why each other one was dropped.
func (h *Held) Restore(recs []HeldRecord, now time.Time, skip func(Revocation) bool) (int, []error) {
	var held int
	var dropped []error
	for i, rec := range sortedRecords(recs) {
		relayer, at, err := rec.check(now)
		var r Revocation
		if err == nil {
			r, err = ParseRevocation(rec.Text)
		}
		if err == nil && skip != nil && skip(r) {
			continue
		}
		if err == nil {
			err = holdErr(h.Hold(relayer, r, rec.Text, at))
		}
		if err != nil {
			dropped = append(dropped, fmt.Errorf("%w: revocation %d: %w", ErrHeldRecordDropped, i, err))
			continue
		}
		held++
	}
	return held, dropped
}

// Records returns the held rotations, oldest first.
func (h *HeldRotations) Records() []HeldRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]HeldRecord, 0, len(h.byText))
	for text, hr := range h.byText {
		out = append(out, heldRecord(text, hr.relayer, hr.at))
	}
	sortRecords(out)
	return out
}

// Restore is Held.Restore for rotations; skip sees each rotation's text.
func (h *HeldRotations) Restore(recs []HeldRecord, now time.Time, skip func(text string) bool) (int, []error) {
	var held int
	var dropped []error
	for i, rec := range sortedRecords(recs) {
		relayer, at, err := rec.check(now)
		var r Rotation
		if err == nil {
			r, err = ParseRotation(rec.Text)
		}
		if err == nil && skip != nil && skip(rec.Text) {
			continue
		}
		if err == nil {
			err = holdErr(h.Hold(relayer, r, rec.Text, at))
		}
		if err != nil {
			dropped = append(dropped, fmt.Errorf("%w: rotation %d: %w", ErrHeldRecordDropped, i, err))
			continue
		}
		held++
	}
	return held, dropped
}

func heldRecord(text string, relayer identity.PublicKey, at time.Time) HeldRecord {
	rec := HeldRecord{Text: text, At: at.UTC()}
	if !relayer.IsZero() {
		rec.Relayer = relayer.String()
	}
	return rec
}

// check returns rec's relayer and arrival time; one after now (the clock
// went back) counts as now.
func (rec HeldRecord) check(now time.Time) (identity.PublicKey, time.Time, error) {
	var relayer identity.PublicKey
	if rec.Relayer != "" {
		k, err := identity.ParseDID(rec.Relayer)
		if err != nil {
			return relayer, time.Time{}, fmt.Errorf("relayer: %w", err)
		}
		relayer = k
	}
	if rec.At.IsZero() {
		return relayer, time.Time{}, errors.New("no arrival time")
	}
	if rec.At.After(now) {
		return relayer, now, nil
	}
	return relayer, rec.At, nil
}

func holdErr(res HoldResult) error {
	switch res {
	case HoldAlready:
		return errors.New("held twice")
	case HoldOverRate:
		return errors.New("over its relayer's allowance")
	}
	return nil
}

func sortRecords(recs []HeldRecord) {
	slices.SortStableFunc(recs, func(a, b HeldRecord) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Text, b.Text))
	})
}

func sortedRecords(recs []HeldRecord) []HeldRecord {
	out := slices.Clone(recs)
	slices.SortStableFunc(out, func(a, b HeldRecord) int { return a.At.Compare(b.At) })
	return out
}
