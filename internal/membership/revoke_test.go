package membership

import (
	"errors"
	"strings"
	"testing"
)

func TestRevocationRoundTripAndRefusals(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	r, txt, err := SignRevocation(k, t0, "laptop stolen")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRevocation(txt)
	if err != nil || got != r {
		t.Fatalf("ParseRevocation = %+v, %v", got, err)
	}
	st, err := ParseAdmission(txt)
	if err != nil || st.Kind != KindRevoke || st.Revocation.Key != k.Public() {
		t.Fatalf("ParseStatement = %+v, %v", st, err)
	}
	for _, reason := range []string{"bidi \u202e trick", "new\nline", strings.Repeat("x", MaxRevokeReason+1)} {
		if _, _, err := SignRevocation(k, t0, reason); !errors.Is(err, ErrMalformed) {
			t.Errorf("reason %q: %v, want ErrMalformed", reason, err)
		}
	}
	// Only the key itself can revoke it.
	body := r.body()
	forged := encodeText(RevokePrefix, body, other.Sign(signingInput(KindRevoke, body)))
	if _, err := ParseRevocation(forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("revocation by another key: %v", err)
	}
	// A rotation signature by the same key is not a revocation.
	rot := encodeText(RevokePrefix, body, k.Sign(signingInput(KindRotate, body)))
	if _, err := ParseRevocation(rot); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("cross-kind signature: %v", err)
	}
}
