package identity

import (
	"bytes"
	"testing"
)

// Signing asks for the signer's did:key on every call: it is derived once.
func TestPrivateKeyPublicIsCached(t *testing.T) {
	k, err := FromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	want := encodeDID(k.Public().k)
	if got := k.Public().String(); got != want {
		t.Fatalf("Public().String() = %s, want %s", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { _ = k.Public().String() }); n != 0 {
		t.Fatalf("Public().String() allocates %v times per call, want 0", n)
	}
	if !(PrivateKey{}).Public().IsZero() {
		t.Fatal("zero key has a public key")
	}
}
