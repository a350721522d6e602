package wire

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"
	"github.com/treaty-dev/treaty/internal/identity"
)

// chainPeers: p[0] originates, each p[i] calls p[i+1]; self is the final
// callee; mallory attacks.
type chainPeers struct {
	p             []identity.PrivateKey
	self, mallory identity.PrivateKey
}

func newChainPeers(t testing.TB) chainPeers {
	c := chainPeers{self: testKey(t, 20), mallory: testKey(t, 3)}
	for i := range 10 {
		c.p = append(c.p, testKey(t, byte(10+i)))
	}
	return c
}

// hopSpec describes one request signed by hand, so that a test can make
// hops that SignRequest would refuse, each validly signed.
type hopSpec struct {
	from       identity.PrivateKey
	to         identity.PublicKey
	capability string  // "": code.review
	created    int64   // 0: t0
	expires    int64   // 0: created + 30
	chain      *string // nil: no Treaty-Chain; otherwise its value, covered
	query      string  // appended to testURL
	seed       uint64
}

// signRaw signs s and returns the server view and the hop it makes.
func signRaw(t testing.TB, s hopSpec) (*http.Request, Hop) {
	t.Helper()
	if s.capability == "" {
		s.capability = "code.review"
	}
	if s.created == 0 {
		s.created = t0.Unix()
	}
	if s.expires == 0 {
		s.expires = s.created + 30
	}
	r, err := http.NewRequest(http.MethodPost, testURL+s.query, bytes.NewReader(testBody))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set(HeaderContentDigest, ContentDigestHeader(testBody))
	r.Header.Set(HeaderAudience, s.to.String())
	r.Header.Set(HeaderCapability, s.capability)
	comps := requestComponents[:]
	if s.chain != nil {
		r.Header.Set(HeaderChain, *s.chain)
		comps = chainedRequestComponents[:]
	}
	var nb [nonceBytes]byte
	if _, err := seededRand(1000 + s.seed).Read(nb[:]); err != nil {
		t.Fatal(err)
	}
	params := requestParams(comps, s.created, s.expires, base64.RawURLEncoding.EncodeToString(nb[:]), s.from.Public().String())
	base, err := signatureBase(requestMessage(r), comps, params)
	if err != nil {
		t.Fatal(err)
	}
	h := Hop{SignatureInput: Label + "=" + params, Signature: signatureHeader(Label, s.from.Sign([]byte(base))), Base: base}
	r.Header.Set(HeaderSignatureInput, h.SignatureInput)
	r.Header.Set(HeaderSignature, h.Signature)
	return serverView(t, r), h
}

// rawChain encodes hops without any of SignRequest's checks.
func rawChain(t testing.TB, hops ...Hop) string {
	t.Helper()
	ws := make([]hopWire, len(hops))
	for i, h := range hops {
		w, _, _, err := splitHop(h)
		if err != nil {
			t.Fatalf("rawChain hop %d: %v", i, err)
		}
		ws[i] = w
	}
	v, _ := encodeHops(ws)
	return v
}

// buildHops signs path[0] -> path[1] -> ... -> path[n-1] by hand, each
// request carrying the chain before it, and returns the chain path[n-1]
// holds, nearest hop first.
func buildHops(t testing.TB, path ...identity.PrivateKey) []Hop {
	t.Helper()
	var hops []Hop
	for i := 0; i+1 < len(path); i++ {
		s := hopSpec{from: path[i], to: path[i+1].Public(), created: t0.Unix() + int64(i), seed: uint64(i)}
		if len(hops) > 0 {
			v := rawChain(t, hops...)
			s.chain = &v
		}
		_, h := signRaw(t, s)
		hops = append([]Hop{h}, hops...)
	}
	return hops
}

// finalRequest is from's request to self carrying chain value v.
func finalRequest(t testing.TB, from identity.PrivateKey, to identity.PublicKey, v string) *http.Request {
	t.Helper()
	r, _ := signRaw(t, hopSpec{from: from, to: to, chain: &v, created: t0.Unix() + 10, seed: 99})
	return r
}

