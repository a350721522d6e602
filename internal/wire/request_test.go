package wire

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"
	"github.com/treaty-dev/treaty/internal/identity"
)

func TestSignRequestHeaders(t *testing.T) {
	k := testKeys(t)
	r, sent := signedRequest(t, k, testBody, nil)
	if got := r.Header.Get(HeaderAudience); got != k.bob.Public().String() {
		t.Fatalf("audience = %q", got)
	}
	if got := r.Header.Get(HeaderCapability); got != "code.review" {
		t.Fatalf("capability = %q", got)
	}
	if got := r.Header.Get(HeaderContentDigest); got != ContentDigestHeader(testBody) {
		t.Fatalf("content-digest = %q", got)
	}
	wantInput := `treaty=("@method" "@authority" "@path" "@query" "content-digest" "treaty-audience" "treaty-capability")` +
		`;created=1750000000;expires=1750000030;nonce="` + sent.Nonce + `";alg="ed25519";keyid="` + k.alice.Public().String() + `";tag="treaty/1"`
	if got := r.Header.Get(HeaderSignatureInput); got != wantInput {
		t.Fatalf("Signature-Input\n got %s\nwant %s", got, wantInput)
	}
	// The hand-written serialization equals httpsfv's.
	d, err := httpsfv.UnmarshalDictionary([]string{wantInput})
	if err != nil {
		t.Fatal(err)
	}
	if canon, _ := httpsfv.Marshal(d); canon != wantInput {
		t.Fatalf("Signature-Input is not canonical: %s", canon)
	}
	if len(sent.Nonce) != 22 {
		t.Fatalf("nonce %q, want 22 base64url chars", sent.Nonce)
	}
	wantBase := `"@method": POST
"@authority": bob.example:7443
"@path": /v1/call/code.review
"@query": ?trace=1
"content-digest": ` + ContentDigestHeader(testBody) + `
"treaty-audience": ` + k.bob.Public().String() + `
"treaty-capability": code.review
"@signature-params": ` + strings.TrimPrefix(wantInput, "treaty=")
	if sent.Base != wantBase {
		t.Fatalf("base\n got %q\nwant %q", sent.Base, wantBase)
	}
	if sent.Digest != sha256.Sum256([]byte(wantBase)) {
		t.Fatal("Sent.Digest is not sha256 of the base")
	}
	if !sent.Created.Equal(t0) || !sent.Expires.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("window %v..%v", sent.Created, sent.Expires)
	}
}

func TestSignRequestRejectsBadParams(t *testing.T) {
	k := testKeys(t)
	tests := []struct {
		name string
		mod  func(*SignParams)
	}{
		{"zero key", func(p *SignParams) { p.Key = identity.PrivateKey{} }},
		{"zero audience", func(p *SignParams) { p.Audience = identity.PublicKey{} }},
		{"zero now", func(p *SignParams) { p.Now = time.Time{} }},
		{"negative ttl", func(p *SignParams) { p.TTL = -time.Second }},
		{"uppercase capability", func(p *SignParams) { p.Capability = "Review" }},
		{"unicode capability", func(p *SignParams) { p.Capability = "revіew" }},
		{"empty capability", func(p *SignParams) { p.Capability = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("POST", testURL, nil)
			p := SignParams{Key: k.alice, Audience: k.bob.Public(), Capability: "code.review", Now: t0}
			tc.mod(&p)
			if _, err := SignRequest(r, nil, p); err == nil {
				t.Fatal("SignRequest accepted bad params")
			}
		})
	}
}

func TestVerifyRequestOK(t *testing.T) {
	k := testKeys(t)
	r, sent := signedRequest(t, k, testBody, nil)
	v := newVerifier(t, k.bob.Public())
	got, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Peer != k.alice.Public() || got.Capability != "code.review" || got.Nonce != sent.Nonce ||
		got.Digest != sent.Digest || got.Base != sent.Base || got.Signature != sent.Signature ||
		!got.Created.Equal(sent.Created) || !got.Expires.Equal(sent.Expires) {
		t.Fatalf("Request = %+v\nSent = %+v", got, sent)
	}
	// A client-side request (no RequestURI) verifies identically.
	r2, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.Rand = seededRand(2) })
	if _, err := v.VerifyRequest(r2, testBody, k.alice.Public(), t0); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyRequestAdversarial has one case per check; each fails if that
