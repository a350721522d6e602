package membership

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestRotationRoundTripAndRefusals(t *testing.T) {
	old, next, other := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	r, txt, err := SignRotation(old, next, t0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRotation(txt)
	if err != nil || got != r || got.Old != old.Public() || got.New != next.Public() {
		t.Fatalf("ParseRotation = %+v, %v", got, err)
	}
	if _, _, err := SignRotation(old, old, t0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("rotation onto the same key: %v", err)
	}
	body := r.body()
	msg := signingInput(KindRotate, body)
	// Rotating onto a key one does not hold: the new key's signature is missing.
	hijack := encodeText(RotatePrefix, body, old.Sign(msg), other.Sign(msg))
	// A thief without the old key cannot hand it over.
	noOld := encodeText(RotatePrefix, body, other.Sign(msg), next.Sign(msg))
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(txt, RotatePrefix+"."))
	swapped := bytes.Clone(raw)
	copy(swapped[1:33], raw[33:65])
	copy(swapped[33:65], raw[1:33])
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"new key did not sign", hijack, ErrBadSignature},
		{"old key did not sign", noOld, ErrBadSignature},
		{"keys swapped", RotatePrefix + "." + base64.RawURLEncoding.EncodeToString(swapped), ErrBadSignature},
		{"short", txt[:len(txt)-2], ErrMalformed},
		{"revocation prefix", strings.Replace(txt, "rotate", "revoke", 1), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseRotation(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