// relay runs the real API: path[0] calls path[1] with SignRequest, which
// verifies it with VerifyRequest and, while serving it, calls path[2] with
// ChainFrom, and so on. It returns the Request path[n-1] served.
func relay(t testing.TB, path ...identity.PrivateKey) Request {
	t.Helper()
	var served Request
	for i := 0; i+1 < len(path); i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		r, err := http.NewRequest(http.MethodPost, testURL, bytes.NewReader(testBody))
		if err != nil {
			t.Fatal(err)
		}
		p := SignParams{Key: path[i], Audience: path[i+1].Public(), Capability: "code.review", Now: now, Rand: seededRand(uint64(i))}
		if i > 0 {
			p.Chain = ChainFrom(served)
		}
		if _, err := SignRequest(r, testBody, p); err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		v, err := NewVerifier(VerifierConfig{Self: path[i+1].Public(), MaxDepth: 8})
		if err != nil {
			t.Fatal(err)
		}
		if served, err = v.VerifyRequest(serverView(t, r), testBody, path[i].Public(), now); err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
	}
	return served
}

// TestChainRelay: a chain of 3 real hops, built and checked only through
// the exported API, verifies, and every hop says who asked whom.
func TestChainRelay(t *testing.T) {
	c := newChainPeers(t)
	p := c.p[:4]
	served := relay(t, p...)
	if len(served.Chain) != 2 {
		t.Fatalf("p3 served a chain of %d hops, want 2", len(served.Chain))
	}
	r, err := http.NewRequest(http.MethodPost, testURL, bytes.NewReader(testBody))
	if err != nil {
		t.Fatal(err)
	}
	chain := ChainFrom(served)
	sent, err := SignRequest(r, testBody, SignParams{Key: p[3], Audience: c.self.Public(), Capability: "code.review", Now: t0.Add(5 * time.Second), Chain: chain})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(strings.SplitN(sent.SignatureInput, ";", 2)[0], `"treaty-capability" "treaty-chain")`) {
		t.Fatalf("Signature-Input does not cover treaty-chain: %s", sent.SignatureInput)
	}
	if !strings.Contains(sent.Base, "\n\"treaty-chain\": "+r.Header.Get(HeaderChain)+"\n\"@signature-params\": ") {
		t.Fatalf("base does not cover the chain:\n%s", sent.Base)
	}
	v := newVerifier(t, c.self.Public()) // default MaxDepth 4: exactly this depth
	got, err := v.VerifyRequest(serverView(t, r), testBody, p[3].Public(), t0.Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Chain) != 3 {
		t.Fatalf("chain of %d hops, want 3", len(got.Chain))
	}
	for i, h := range got.Chain {
		from, to := p[2-i].Public(), p[3-i].Public()
		if h.Caller != from || h.Audience != to || h.Capability != "code.review" {
			t.Errorf("hop %d: %s -> %s %q, want %s -> %s", i, h.Caller.Short(), h.Audience.Short(), h.Capability, from.Short(), to.Short())
		}
		if !h.Created.Equal(t0.Add(time.Duration(2-i)*time.Second)) || !h.Expires.Equal(h.Created.Add(DefaultTTL)) {
			t.Errorf("hop %d: window %v..%v", i, h.Created, h.Expires)
		}
		want := chain[i]
		if h.Base != want.Base || h.SignatureInput != want.SignatureInput || h.Signature != want.Signature ||
			h.Digest != want.Digest || h.Nonce != want.Nonce {
			t.Errorf("hop %d differs from what its callee verified:\n got %+v\nwant %+v", i, h, want)
		}
	}
	wantPath := []string{p[3].Public().String(), p[2].Public().String(), p[1].Public().String(), p[0].Public().String()}
	if got := got.DelegationPath(); strings.Join(got, " ") != strings.Join(wantPath, " ") {
		t.Fatalf("DelegationPath = %v, want %v", got, wantPath)
	}
	// The caller's receipt for a chained call verifies offline.
	h := http.Header{}
	if err := SignResponse(h, 200, []byte(`{}`), got, c.self, t0.Add(6*time.Second)); err != nil {
		t.Fatal(err)
	}
	rc, err := VerifyResponse(&http.Response{StatusCode: 200, Header: h}, []byte(`{}`), sent, c.self.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Verify(); err != nil {
		t.Fatalf("receipt of a chained call: %v", err)
	}
	// A direct call has no chain, and its path is just the peer.
	direct := relay(t, p[0], p[1])
	if direct.Chain != nil || len(direct.DelegationPath()) != 1 {
		t.Fatalf("direct call: chain %v, path %v", direct.Chain, direct.DelegationPath())
	}
}

// TestChainAdversarial has one case per check of the chain; every request
// is validly signed by its sender, so each case fails if its check is deleted.
func TestChainAdversarial(t *testing.T) {
	c := newChainPeers(t)
	p, self, mallory := c.p, c.self.Public(), c.mallory
	hops := buildHops(t, p[0], p[1], p[2], p[3]) // h2 (p2->p3), h1, h0
	valid := rawChain(t, hops...)
	withBase := func(h Hop, old, new string) Hop {
		h.Base = replaceOnce(t, h.Base, old, new)
		return h
	}
	str := func(s string) *string { return &s }
	type tc struct {
		name     string
		req      func(t *testing.T) *http.Request // from peer to self
		peer     identity.PrivateKey              // zero: p[3]
		maxDepth int
		want     Reason
	}
	fromP3 := func(v string) func(*testing.T) *http.Request {
		return func(t *testing.T) *http.Request { return finalRequest(t, p[3], self, v) }
	}
	tests := []tc{
		{name: "valid, depth 4 = max", req: fromP3(valid)},
		{name: "depth over max", req: fromP3(valid), maxDepth: 3, want: ReasonChainTooDeep},
		{name: "depth over default max", peer: p[4], want: ReasonChainTooDeep, req: func(t *testing.T) *http.Request {
			return finalRequest(t, p[4], self, rawChain(t, buildHops(t, p[0], p[1], p[2], p[3], p[4])...))
		}},
		{name: "more hops than MaxChainHops, refused before any signature check", peer: p[9], maxDepth: 8, want: ReasonChainTooDeep,
			req: func(t *testing.T) *http.Request {
				h := buildHops(t, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9])
				h[0].Signature = signatureHeader(Label, make([]byte, 64))
				return finalRequest(t, p[9], self, rawChain(t, h...))
			}},
		{name: "tampered nearest hop base", want: ReasonChainBroken,
			req: fromP3(rawChain(t, withBase(hops[0], `"treaty-capability": code.review`, `"treaty-capability": code.revieww`), hops[1], hops[2]))},
		{name: "tampered originator hop base", want: ReasonChainBroken,
			req: fromP3(rawChain(t, hops[0], hops[1], withBase(hops[2], `"@path": /v1/call/code.review`, `"@path": /v1/call/admin`)))},
		{name: "hop signed by another key than its keyid", want: ReasonChainBroken, req: func(t *testing.T) *http.Request {
			h := hops[0]
			h.Signature = signatureHeader(Label, mallory.Sign([]byte(h.Base)))
			return finalRequest(t, p[3], self, rawChain(t, h, hops[1], hops[2]))
		}},
		{name: "nearest hop not addressed to the caller", want: ReasonChainBroken, req: func(t *testing.T) *http.Request {
			v := rawChain(t, hops[1], hops[2])
			_, h := signRaw(t, hopSpec{from: p[2], to: mallory.Public(), chain: &v, seed: 7})
			return finalRequest(t, p[3], self, rawChain(t, h, hops[1], hops[2]))
		}},
		{name: "hop not addressed to the next hop's caller", want: ReasonChainBroken, req: func(t *testing.T) *http.Request {
			// mallory splices p1's request to p2 behind its own call to p3.
			v := rawChain(t, hops[1], hops[2])
			_, h := signRaw(t, hopSpec{from: mallory, to: p[3].Public(), chain: &v, seed: 7})
			return finalRequest(t, p[3], self, rawChain(t, h, hops[1], hops[2]))
		}},
		{name: "loop back to self", want: ReasonChainLoop, req: func(t *testing.T) *http.Request {
			return finalRequest(t, p[3], self, rawChain(t, buildHops(t, c.self, p[1], p[2], p[3])...))
		}},
		{name: "loop through an intermediate", peer: p[2], want: ReasonChainLoop, req: func(t *testing.T) *http.Request {
			return finalRequest(t, p[2], self, rawChain(t, buildHops(t, p[0], p[1], p[0], p[2])...))
		}},
		{name: "loop through the caller", want: ReasonChainLoop, req: func(t *testing.T) *http.Request {
			return finalRequest(t, p[3], self, rawChain(t, buildHops(t, p[3], p[1], p[2], p[3])...))
		}},
		{name: "hop covers a chain but is last", want: ReasonChainBroken, req: func(t *testing.T) *http.Request {
			_, h := signRaw(t, hopSpec{from: p[2], to: p[3].Public(), chain: str(""), seed: 7})
			return finalRequest(t, p[3], self, rawChain(t, h))
		}},
		{name: "hop covers no chain but hops follow it", want: ReasonChainBroken, req: func(t *testing.T) *http.Request {
			_, h := signRaw(t, hopSpec{from: p[2], to: p[3].Public(), seed: 7})
			return finalRequest(t, p[3], self, rawChain(t, h, hops[1], hops[2]))
		}},
		{name: "hop with an invalid capability", want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			_, h := signRaw(t, hopSpec{from: p[2], to: p[3].Public(), capability: "Code.Review", seed: 7})
			return finalRequest(t, p[3], self, rawChain(t, h))
		}},
		{name: "hop expiring before it was created", want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			_, h := signRaw(t, hopSpec{from: p[2], to: p[3].Public(), created: t0.Unix(), expires: t0.Unix(), seed: 7})
			return finalRequest(t, p[3], self, rawChain(t, h))
		}},
		{name: "expired hop is accepted (no freshness for hops)", req: func(t *testing.T) *http.Request {
			_, h := signRaw(t, hopSpec{from: p[2], to: p[3].Public(), created: t0.Unix() - 86400, seed: 7})
			return finalRequest(t, p[3], self, rawChain(t, h))
		}},
		{name: "oversized chain", peer: p[1], want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			// One honest hop with a long query: valid in every other way.
			_, h := signRaw(t, hopSpec{from: p[0], to: p[1].Public(), query: "&q=" + strings.Repeat("a", MaxChainBytes), seed: 7})
			return finalRequest(t, p[1], self, rawChain(t, h))
		}},
		{name: "non-canonical list spacing", want: ReasonChainMalformed, req: fromP3(strings.ReplaceAll(valid, "), (", "),("))},
		{name: "hop with a parameter", want: ReasonChainMalformed, req: fromP3(strings.Replace(valid, "), (", ");x=1, (", 1))},
		{name: "item with a parameter", want: ReasonChainMalformed, req: fromP3(strings.Replace(valid, ": :", ":;x :", 1))},
		{name: "not an sf-list", want: ReasonChainMalformed, req: fromP3("(" + valid)},
		{name: "empty", want: ReasonChainMalformed, req: fromP3("")},
		{name: "hop is an item, not an inner list", want: ReasonChainMalformed, req: fromP3(":AAAA:")},
		{name: "hop with one item", want: ReasonChainMalformed, req: fromP3(`("x")`)},
		{name: "signature-input not a string", want: ReasonChainMalformed, req: fromP3(`(:AAAA: :AAAA:)`)},
		{name: "short hop signature", want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			w, _, _, _ := splitHop(hops[2])
			w.sig = w.sig[:63]
			v, _ := encodeHops([]hopWire{w})
			return finalRequest(t, p[1], self, v)
		}, peer: p[1]},
		{name: "component value not a byte sequence", want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			v, _ := encodeHops([]hopWire{mustSplit(t, hops[2])})
			return finalRequest(t, p[1], self, strings.Replace(v, ":UE9TVA==:", `"POST"`, 1))
		}, peer: p[1]},
		{name: "one component value too few", peer: p[1], want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			w := mustSplit(t, hops[2])
			w.values = w.values[:len(w.values)-1]
			v, _ := encodeHops([]hopWire{w})
			return finalRequest(t, p[1], self, v)
		}},
		{name: "component value with a line break", peer: p[1], want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			w := mustSplit(t, hops[2])
			w.values[0] += "\n"
			v, _ := encodeHops([]hopWire{w})
			return finalRequest(t, p[1], self, v)
		}},
		{name: "signature-input that does not parse", peer: p[1], want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			w := mustSplit(t, hops[2])
			w.sigInput = "treaty=("
			v, _ := encodeHops([]hopWire{w})
			return finalRequest(t, p[1], self, v)
		}},
		{name: "hop outside the request profile", peer: p[1], want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			w := mustSplit(t, hops[2])
			w.sigInput = strings.Replace(w.sigInput, `tag="treaty/1"`, `tag="treaty/0"`, 1)
			v, _ := encodeHops([]hopWire{w})
			return finalRequest(t, p[1], self, v)
		}},
		{name: "hop keyid not a did:key", peer: p[1], want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			w := mustSplit(t, hops[2])
			w.sigInput = strings.Replace(w.sigInput, `keyid="did:key:`, `keyid="did:web:`, 1)
			v, _ := encodeHops([]hopWire{w})
			return finalRequest(t, p[1], self, v)
		}},
		{name: "hop audience not a did:key", peer: p[1], want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			w := mustSplit(t, hops[2])
			w.values[5] = "did:web:example.com"
			v, _ := encodeHops([]hopWire{w})
			return finalRequest(t, p[1], self, v)
		}},
		{name: "hop covering a parameterized component", peer: p[1], want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			w := mustSplit(t, hops[2])
			w.sigInput = strings.Replace(w.sigInput, `"@method"`, `"@method" "x";key="a"`, 1)
			w.values = append([]string{"x"}, w.values...)
			v, _ := encodeHops([]hopWire{w})
			return finalRequest(t, p[1], self, v)
		}},
		{name: "duplicate header", want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			r := finalRequest(t, p[3], self, valid)
			r.Header.Add(HeaderChain, valid)
			return r
		}},
		{name: "header not covered by the signature", want: ReasonChainMalformed, req: func(t *testing.T) *http.Request {
			r, _ := signRaw(t, hopSpec{from: p[3], to: self, seed: 99})
			r.Header.Set(HeaderChain, valid)
			return r
		}},
		{name: "covered header absent", want: ReasonMissingComponent, req: func(t *testing.T) *http.Request {
			r := finalRequest(t, p[3], self, valid)
			r.Header.Del(HeaderChain)
			return r
		}},
		{name: "header altered after signing", want: ReasonBadSignature, req: func(t *testing.T) *http.Request {
			r := finalRequest(t, p[3], self, valid)
			r.Header.Set(HeaderChain, rawChain(t, hops[0], hops[1])) // drop the originator
			return r
		}},
		{name: "header altered after signing, whitespace", want: ReasonBadSignature, req: func(t *testing.T) *http.Request {
			r := finalRequest(t, p[3], self, valid)
			r.Header.Set(HeaderChain, strings.Replace(valid, "), (", "),  (", 1))
			return r
		}},
	}
	for _, tc := range tests {
		// warm: every key already expanded in the Verifier's cache, so each
		// hop is checked with its caller's expanded key; cold: none is, and
		// checking the chain adds no hop's key.
		for _, warm := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/warm=%v", tc.name, warm), func(t *testing.T) {
				peer := p[3]
				if !tc.peer.IsZero() {
					peer = tc.peer
				}
				v, err := NewVerifier(VerifierConfig{Self: self, MaxDepth: tc.maxDepth})
				if err != nil {
					t.Fatal(err)
				}
				if warm {
					for _, k := range append([]identity.PrivateKey{mallory}, p...) {
						v.keys.get(k.Public())
					}
				}
				before := v.keys.len()
				got, err := v.VerifyRequest(tc.req(t), testBody, peer.Public(), t0.Add(10*time.Second))
				wantReason(t, err, tc.want)
				if err == nil && len(got.Chain) == 0 {
					t.Fatal("accepted without a chain")
				}
				if err != nil && v.ReplayLen() != 0 {
					t.Fatal("a refused request burned its nonce")
				}
				if !warm && v.keys.len() > before+1 {
					t.Fatalf("the key cache grew from %d to %d: a hop's key was added", before, v.keys.len())
				}
			})
		}
	}
}

