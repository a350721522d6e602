package wire

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

var respBody = []byte(`{"verdict":"lgtm","comments":[]}`)

// served runs the callee side: verify the request, sign a response.
func served(t testing.TB, k keys, status int, body []byte) (Sent, *http.Response) {
	t.Helper()
	r, sent := signedRequest(t, k, testBody, nil)
	req, err := newVerifier(t, k.bob.Public()).VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if err := SignResponse(h, status, body, req, k.bob, t0); err != nil {
		t.Fatal(err)
	}
	return sent, &http.Response{StatusCode: status, Header: h}
}

func TestResponseRoundTrip(t *testing.T) {
	k := testKeys(t)
	sent, resp := served(t, k, 200, respBody)
	wantInput := `treaty=("@status" "content-digest" "signature";req;key="treaty");created=1750000000;alg="ed25519";keyid="` +
		k.bob.Public().String() + `";tag="treaty/1"`
	if got := resp.Header.Get(HeaderSignatureInput); got != wantInput {
		t.Fatalf("response Signature-Input\n got %s\nwant %s", got, wantInput)
	}
	rc, err := VerifyResponse(resp, respBody, sent, k.bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Verify(); err != nil {
		t.Fatalf("receipt: %v", err)
	}
	if err := rc.CheckBody(respBody); err != nil {
		t.Fatal(err)
	}
	if rc.RequestDigest() != sent.Digest {
		t.Fatal("receipt request digest differs from Sent.Digest")
	}
	// JSON round trip keeps it verifiable offline.
	b, err := json.Marshal(rc)
	if err != nil {
		t.Fatal(err)
	}
	var back Receipt
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(); err != nil {
		t.Fatalf("receipt after JSON: %v", err)
	}
}

func TestRefusalIsSignedAndBound(t *testing.T) {
	k := testKeys(t)
	r, sent := signedRequest(t, k, testBody, nil)
	sr := serverView(t, r)
	v := newVerifier(t, k.bob.Public())
	_, verr := v.VerifyRequest(sr, []byte(`{"other":"body"}`), k.alice.Public(), t0)
	wantReason(t, verr, ReasonDigestMismatch)
	body := EncodeFailure(FailureOf("wire", verr))
	h := http.Header{}
	if err := SignResponse(h, StatusFor(verr), body, v.UnverifiedRequest(sr, k.alice.Public()), k.bob, t0); err != nil {
		t.Fatal(err)
	}
	rc, err := VerifyResponse(&http.Response{StatusCode: StatusFor(verr), Header: h}, body, sent, k.bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	f, err := DecodeFailure(body)
	if err != nil || f.Stage != "wire" || f.Reason != "digest_mismatch" || rc.Status != StatusFor(verr) {
		t.Fatalf("failure %+v %v status %d", f, err, rc.Status)
	}
}

// TestRefusalOfUnsignedIsSigned: a request with no, two, or an unparsable
// Signature header still gets a signed refusal, bound to NoRequestSignature:
// it verifies with the callee's key over that placeholder, and never as the
// answer to a request the caller signed.
func TestRefusalOfUnsignedIsSigned(t *testing.T) {
	k := testKeys(t)
	r, sent := signedRequest(t, k, testBody, nil)
	one := r.Header.Get(HeaderSignature)
	for name, lines := range map[string][]string{
		"none":        nil,
		"two":         {one, one},
		"unparsable":  {"treaty=:not base64:"},
		"other label": {"sig1=:AAAA:"},
	} {
		t.Run(name, func(t *testing.T) {
			sr := serverView(t, r)
			sr.Header.Del(HeaderSignature)
			for _, l := range lines {
				sr.Header.Add(HeaderSignature, l)
			}
			_, verr := newVerifier(t, k.bob.Public()).VerifyRequest(sr, testBody, k.alice.Public(), t0)
			if verr == nil {
				t.Fatal("request without one usable signature verified")
			}
			req := newVerifier(t, k.bob.Public()).UnverifiedRequest(sr, k.alice.Public())
			if req.Signature != NoRequestSignature {
				t.Fatalf("bound to %q, want NoRequestSignature", req.Signature)
			}
			body := EncodeFailure(FailureOf("wire", verr))
			h := http.Header{}
			if err := SignResponse(h, StatusFor(verr), body, req, k.bob, t0); err != nil {
				t.Fatalf("refusal not signed: %v", err)
			}
			placeholder := sent
			placeholder.Signature = NoRequestSignature
			if _, err := VerifyResponse(&http.Response{StatusCode: StatusFor(verr), Header: h}, body, placeholder, k.bob.Public()); err != nil {
				t.Fatalf("refusal does not verify over the placeholder: %v", err)
			}
			_, err := VerifyResponse(&http.Response{StatusCode: StatusFor(verr), Header: h}, body, sent, k.bob.Public())
			wantReason(t, err, ReasonBadSignature)
		})
	}
	sig, err := parseSignatureValue(NoRequestSignature, Label)
	if err != nil || len(sig) != 64 || sig[0] != 0 || sig[63] != 0 {
		t.Fatalf("NoRequestSignature = %x, %v; want 64 zero bytes", sig, err)
	}
}

// TestVerifyResponseAdversarial: each case fails if its check is deleted.
func TestVerifyResponseAdversarial(t *testing.T) {
	k := testKeys(t)
	tests := []struct {
		name   string
		tamper func(t *testing.T, resp *http.Response, sent *Sent, body *[]byte, callee *identity.PublicKey)
		want   Reason
	}{
		{name: "valid", want: 0},
		{
			name: "signed by another key, keyid names the callee",
			tamper: func(t *testing.T, resp *http.Response, sent *Sent, body *[]byte, _ *identity.PublicKey) {
				req := Request{Signature: sent.Signature}
				h := http.Header{}
				if err := SignResponse(h, 200, *body, req, k.mallory, t0); err != nil {
					t.Fatal(err)
				}
				resp.Header.Set(HeaderSignature, h.Get(HeaderSignature)) // mallory's signature, bob's Signature-Input
			},
			want: ReasonBadSignature,
		},
		{
			name: "response from wrong callee key",
			tamper: func(t *testing.T, resp *http.Response, sent *Sent, body *[]byte, _ *identity.PublicKey) {
				h := http.Header{}
				if err := SignResponse(h, 200, *body, Request{Signature: sent.Signature}, k.mallory, t0); err != nil {
					t.Fatal(err)
				}
				resp.Header = h
			},
			want: ReasonKeyMismatch,
		},
		{
			name: "caller expected another callee",
			tamper: func(t *testing.T, _ *http.Response, _ *Sent, _ *[]byte, callee *identity.PublicKey) {
				*callee = k.mallory.Public()
			},
			want: ReasonKeyMismatch,
		},
		{
			name: "response bound to a different request",
			tamper: func(t *testing.T, resp *http.Response, sent *Sent, body *[]byte, _ *identity.PublicKey) {
				_, other := signedRequest(t, k, []byte(`{"other":1}`), func(p *SignParams) { p.Rand = seededRand(77) })
				h := http.Header{}
				if err := SignResponse(h, 200, *body, Request{Signature: other.Signature}, k.bob, t0); err != nil {
					t.Fatal(err)
				}
				resp.Header = h
			},
			want: ReasonBadSignature,
		},
		{
			name: "tampered body",
			tamper: func(_ *testing.T, _ *http.Response, _ *Sent, body *[]byte, _ *identity.PublicKey) {
				*body = []byte(`{"verdict":"reject"}`)
			},
			want: ReasonDigestMismatch,
		},
		{
			name: "tampered body with recomputed digest",
			tamper: func(_ *testing.T, resp *http.Response, _ *Sent, body *[]byte, _ *identity.PublicKey) {
				*body = []byte(`{"verdict":"reject"}`)
				resp.Header.Set(HeaderContentDigest, ContentDigestHeader(*body))
			},
			want: ReasonBadSignature,
		},
		{
			name: "tampered status",
			tamper: func(_ *testing.T, resp *http.Response, _ *Sent, _ *[]byte, _ *identity.PublicKey) {
				resp.StatusCode = 500
			},
			want: ReasonBadSignature,
		},
		{
			name: "binding component missing",
			tamper: func(t *testing.T, resp *http.Response, _ *Sent, _ *[]byte, _ *identity.PublicKey) {
				resp.Header.Set(HeaderSignatureInput, replaceOnce(t, resp.Header.Get(HeaderSignatureInput), ` "signature";req;key="treaty"`, ""))
			},
			want: ReasonMissingComponent,
		},
		{
			name: "extra covered component",
			tamper: func(t *testing.T, resp *http.Response, _ *Sent, _ *[]byte, _ *identity.PublicKey) {
				resp.Header.Set(HeaderSignatureInput, replaceOnce(t, resp.Header.Get(HeaderSignatureInput), `"@status"`, `"@status" "date"`))
			},
			want: ReasonMalformed,
		},
		{
			name: "signature missing",
			tamper: func(_ *testing.T, resp *http.Response, _ *Sent, _ *[]byte, _ *identity.PublicKey) {
				resp.Header.Del(HeaderSignature)
			},
			want: ReasonMissingComponent,
		},
		{
			name: "duplicate signature label",
			tamper: func(_ *testing.T, resp *http.Response, _ *Sent, _ *[]byte, _ *identity.PublicKey) {
				resp.Header.Add(HeaderSignature, signatureHeader(Label, make([]byte, 64)))
			},
			want: ReasonMalformed,
		},
		{
			name: "wrong tag",
			tamper: func(t *testing.T, resp *http.Response, _ *Sent, _ *[]byte, _ *identity.PublicKey) {
				resp.Header.Set(HeaderSignatureInput, replaceOnce(t, resp.Header.Get(HeaderSignatureInput), `tag="treaty/1"`, `tag="x"`))
			},
			want: ReasonMalformed,
		},
	}
	// The Verifier's method, with keys expanded once and kept across the
	// cases (bob's and mallory's), must refuse exactly what the function does.
	v := newVerifier(t, k.alice.Public())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, verify := range []struct {
				name string
				fn   func(*http.Response, []byte, Sent, identity.PublicKey) (Receipt, error)
			}{{"VerifyResponse", VerifyResponse}, {"Verifier.VerifyResponse", v.VerifyResponse}} {
				t.Run(verify.name, func(t *testing.T) {
					sent, resp := served(t, k, 200, respBody)
					body := append([]byte(nil), respBody...)
					callee := k.bob.Public()
					if tc.tamper != nil {
						tc.tamper(t, resp, &sent, &body, &callee)
					}
					_, err := verify.fn(resp, body, sent, callee)
					wantReason(t, err, tc.want)
				})
			}
		})
	}
	if n := v.keys.len(); n != 2 {
		t.Errorf("the Verifier keeps %d expanded keys, want 2 (bob, mallory)", n)
	}
}