// check is deleted (the request is otherwise valid and validly signed).
func TestVerifyRequestAdversarial(t *testing.T) {
	k := testKeys(t)
	alice, mallory := k.alice.Public(), k.mallory.Public()
	tests := []struct {
		name   string
		sign   func(*SignParams)
		tamper func(t *testing.T, r *http.Request, sent Sent) // on the server view
		body   []byte                                         // body the server got; nil: testBody
		peer   *identity.PublicKey                            // handshake key; nil: alice
		now    time.Time                                      // zero: t0
		want   Reason
	}{
		{name: "valid", want: 0},
		{
			name: "signed by another key than the handshake key",
			tamper: func(t *testing.T, r *http.Request, sent Sent) {
				resign(t, r, k.mallory, sent.SignatureInput) // keyid still names alice
			},
			want: ReasonBadSignature,
		},
		{
			name: "keyid names another key",
			tamper: func(t *testing.T, r *http.Request, sent Sent) {
				resign(t, r, k.mallory, replaceOnce(t, sent.SignatureInput, alice.String(), mallory.String()))
			},
			want: ReasonKeyMismatch,
		},
		{
			name: "keyid is not a did:key",
			tamper: func(t *testing.T, r *http.Request, sent Sent) {
				resign(t, r, k.alice, replaceOnce(t, sent.SignatureInput, alice.String(), "alice"))
			},
			want: ReasonKeyMismatch,
		},
		{
			name: "stolen request replayed over another peer's connection",
			peer: &mallory,
			want: ReasonKeyMismatch,
		},
		{
			name: "wrong audience",
			sign: func(p *SignParams) { p.Audience = mallory },
			want: ReasonBadAudience,
		},
		{
			name: "audience not a did:key",
			tamper: func(t *testing.T, r *http.Request, sent Sent) {
				r.Header.Set(HeaderAudience, "bob")
				resign(t, r, k.alice, sent.SignatureInput)
			},
			want: ReasonBadAudience,
		},
		{name: "expired", now: t0.Add(30*time.Second + 30*time.Second + time.Second), want: ReasonExpired},
		{name: "expired at the skew boundary is still valid", now: t0.Add(60 * time.Second), want: 0},
		{name: "created in the future beyond skew", sign: func(p *SignParams) { p.Now = t0.Add(31 * time.Second) }, want: ReasonNotYetValid},
		{name: "created in the future within skew", sign: func(p *SignParams) { p.Now = t0.Add(30 * time.Second) }, want: 0},
		{name: "ttl too long", sign: func(p *SignParams) { p.TTL = DefaultTTL + time.Second }, want: ReasonTTLTooLong},
		{name: "ttl at max", sign: func(p *SignParams) { p.TTL = DefaultTTL }, want: 0},
		{
			name: "expires not after created",
			tamper: func(t *testing.T, r *http.Request, sent Sent) {
				resign(t, r, k.alice, replaceOnce(t, sent.SignatureInput, "expires=1750000030", "expires=1750000000"))
			},
			want: ReasonMalformed,
		},
		{name: "tampered body", body: []byte(`{"diff":"rm -rf /"}`), want: ReasonDigestMismatch},
		{
			name: "tampered body with recomputed digest",
			body: []byte(`{"diff":"rm -rf /"}`),
			tamper: func(t *testing.T, r *http.Request, sent Sent) {
				r.Header.Set(HeaderContentDigest, ContentDigestHeader([]byte(`{"diff":"rm -rf /"}`)))
			},
			want: ReasonBadSignature,
		},
		{
			name:   "tampered capability",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Header.Set(HeaderCapability, "admin") },
			want:   ReasonBadSignature,
		},
		{
			name:   "tampered method",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Method = http.MethodPut },
			want:   ReasonBadSignature,
		},
		{
			name:   "tampered path",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.RequestURI = "/v1/call/shell.exec?trace=1" },
			want:   ReasonBadSignature,
		},
		{
			name:   "tampered query",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.RequestURI = "/v1/call/code.review?trace=2" },
			want:   ReasonBadSignature,
		},
		{
			name:   "tampered authority",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Host = "carol.example:7443" },
			want:   ReasonBadSignature,
		},
		{
			name: "tampered signature parameter",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				r.Header.Set(HeaderSignatureInput, replaceOnce(t, s.SignatureInput, "expires=1750000030", "expires=1750000029"))
			},
			want: ReasonBadSignature,
		},
		{
			name:   "capability header missing",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Header.Del(HeaderCapability) },
			want:   ReasonMissingComponent,
		},
		{
			name:   "audience header missing",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Header.Del(HeaderAudience) },
			want:   ReasonMissingComponent,
		},
		{
			name:   "content-digest missing",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Header.Del(HeaderContentDigest) },
			want:   ReasonMissingComponent,
		},
		{
			name:   "signature missing",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Header.Del(HeaderSignature) },
			want:   ReasonMissingComponent,
		},
		{
			name:   "signature-input missing",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Header.Del(HeaderSignatureInput) },
			want:   ReasonMissingComponent,
		},
		{
			name:   "audience header twice",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Header.Add(HeaderAudience, mallory.String()) },
			want:   ReasonMalformed,
		},
		{
			name: "duplicate Signature label in one line",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				r.Header.Set(HeaderSignature, s.Signature+", "+signatureHeader(Label, make([]byte, 64)))
			},
			want: ReasonMalformed,
		},
		{
			name: "duplicate Signature label, forged one first",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				r.Header.Set(HeaderSignature, signatureHeader(Label, make([]byte, 64)))
				r.Header.Add(HeaderSignature, s.Signature)
			},
			want: ReasonMalformed,
		},
		{
			name: "duplicate Signature-Input label",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				r.Header.Add(HeaderSignatureInput, replaceOnce(t, s.SignatureInput, `"treaty-capability"`, ""))
			},
			want: ReasonMalformed,
		},
		{
			name: "second signature label",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				r.Header.Add(HeaderSignature, signatureHeader("other", make([]byte, 64)))
			},
			want: ReasonMalformed,
		},
		{
			name: "signature input not canonical",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				r.Header.Set(HeaderSignatureInput, replaceOnce(t, s.SignatureInput, `"@method" `, `"@method"  `))
			},
			want: ReasonMalformed,
		},
		{
			name:   "signature input not a structured field",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Header.Set(HeaderSignatureInput, `treaty=("@method"`) },
			want:   ReasonMalformed,
		},
		{
			name:   "signature not a byte sequence",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Header.Set(HeaderSignature, `treaty="abc"`) },
			want:   ReasonMalformed,
		},
		{
			name: "signature wrong length",
			tamper: func(t *testing.T, r *http.Request, _ Sent) {
				r.Header.Set(HeaderSignature, signatureHeader(Label, make([]byte, 63)))
			},
			want: ReasonMalformed,
		},
		{
			name:   "content-digest not a structured field",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Header.Set(HeaderContentDigest, "sha-256=abc") },
			want:   ReasonMalformed,
		},
		{
			name:   "content-digest with no supported algorithm",
			tamper: func(t *testing.T, r *http.Request, _ Sent) { r.Header.Set(HeaderContentDigest, "md5=:AAAA:") },
			want:   ReasonMalformed,
		},
		{
			name: "wrong alg",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				resign(t, r, k.alice, replaceOnce(t, s.SignatureInput, `alg="ed25519"`, `alg="hmac-sha256"`))
			},
			want: ReasonMalformed,
		},
		{
			name: "wrong tag",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				resign(t, r, k.alice, replaceOnce(t, s.SignatureInput, `tag="treaty/1"`, `tag="treaty/0"`))
			},
			want: ReasonMalformed,
		},
		{
			name: "short nonce",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				resign(t, r, k.alice, replaceOnce(t, s.SignatureInput, s.Nonce, "abc"))
			},
			want: ReasonMalformed,
		},
		{
			name: "unknown signature parameter",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				r.Header.Set(HeaderSignatureInput, s.SignatureInput+`;x="y"`)
			},
			want: ReasonMalformed,
		},
		{
			name: "unsupported component parameter",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				r.Header.Set(HeaderSignatureInput, replaceOnce(t, s.SignatureInput, `"content-digest"`, `"content-digest";sf`))
			},
			want: ReasonMalformed,
		},
		{
			name: "component covered twice",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				r.Header.Set(HeaderSignatureInput, replaceOnce(t, s.SignatureInput, `"@method"`, `"@method" "@method"`))
			},
			want: ReasonMalformed,
		},
		{
			name: "covered extra field that is absent",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				si := replaceOnce(t, s.SignatureInput, `"@method"`, `"@method" "x-extra"`)
				r.Header.Set("X-Extra", "1")
				resign(t, r, k.alice, si)
				r.Header.Del("X-Extra")
			},
			want: ReasonMissingComponent,
		},
		{
			name: "covered extra field that is present",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				r.Header.Set("X-Extra", "1")
				resign(t, r, k.alice, replaceOnce(t, s.SignatureInput, `"@method"`, `"@method" "x-extra"`))
			},
			want: 0,
		},
	}
	for _, c := range requestComponents {
		c := c
		tests = append(tests, struct {
			name   string
			sign   func(*SignParams)
			tamper func(t *testing.T, r *http.Request, sent Sent)
			body   []byte
			peer   *identity.PublicKey
			now    time.Time
			want   Reason
		}{
			name: "component " + c.id + " not covered",
			tamper: func(t *testing.T, r *http.Request, s Sent) {
				si := strings.Replace(replaceOnce(t, s.SignatureInput, c.id, ""), "( ", "(", 1)
				si = strings.Replace(strings.Replace(si, "  ", " ", 1), " )", ")", 1)
				resign(t, r, k.alice, si)
			},
			want: ReasonMissingComponent,
		})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, sent := signedRequest(t, k, testBody, tc.sign)
			sr := serverView(t, r)
			if tc.tamper != nil {
				tc.tamper(t, sr, sent)
			}
			body := testBody
			if tc.body != nil {
				body = tc.body
			}
			peer := alice
			if tc.peer != nil {
				peer = *tc.peer
			}
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			_, err := newVerifier(t, k.bob.Public()).VerifyRequest(sr, body, peer, now)
			wantReason(t, err, tc.want)
		})
	}
}