func mustSplit(t testing.TB, h Hop) hopWire {
	t.Helper()
	w, _, _, err := splitHop(h)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestSignRequestChain: what SignRequest refuses to send, and that a direct
// call carries no chain.
func TestSignRequestChain(t *testing.T) {
	c := newChainPeers(t)
	p := c.p
	served := relay(t, p[0], p[1], p[2]) // p2 serves p1, which serves p0
	sign := func(key identity.PrivateKey, aud identity.PublicKey, chain Chain) (*http.Request, error) {
		r, err := http.NewRequest(http.MethodPost, testURL, bytes.NewReader(testBody))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set(HeaderChain, "stale")
		_, err = SignRequest(r, testBody, SignParams{Key: key, Audience: aud, Capability: "code.review", Now: t0, Chain: chain})
		return r, err
	}
	if _, err := sign(p[2], p[3].Public(), ChainFrom(served)); err != nil {
		t.Fatalf("onward call: %v", err)
	}
	r, err := sign(p[2], p[3].Public(), nil)
	if err != nil || r.Header.Values(HeaderChain) != nil || strings.Contains(r.Header.Get(HeaderSignatureInput), "treaty-chain") {
		t.Fatalf("direct call: %v, Treaty-Chain %q", err, r.Header.Values(HeaderChain))
	}
	long := ChainFrom(served)
	for len(long) <= MaxChainHops {
		long = append(long, long[len(long)-1])
	}
	bad := []struct {
		name   string
		key    identity.PrivateKey
		aud    identity.PublicKey
		chain  Chain
		reason Reason // 0: any error
	}{
		{"loop back to the originator", p[2], p[0].Public(), ChainFrom(served), ReasonChainLoop},
		{"loop back to the served caller", p[2], p[1].Public(), ChainFrom(served), ReasonChainLoop},
		{"loop to self", p[2], p[2].Public(), ChainFrom(served), ReasonChainLoop},
		{"more than MaxChainHops", p[2], p[3].Public(), long, ReasonChainTooDeep},
		{"chain served by someone else", p[3], p[4].Public(), ChainFrom(served), 0},
		{"hop dropped", p[2], p[3].Public(), ChainFrom(served)[:1], 0},
		{"hops swapped", p[2], p[3].Public(), Chain{ChainFrom(served)[1], ChainFrom(served)[0]}, 0},
		{"from an unverified request", p[2], p[3].Public(), ChainFrom(Request{}), 0},
		{"second hop not addressed to the first hop's caller", p[2], p[3].Public(), func() Chain {
			// p1's request covers a hop from mallory to p0: signed, but not a link.
			_, m := signRaw(t, hopSpec{from: c.mallory, to: p[0].Public(), seed: 8})
			v := rawChain(t, m)
			_, h := signRaw(t, hopSpec{from: p[1], to: p[2].Public(), chain: &v, seed: 9})
			return Chain{h, m}
		}(), 0},
		{"hop followed by another request between the same peers", p[2], p[3].Public(), func() Chain {
			// Linked (p0 -> p1 again), validly signed, but not the chain hop 0 covers.
			_, other := signRaw(t, hopSpec{from: p[0], to: p[1].Public(), seed: 77})
			return Chain{ChainFrom(served)[0], other}
		}(), 0},
		{"base whose parameters line is not its signature-input", p[2], p[3].Public(), func() Chain {
			c := ChainFrom(served)
			c[0].Base = strings.TrimSuffix(c[0].Base, `tag="treaty/1"`) + `tag="treaty/2"` // the last line
			return c
		}(), 0},
		{"chain larger than MaxChainBytes", p[2], p[3].Public(), func() Chain {
			_, h := signRaw(t, hopSpec{from: p[1], to: p[2].Public(), query: "&q=" + strings.Repeat("a", MaxChainBytes), seed: 7})
			return Chain{h}
		}(), 0},
		{"base not matching its signature-input", p[2], p[3].Public(), func() Chain {
			c := ChainFrom(served)
			c[0].Base = strings.Replace(c[0].Base, `"@method"`, `"@methox"`, 1)
			return c
		}(), 0},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sign(tc.key, tc.aud, tc.chain)
			if err == nil {
				t.Fatal("SignRequest accepted the chain")
			}
			if tc.reason != 0 {
				wantReason(t, err, tc.reason)
			}
		})
	}
}

