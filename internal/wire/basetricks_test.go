package wire

import (
	"net/http"
	"testing"
)

// TestSignatureBaseEncodingTricks: spellings of a signed request that a
// server or a router might read as the same request, or as another one. A
// spelling that changes what is served must fail the signature or the
// parse; the ones RFC 9421 declares equal (the authority's case and default
// port) verify.
func TestSignatureBaseEncodingTricks(t *testing.T) {
	k := testKeys(t)
	tests := []struct {
		name   string
		tamper func(r *http.Request)
		want   Reason
	}{
		{"percent-encoded path letter", func(r *http.Request) { r.RequestURI = "/v1/c%61ll/code.review?trace=1" }, ReasonBadSignature},
		{"dot segment in path", func(r *http.Request) { r.RequestURI = "/v1/call/../call/code.review?trace=1" }, ReasonBadSignature},
		{"doubled slash in path", func(r *http.Request) { r.RequestURI = "/v1//call/code.review?trace=1" }, ReasonBadSignature},
		{"query moved into the path", func(r *http.Request) { r.RequestURI = "/v1/call/code.review%3Ftrace=1" }, ReasonBadSignature},
		{"empty query added", func(r *http.Request) { r.RequestURI = "/v1/call/code.review?trace=1&" }, ReasonBadSignature},
		{"authority upper case", func(r *http.Request) { r.Host = "BOB.example:7443" }, 0},
		{"authority with another port", func(r *http.Request) { r.Host = "bob.example:443" }, ReasonBadSignature},
		{"capability with a homoglyph", func(r *http.Request) { r.Header.Set(HeaderCapability, "code.reviеw") }, ReasonMalformed},
		{"capability with trailing space", func(r *http.Request) { r.Header.Set(HeaderCapability, "code.review ") }, ReasonMalformed},
		{"capability in upper case", func(r *http.Request) { r.Header.Set(HeaderCapability, "CODE.REVIEW") }, ReasonMalformed},
		{"audience with trailing space", func(r *http.Request) { r.Header.Set(HeaderAudience, k.bob.Public().String()+" ") }, ReasonBadAudience},
		{"method in lower case", func(r *http.Request) { r.Method = "post" }, ReasonBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := signedRequest(t, k, testBody, nil)
			r := serverView(t, c)
			tc.tamper(r)
			v := newVerifier(t, k.bob.Public())
			_, err := v.VerifyRequest(r, testBody, k.alice.Public(), t0)
			wantReason(t, err, tc.want)
		})
	}
}