// TestCapabilityNames: names are [a-z0-9._-]{1,64} starting with [a-z0-9]; anything else, however
// similar it looks, is refused as malformed even when validly signed.
func TestCapabilityNames(t *testing.T) {
	k := testKeys(t)
	good := []string{"code.review", "a", "x_y-z.0", strings.Repeat("a", 64)}
	bad := []string{
		"", strings.Repeat("a", 65), "Code.review", "code review", "code/review", "code.review\x00",
		"сode.review",       // Cyrillic es
		"ｃode.review",       // fullwidth c
		"code\u200b.review", // zero-width space
		"code.revie\u0301w", // combining accent
		"code.review\u202e", // right-to-left override
		"café",              // precomposed
		"cafe\u0301",        // decomposed
		"code%2ereview", "code.review;x", "*",
		".", "..", "-rf", "_x", ".hidden", // not a letter or digit first
	}
	for _, name := range good {
		if !ValidCapabilityName(name) {
			t.Errorf("ValidCapabilityName(%q) = false", name)
		}
	}
	for _, name := range bad {
		t.Run(name, func(t *testing.T) {
			if ValidCapabilityName(name) {
				t.Fatalf("ValidCapabilityName(%q) = true", name)
			}
			r, sent := signedRequest(t, k, testBody, nil)
			sr := serverView(t, r)
			sr.Header[HeaderCapability] = []string{name}
			resign(t, sr, k.alice, sent.SignatureInput)
			_, err := newVerifier(t, k.bob.Public()).VerifyRequest(sr, testBody, k.alice.Public(), t0)
			want := ReasonMalformed
			if len(name) > 64 {
				want = ReasonMalformed // oversize header
			}
			wantReason(t, err, want)
		})
	}
}