// TestChainHeaderFormat pins the encoding: one canonical inner list per
// hop, the same bytes httpsfv writes, and linear growth per hop.
func TestChainHeaderFormat(t *testing.T) {
	c := newChainPeers(t)
	hops := buildHops(t, c.p[:9]...) // 8 hops: the hard cap
	v := rawChain(t, hops...)
	l, err := httpsfv.UnmarshalList([]string{v})
	if err != nil {
		t.Fatal(err)
	}
	if canon, err := httpsfv.Marshal(l); err != nil || canon != v {
		t.Fatalf("not httpsfv's serialization: %v", err)
	}
	if len(l) != 8 {
		t.Fatalf("%d hops", len(l))
	}
	il := l[0].(httpsfv.InnerList)
	if si, _ := il.Items[0].Value.(string); si != hops[0].SignatureInput {
		t.Fatalf("first item %q, want the Signature-Input", si)
	}
	if b, _ := il.Items[2].Value.([]byte); string(b) != http.MethodPost {
		t.Fatalf("third item %q, want the @method value", b)
	}
	if len(il.Items) != 2+len(requestComponents) { // "treaty-chain" is not carried
		t.Fatalf("%d items, want %d", len(il.Items), 2+len(requestComponents))
	}
	if per := len(v) / 8; per > 800 || len(v) > MaxChainBytes/2 {
		t.Fatalf("%d bytes for 8 hops (%d per hop)", len(v), per)
	}
	t.Logf("8 hops: %d bytes", len(v))
	if _, _, err := parseChain(v); err != nil {
		t.Fatal(err)
	}
}

