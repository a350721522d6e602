package membership

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// TestHeldRecordsRoundTrip: held revocations and rotations, written out as
// records (through JSON, as the node's ledger does) and restored into fresh
// stores, are held again with their relayer: the revoked key is refused and
// the rotation found by either key.
func TestHeldRecordsRoundTrip(t *testing.T) {
	t.Parallel()
	relayer := testKey(t, 1).Public()
	h, _ := NewHeld(HeldConfig{})
	r, txt := signedRevocation(t, 2)
	h.Hold(relayer, r, txt, t0)
	shared, txt2 := signedRevocation(t, 3)
	h.Hold(relayerZero, shared, txt2, t0.Add(time.Second))
	hr, _ := NewHeldRotations(HeldConfig{})
	rot, rtxt, err := SignRotation(testKey(t, 4), testKey(t, 5), t0)
	if err != nil {
		t.Fatal(err)
	}
	hr.Hold(relayer, rot, rtxt, t0)

	var revs, rots []HeldRecord
	roundTrip(t, h.Records(), &revs)
	roundTrip(t, hr.Records(), &rots)

	h2, _ := NewHeld(HeldConfig{})
	if n, dropped := h2.Restore(revs, t0.Add(time.Hour), nil); n != 2 || len(dropped) != 0 {
		t.Fatalf("Restore = %d, %v; want both held", n, dropped)
	}
	if !h2.Revoked(r.Key) || !h2.Revoked(shared.Key) || h2.HeldBy(relayer) != 1 || h2.HeldBy(relayerZero) != 1 {
		t.Errorf("restored store: revoked %v %v, held by relayer %d, shared %d", h2.Revoked(r.Key), h2.Revoked(shared.Key),
			h2.HeldBy(relayer), h2.HeldBy(relayerZero))
	}
	if got, by, ok := h2.Take(r.Key); !ok || got != txt || by != relayer {
		t.Errorf("Take after restore = %q, %s, %v; want the text and its relayer", got, by.Short(), ok)
	}
	hr2, _ := NewHeldRotations(HeldConfig{})
	if n, dropped := hr2.Restore(rots, t0.Add(time.Hour), nil); n != 1 || len(dropped) != 0 {
		t.Fatalf("rotations Restore = %d, %v; want it held", n, dropped)
	}
	if !hr2.Names(rot.Old) || !hr2.Names(rot.New) || hr2.HeldBy(relayer) != 1 {
		t.Error("restored rotation not found by its keys or relayer")
	}
	// skip leaves out what the ledger already has.
	h3, _ := NewHeld(HeldConfig{})
	if n, dropped := h3.Restore(revs, t0, func(x Revocation) bool { return x.Key == r.Key }); n != 1 || len(dropped) != 0 || h3.Revoked(r.Key) {
		t.Errorf("Restore with skip = %d, %v; want the skipped one left out quietly", n, dropped)
	}
}

var relayerZero identity.PublicKey // the shared allowance

func roundTrip(t *testing.T, in []HeldRecord, out *[]HeldRecord) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

