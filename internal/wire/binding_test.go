package wire

import (
	"net/http"
	"testing"
	"time"
)

// TestRefusalBindingNeedsThePeersSignature: a refusal of a request that did
// not pass VerifyRequest is bound to the request's own signature only when
// the handshake peer made that signature. A delegation hop hands the next
// callee the caller's signature (Treaty-Chain carries it); mallory, holding
// alice's signature of a request bob served, sends it to bob under her own
// handshake. Were bob's refusal bound to it, mallory would hold a receipt,
// valid offline, saying bob refused alice's request.
func TestRefusalBindingNeedsThePeersSignature(t *testing.T) {
	k := testKeys(t)
	v := newVerifier(t, k.bob.Public())
	r, sent := signedRequest(t, k, testBody, nil)
	if _, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0); err != nil {
		t.Fatal(err) // bob served alice's request
	}

	refuse := func(sr *http.Request, peer keys, verr error) (*http.Response, []byte) {
		t.Helper()
		body := EncodeFailure(FailureOf("wire", verr))
		h := http.Header{}
		if err := SignResponse(h, StatusFor(verr), body, v.UnverifiedRequest(sr, peer.alice.Public()), k.bob, t0); err != nil {
			t.Fatal(err)
		}
		return &http.Response{StatusCode: StatusFor(verr), Header: h}, body
	}
	as := func(key keys) keys { return keys{alice: key.mallory} }

	// Mallory replays alice's headers under her own handshake.
	sr := serverView(t, r)
	_, verr := v.VerifyRequest(sr, testBody, k.mallory.Public(), t0)
	wantReason(t, verr, ReasonKeyMismatch)
	resp, body := refuse(sr, as(k), verr)
	rc, err := VerifyResponse(resp, body, sent, k.bob.Public())
	if err == nil {
		t.Fatalf("mallory obtained bob's refusal of alice's request: %+v", rc)
	}
	// Mallory names herself in keyid but keeps alice's signature.
	sr = serverView(t, r)
	sr.Header.Set(HeaderSignatureInput, replaceOnce(t, sent.SignatureInput, k.alice.Public().String(), k.mallory.Public().String()))
	_, verr = v.VerifyRequest(sr, testBody, k.mallory.Public(), t0)
	wantReason(t, verr, ReasonBadSignature)
	resp, body = refuse(sr, as(k), verr)
	if _, err := VerifyResponse(resp, body, sent, k.bob.Public()); err == nil {
		t.Fatal("a refusal under mallory's keyid is bound to alice's signature")
	}

	// Alice's own stale request is refused, and the refusal is hers to check.
	r2, sent2 := signedRequest(t, k, testBody, func(p *SignParams) { p.Now = t0.Add(-time.Hour); p.Rand = seededRand(2) })
	sr = serverView(t, r2)
	_, verr = v.VerifyRequest(sr, testBody, k.alice.Public(), t0)
	wantReason(t, verr, ReasonExpired)
	resp, body = refuse(sr, k, verr)
	if _, err := VerifyResponse(resp, body, sent2, k.bob.Public()); err != nil {
		t.Fatalf("refusal of alice's stale request is not bound to it: %v", err)
	}
	// So is the refusal of a replay of it (the signature is alice's).
	sr = serverView(t, r)
	_, verr = v.VerifyRequest(sr, testBody, k.alice.Public(), t0)
	wantReason(t, verr, ReasonReplayed)
	resp, body = refuse(sr, k, verr)
	if _, err := VerifyResponse(resp, body, sent, k.bob.Public()); err != nil {
		t.Fatalf("refusal of alice's replay is not bound to it: %v", err)
	}
	// A changed covered header breaks alice's signature: unbound.
	sr = serverView(t, r2)
	sr.Header.Set(HeaderCapability, "admin")
	if got := v.UnverifiedRequest(sr, k.alice.Public()); got.Signature != NoRequestSignature {
		t.Fatalf("a request whose signature does not verify is bound to %q", got.Signature)
	}
	if got := v.UnverifiedRequest(nil, k.alice.Public()); got.Signature != NoRequestSignature {
		t.Fatalf("nil request bound to %q", got.Signature)
	}
}