func TestNewVerifierMaxDepth(t *testing.T) {
	self := testKey(t, 2).Public()
	for _, d := range []int{-1, 9, 100} {
		if _, err := NewVerifier(VerifierConfig{Self: self, MaxDepth: d}); err == nil || !strings.Contains(err.Error(), "MaxDepth") {
			t.Errorf("MaxDepth %d: %v", d, err)
		}
	}
	v, err := NewVerifier(VerifierConfig{Self: self})
	if err != nil || v.depth != DefaultMaxDepth {
		t.Fatalf("default depth %d, %v", v.depth, err)
	}
	for _, d := range []int{1, 8} {
		if _, err := NewVerifier(VerifierConfig{Self: self, MaxDepth: d}); err != nil {
			t.Errorf("MaxDepth %d: %v", d, err)
		}
	}
	// MaxDepth 1 refuses any chained call.
	c := newChainPeers(t)
	v, _ = NewVerifier(VerifierConfig{Self: c.self.Public(), MaxDepth: 1})
	r := finalRequest(t, c.p[1], c.self.Public(), rawChain(t, buildHops(t, c.p[0], c.p[1])...))
	_, err = v.VerifyRequest(r, testBody, c.p[1].Public(), t0.Add(10*time.Second))
	wantReason(t, err, ReasonChainTooDeep)
}

func TestChainStatus(t *testing.T) {
	for r, want := range map[Reason]int{
		ReasonChainMalformed: 400, ReasonChainBroken: 401, ReasonChainTooDeep: 400, ReasonChainLoop: 400,
	} {
		if got := StatusFor(&Error{Reason: r}); got != want {
			t.Errorf("StatusFor(%v) = %d, want %d", r, got, want)
		}
		if f := FailureOf("wire", &Error{Reason: r}); f.Reason != r.String() || f.validate() != nil {
			t.Errorf("FailureOf(%v) = %+v", r, f)
		}
	}
	if !errors.Is(fail(ReasonChainLoop, "x"), &Error{Reason: ReasonChainLoop}) {
		t.Fatal("errors.Is")
	}
}