func TestReplay(t *testing.T) {
	k := testKeys(t)
	v := newVerifier(t, k.bob.Public())
	r, sent := signedRequest(t, k, testBody, nil)
	if _, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0); err != nil {
		t.Fatal(err)
	}
	// The identical request again, a second later.
	_, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0.Add(time.Second))
	wantReason(t, err, ReasonReplayed)
	// Same nonce, different content, validly signed: still a replay.
	r2, _ := signedRequest(t, k, []byte(`{}`), nil) // same seeded nonce
	if r2.Header.Get(HeaderSignature) == sent.Signature {
		t.Fatal("expected a different request")
	}
	_, err = v.VerifyRequest(serverView(t, r2), []byte(`{}`), k.alice.Public(), t0)
	wantReason(t, err, ReasonReplayed)
	// Another nonce passes.
	r3, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.Rand = seededRand(9) })
	if _, err := v.VerifyRequest(serverView(t, r3), testBody, k.alice.Public(), t0); err != nil {
		t.Fatal(err)
	}
	// Nonces are per peer: mallory reusing alice's nonce does not block alice
	// (mallory's own request is fresh for mallory).
	rm, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.Key = k.mallory; p.Rand = seededRand(20) })
	if _, err := v.VerifyRequest(serverView(t, rm), testBody, k.mallory.Public(), t0); err != nil {
		t.Fatal(err)
	}
	ra, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.Rand = seededRand(20) })
	if _, err := v.VerifyRequest(serverView(t, ra), testBody, k.alice.Public(), t0); err != nil {
		t.Fatalf("alice blocked by mallory's use of the same nonce: %v", err)
	}
}