// TestReceiptTampering: the offline check catches edits to any part.
func TestReceiptTampering(t *testing.T) {
	k := testKeys(t)
	sent, resp := served(t, k, 200, respBody)
	rc, err := VerifyResponse(resp, respBody, sent, k.bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	_, other := signedRequest(t, k, []byte(`{}`), func(p *SignParams) { p.Rand = seededRand(5) })
	tests := []struct {
		name string
		edit func(*Receipt)
		want Reason
	}{
		{"status", func(r *Receipt) { r.Status = 201 }, ReasonBadSignature},
		{"content digest", func(r *Receipt) { r.ContentDigest = ContentDigestHeader([]byte("x")) }, ReasonBadSignature},
		{"request base", func(r *Receipt) {
			r.RequestBase = strings.Replace(r.RequestBase, "code.review", "code.revieW", 1)
		}, ReasonBadSignature},
		{"request swapped, base and signature together", func(r *Receipt) {
			r.RequestBase, r.RequestSignature = other.Base, other.Signature
		}, ReasonBadSignature},
		{"callee swapped", func(r *Receipt) { r.Callee = k.mallory.Public().String() }, ReasonBadAudience},
		{"caller swapped", func(r *Receipt) { r.Caller = k.mallory.Public().String() }, ReasonKeyMismatch},
		{"version", func(r *Receipt) { r.Version = "treaty/0" }, ReasonMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rc
			tc.edit(&r)
			wantReason(t, r.Verify(), tc.want)
		})
	}
	if err := rc.CheckBody([]byte("other")); err == nil {
		t.Fatal("CheckBody accepted another body")
	}
}