// TestHeldRestoreDropsBadRecords: an edited or damaged ledger cannot make a
// node hold what it would not have held: a record whose signature does not
// verify, that is not a revocation, names no valid relayer, has no arrival
// time or comes twice is dropped with a reason, and the relayer allowance
// applies as it did when the records arrived. A record stamped in the future
// counts as arrived now.
func TestHeldRestoreDropsBadRecords(t *testing.T) {
	t.Parallel()
	relayer := testKey(t, 1).Public()
	good, gtxt := signedRevocation(t, 2)
	_, other := signedRevocation(t, 3)
	// Flip one character of the signature part: the text still decodes.
	forged := []byte(other)
	i := len(forged) - 5
	forged[i] = map[bool]byte{true: 'B', false: 'A'}[forged[i] == 'A']
	_, rtxt, _ := SignRotation(testKey(t, 4), testKey(t, 5), t0)
	recs := []HeldRecord{
		{Text: gtxt, Relayer: relayer.String(), At: t0.Add(48 * time.Hour)}, // future: counts as now
		{Text: gtxt, Relayer: relayer.String(), At: t0.Add(72 * time.Hour)}, // twice
		{Text: string(forged), Relayer: relayer.String(), At: t0},
		{Text: rtxt, Relayer: relayer.String(), At: t0}, // a rotation among revocations
		{Text: "treaty-revoke-v1.\u202egarbage", At: t0},
		{Text: gtxt, Relayer: "did:key:zNotAKey", At: t0},
		{Text: gtxt, Relayer: relayer.String()}, // no arrival time
	}
	h, _ := NewHeld(HeldConfig{})
	n, dropped := h.Restore(recs, t0.Add(time.Hour), nil)
	if n != 1 || len(dropped) != len(recs)-1 {
		t.Fatalf("Restore = %d held, %d dropped (%v); want 1 and %d", n, len(dropped), dropped, len(recs)-1)
	}
	for _, err := range dropped {
		if !errors.Is(err, ErrHeldRecordDropped) {
			t.Errorf("drop reason %v is not ErrHeldRecordDropped", err)
		}
	}
	if !h.Revoked(good.Key) {
		t.Error("the one good record is not held")
	}
	if recs := h.Records(); len(recs) != 1 || !recs[0].At.Equal(t0.Add(time.Hour)) {
		t.Errorf("records after restore %+v, want the good one, arrived at restore time", recs)
	}

	// 100 valid records of one relayer, arrived at once: only its burst is held again.
	var burst []HeldRecord
	for k := range 100 {
		_, txt := signedRevocation(t, 100+k)
		burst = append(burst, HeldRecord{Text: txt, Relayer: relayer.String(), At: t0})
	}
	h2, _ := NewHeld(HeldConfig{Burst: 8})
	n, dropped = h2.Restore(burst, t0.Add(time.Hour), nil)
	if n != 8 || len(dropped) != 92 || !strings.Contains(dropped[0].Error(), "allowance") {
		t.Errorf("Restore of 100 at once = %d held, %d dropped; want the burst of 8 held", n, len(dropped))
	}
}

// FuzzHeldRestore: whatever JSON the ledger's held records hold, Restore
// never panics, holds only statements that verify, and stays within its
// bounds.
func FuzzHeldRestore(f *testing.F) {
	_, txt := signedRevocation(f, 2)
	_, rtxt, _ := SignRotation(testKey(f, 3), testKey(f, 4), t0)
	for _, recs := range [][]HeldRecord{
		{{Text: txt, Relayer: testKey(f, 1).Public().String(), At: t0}},
		{{Text: rtxt, At: t0}, {Text: txt, At: t0.Add(time.Hour)}},
		{{Text: txt[:len(txt)-4], At: t0}},
	} {
		b, _ := json.Marshal(recs)
		f.Add(b)
	}
	f.Add([]byte(`[{"text":"","at":"0001-01-01T00:00:00Z"}]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var recs []HeldRecord
		if json.Unmarshal(in, &recs) != nil {
			return
		}
		h, _ := NewHeld(HeldConfig{Max: 4, Burst: 2})
		n, dropped := h.Restore(recs, t0, nil)
		if n+len(dropped) > len(recs) || h.Len() > 4 || h.Len() > n {
			t.Fatalf("restored %d, dropped %d of %d; %d held", n, len(dropped), len(recs), h.Len())
		}
		for _, rec := range h.Records() {
			if _, err := ParseRevocation(rec.Text); err != nil {
				t.Fatalf("held a record that does not verify: %v", err)
			}
		}
		hr, _ := NewHeldRotations(HeldConfig{Max: 4, Burst: 2})
		hr.Restore(recs, t0, nil)
		for _, rec := range hr.Records() {
			if _, err := ParseRotation(rec.Text); err != nil {
				t.Fatalf("held a rotation that does not verify: %v", err)
			}
		}
	})
}