// TestNonceRecordedOnlyAfterSignature: a forgery carrying a legitimate
// nonce must not burn it.
func TestNonceRecordedOnlyAfterSignature(t *testing.T) {
	k := testKeys(t)
	v := newVerifier(t, k.bob.Public())
	r, _ := signedRequest(t, k, testBody, nil)
	forged := serverView(t, r)
	forged.Header.Set(HeaderCapability, "admin")
	_, err := v.VerifyRequest(forged, testBody, k.alice.Public(), t0)
	wantReason(t, err, ReasonBadSignature)
	if _, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0); err != nil {
		t.Fatalf("legitimate request refused after a forgery with its nonce: %v", err)
	}
	if v.ReplayLen() != 1 {
		t.Fatalf("ReplayLen = %d, want 1", v.ReplayLen())
	}
}

// TestVerifierForget: a request the node refuses before serving gives its
// nonce back, so the same signed request is accepted when sent again, once;
// until then a concurrent replay is refused.
func TestVerifierForget(t *testing.T) {
	k := testKeys(t)
	v := newVerifier(t, k.bob.Public())
	r, _ := signedRequest(t, k, testBody, nil)
	req, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0)
	wantReason(t, err, ReasonReplayed) // held while the first is decided
	v.Forget(req)
	if v.ReplayPeerLen(k.alice.Public()) != 0 {
		t.Fatalf("nonce still held after Forget")
	}
	if _, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0); err != nil {
		t.Fatalf("forgotten nonce refused: %v", err)
	}
	_, err = v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0)
	wantReason(t, err, ReasonReplayed)
	v.Forget(Request{}) // not from VerifyRequest: nothing happens
	if v.ReplayLen() != 1 {
		t.Fatalf("ReplayLen = %d, want 1", v.ReplayLen())
	}
}

// TestVerifierLifetimeBoundary: the default lifetime is DefaultTTL, what
// SignRequest uses; one second more is refused, and a request is accepted
// until exactly expires + MaxSkew.
func TestVerifierLifetimeBoundary(t *testing.T) {
	k := testKeys(t)
	v := newVerifier(t, k.bob.Public())
	r, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.TTL = DefaultTTL })
	if _, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0.Add(DefaultTTL+30*time.Second)); err != nil {
		t.Fatalf("request at expires+skew refused: %v", err)
	}
	r, _ = signedRequest(t, k, testBody, func(p *SignParams) { p.TTL = DefaultTTL; p.Rand = seededRand(40) })
	_, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0.Add(DefaultTTL+30*time.Second+time.Second))
	wantReason(t, err, ReasonExpired)
	r, _ = signedRequest(t, k, testBody, func(p *SignParams) { p.TTL = DefaultTTL + time.Second; p.Rand = seededRand(41) })
	_, err = v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0)
	wantReason(t, err, ReasonTTLTooLong)
}