func TestSignResponseRejects(t *testing.T) {
	k := testKeys(t)
	h := http.Header{}
	if err := SignResponse(h, 200, nil, Request{}, k.bob, t0); err == nil {
		t.Fatal("signed a response bound to no request")
	}
	if err := SignResponse(h, 42, nil, Request{Signature: signatureHeader(Label, make([]byte, 64))}, k.bob, t0); err == nil {
		t.Fatal("signed status 42")
	}
}

// TestReceiptRequestBaseIsARequestBase: Receipt.Verify takes the request
// base as bytes the caller signed, and a caller's key signs other messages
// too (consensus proposals with values it was handed, membership records).
// A message that merely contains the lines of a request base, after a
// foreign prefix or with lines the signature parameters do not list, is not
// a request, even though the caller's signature over it verifies.
func TestReceiptRequestBaseIsARequestBase(t *testing.T) {
	k := testKeys(t)
	sent, _ := served(t, k, 200, respBody)
	lines := strings.Split(sent.Base, "\n")
	for name, blob := range map[string]string{
		"foreign prefix": "fsm/1 \x00\x01 a value someone put\n" + sent.Base,
		"extra line":     strings.Join(slices.Insert(slices.Clone(lines), 2, `"x-note": hello`), "\n"),
		"line renamed":   strings.Replace(sent.Base, `"@query": `, `"@qery": `, 1),
		"lines swapped":  strings.Join(append([]string{lines[1], lines[0]}, lines[2:]...), "\n"),
	} {
		t.Run(name, func(t *testing.T) {
			sig := signatureHeader(Label, k.alice.Sign([]byte(blob)))
			h := http.Header{}
			if err := SignResponse(h, 200, respBody, Request{Signature: sig}, k.bob, t0); err != nil {
				t.Fatal(err)
			}
			r := Receipt{
				Version: Tag, Caller: k.alice.Public().String(), Callee: k.bob.Public().String(),
				RequestBase: blob, RequestSignature: sig, Status: 200,
				ContentDigest: h.Get(HeaderContentDigest), SignatureInput: h.Get(HeaderSignatureInput), Signature: h.Get(HeaderSignature),
			}
			wantReason(t, r.Verify(), ReasonMalformed)
		})
	}
}
