package membership

import (
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// TestHeldFloodIsBoundedAndFair: a member relays 10,000 revocations of
// fresh keys, slowly enough that its allowance never runs
// out. The store stays at its bound, and the flood displaces only the
// flooder's own revocations: an honest relayer's one, held before the flood,
// is still held (its key still refused) after it.
func TestHeldFloodIsBoundedAndFair(t *testing.T) {
	t.Parallel()
	const max = 64
	flood := 10_000
	if raceEnabled {
		flood = 2_000 // deriving keys is 10x slower; the bound is the same
	}
	h, err := NewHeld(HeldConfig{Max: max, Burst: 8, Refill: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	flooder, honest := testKey(t, 1).Public(), testKey(t, 2).Public()
	legit, text := signedRevocation(t, 3)
	now := t0
	if got := h.Hold(honest, legit, text, now); got != HoldNew {
		t.Fatalf("honest relayer's revocation: %v, want HoldNew", got)
	}
	for i := range flood {
		now = now.Add(time.Second)                                    // one refill per revocation: never over the rate
		r := Revocation{Key: testKey(t, 1000+i).Public(), Issued: t0} // Hold trusts its caller to have verified it
		if got := h.Hold(flooder, r, "", now); got != HoldNew {
			t.Fatalf("flood revocation %d: %v, want HoldNew", i, got)
		}
		if h.Len() > max {
			t.Fatalf("after %d revocations %d held, want at most %d", i+1, h.Len(), max)
		}
	}
	if !h.Revoked(legit.Key) || h.HeldBy(honest) != 1 {
		t.Errorf("the honest relayer's revocation was displaced by the flood (held by it: %d)", h.HeldBy(honest))
	}
	if h.HeldBy(flooder) != max-1 {
		t.Errorf("flooder holds %d, want the rest of the store, %d", h.HeldBy(flooder), max-1)
	}
	// The newest of the flood are the ones held.
	if !h.Revoked(testKey(t, 1000+flood-1).Public()) {
		t.Error("the newest revocation of the flood is not held")
	}
}

// TestHeldRelayerAllowance: a relayer gets Burst revocations held, then one
// per Refill; more are refused (HoldOverRate), not held, and cost no other
// relayer its allowance. A revocation held already is not charged again.
func TestHeldRelayerAllowance(t *testing.T) {
	t.Parallel()
	h, err := NewHeld(HeldConfig{Max: 100, Burst: 4, Refill: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	flooder, other := testKey(t, 1).Public(), testKey(t, 2).Public()
	var keys []identity.PublicKey // 50 distinct, each sent 20 times
	for i := range 50 {
		keys = append(keys, testKey(t, 100+i).Public())
	}
	var held, over int
	for i := range 1000 {
		switch h.Hold(flooder, Revocation{Key: keys[i%50], Issued: t0}, "", t0) {
		case HoldNew:
			held++
		case HoldOverRate:
			over++
		}
	}
	if held != 4 || h.Len() != 4 {
		t.Fatalf("held %d (store %d), want the burst of 4", held, h.Len())
	}
	if over == 0 {
		t.Fatal("no revocation refused over the rate")
	}
	if got := h.Hold(flooder, Revocation{Key: keys[0], Issued: t0}, "", t0); got != HoldAlready { // not news, not charged
		t.Errorf("a held revocation again: %v, want HoldAlready", got)
	}
	r, txt := signedRevocation(t, 500)
	if got := h.Hold(other, r, txt, t0); got != HoldNew {
		t.Errorf("another relayer: %v, want HoldNew: allowances are per relayer", got)
	}
	r, txt = signedRevocation(t, 501)
	if got := h.Hold(flooder, r, txt, t0.Add(time.Minute)); got != HoldNew {
		t.Errorf("after one refill: %v, want HoldNew", got)
	}
	if got, by, ok := h.Take(r.Key); !ok || got != txt || by != flooder {
		t.Fatalf("Take = %q, %s, %v; want the text held and its relayer", got, by.Short(), ok)
	}
	if h.Revoked(r.Key) || h.HeldBy(flooder) != 4 {
		t.Errorf("taken revocation still held (flooder holds %d, want 4)", h.HeldBy(flooder))
	}
}

// TestHeldConfigBounds: every field is checked and named.
func TestHeldConfigBounds(t *testing.T) {
	t.Parallel()
	for _, c := range []HeldConfig{{Max: -1}, {Max: 1 << 17}, {Max: 8, Burst: 9}, {Refill: time.Millisecond}, {Refill: 48 * time.Hour}} {
		if _, err := NewHeld(c); err == nil {
			t.Errorf("NewHeld(%+v) accepted", c)
		}
	}
	h, err := NewHeld(HeldConfig{})
	if err != nil || h.cfg.Max != MaxHeld || h.cfg.Burst != 32 || h.cfg.Refill != time.Minute {
		t.Errorf("defaults: %+v, %v", h.cfg, err)
	}
}

// signedRevocation is the signed revocation of testKey(n).
func signedRevocation(tb testing.TB, n int) (Revocation, string) {
	tb.Helper()
	r, txt, err := SignRevocation(testKey(tb, n), t0, "")
	if err != nil {
		tb.Fatal(err)
	}
	return r, txt
}

// TestAdmissionKindsNamePublisher: a statement that arrives by gossip is
// handed on with the key that signed its envelope, the member accountable for
// putting it into gossip (a node holds unknown keys' revocations against it).
func TestAdmissionKindsNamePublisher(t *testing.T) {
	t.Parallel()
	publisher := testKey(t, 1)
	_, txt := signedRevocation(t, 2)
	st, err := ParseAdmission(txt)
	if err != nil || !st.Publisher.IsZero() {
		t.Fatalf("ParseAdmission: publisher %v, err %v; want none", st.Publisher, err)
	}
	env, err := AdmissionEnvelope(publisher, st)
	if err != nil {
		t.Fatal(err)
	}
	var got AdmissionStatement
	kinds := AdmissionKinds(func(s AdmissionStatement) { got = s })
	k := kinds[GossipKindRevoke]
	if err := k.Validate(env); err != nil {
		t.Fatal(err)
	}
	k.Accept(env)
	if got.Publisher != publisher.Public() || got.Text != txt {
		t.Errorf("accepted %q from publisher %s, want the revocation from %s", got.Text, got.Publisher.Short(), publisher.Public().Short())
	}
}