func TestVerifierReplayCacheFull(t *testing.T) {
	k := testKeys(t)
	v, err := NewVerifier(VerifierConfig{Self: k.bob.Public(), ReplayCapacity: 2, ReplayPerPeer: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		r, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.Rand = seededRand(uint64(100 + i)) })
		if _, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.Rand = seededRand(102) })
	_, err = v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0)
	wantReason(t, err, ReasonReplayCacheFull)
	// Once the held nonces expire (expires + skew), there is room again.
	later := t0.Add(61 * time.Second)
	r, _ = signedRequest(t, k, testBody, func(p *SignParams) { p.Rand = seededRand(103); p.Now = later })
	if _, err := v.VerifyRequest(serverView(t, r), testBody, k.alice.Public(), later); err != nil {
		t.Fatal(err)
	}
	if v.ReplayLen() != 1 {
		t.Fatalf("ReplayLen = %d, want 1 after expiry", v.ReplayLen())
	}
}

func TestNewVerifierConfig(t *testing.T) {
	self := testKey(t, 2).Public()
	bad := []VerifierConfig{
		{},
		{Self: self, MaxSkew: 11 * time.Minute},
		{Self: self, MaxTTL: time.Millisecond},
		{Self: self, MaxTTL: 2 * time.Hour},
		{Self: self, ReplayCapacity: -1},
		{Self: self, ReplayCapacity: 1 << 27},
		{Self: self, ReplayCapacity: 8, ReplayPerPeer: 9},
		{Self: self, ReplayPerPeer: -1},
		{Self: self, KeyCache: -1},
		{Self: self, KeyCache: 1<<16 + 1},
	}
	for _, c := range bad {
		if _, err := NewVerifier(c); err == nil {
			t.Errorf("NewVerifier(%+v) accepted", c)
		}
	}
	v, err := NewVerifier(VerifierConfig{Self: self})
	if err != nil {
		t.Fatal(err)
	}
	if v.skew != 30*time.Second || v.maxTTL != 30*time.Second || v.replays.capacity != 1<<20 || v.replays.perPeer != 1<<16 {
		t.Fatalf("defaults: skew %v ttl %v cap %d per peer %d", v.skew, v.maxTTL, v.replays.capacity, v.replays.perPeer)
	}
	v, _ = NewVerifier(VerifierConfig{Self: self, MaxSkew: -1})
	if v.skew != 0 {
		t.Fatalf("negative MaxSkew should mean zero skew, got %v", v.skew)
	}
}

func TestReasonStrings(t *testing.T) {
	seen := map[string]bool{}
	for r := ReasonMalformed; r <= ReasonChainLoop; r++ {
		s := r.String()
		if strings.HasPrefix(s, "reason(") || seen[s] || !token(s, true) {
			t.Errorf("Reason %d String = %q", int(r), s)
		}
		seen[s] = true
	}
	for _, r := range []Reason{0, -1, 99, ReasonChainLoop + 1} {
		if got := r.String(); !strings.HasPrefix(got, "reason(") {
			t.Errorf("Reason(%d).String() = %q", int(r), got)
		}
	}
	e := &Error{Reason: ReasonReplayed, Detail: "nonce x"}
	if e.Error() != "wire: replayed: nonce x" {
		t.Fatalf("Error() = %q", e.Error())
	}
	wrapped := errors.Join(errors.New("ctx"), e)
	if !errors.Is(wrapped, &Error{Reason: ReasonReplayed}) || errors.Is(wrapped, &Error{Reason: ReasonExpired}) {
		t.Fatal("errors.Is by reason")
	}
}
