package wire

import (
	"net/http"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// The key cache never holds more than its bound, and whatever it evicts, the
// key it returns is the one asked for: a stale or wrong entry would verify
// one peer's signature with another's key.
func TestKeyCacheBounded(t *testing.T) {
	c := keyCache{max: 2, m: make(map[identity.PublicKey]*identity.ExpandedKey)}
	msg := []byte("m")
	for round := range 3 {
		for n := byte(1); n <= 5; n++ {
			k := testKey(t, n)
			ek := c.get(k.Public())
			if !ek.PublicKey().Equal(k.Public()) || !ek.Verify(msg, k.Sign(msg)) {
				t.Fatalf("round %d key %d: the cache returned another key", round, n)
			}
			if other := testKey(t, n+10); ek.Verify(msg, other.Sign(msg)) {
				t.Fatalf("round %d key %d: accepted another key's signature", round, n)
			}
			if l := c.len(); l > 2 {
				t.Fatalf("round %d key %d: %d keys kept, bound 2", round, n, l)
			}
		}
	}
	// A key asked for again is served from the cache, not expanded again.
	k := testKey(t, 5).Public()
	if c.get(k) != c.get(k) {
		t.Error("the same key was expanded twice")
	}
}

// A Verifier with a one-key cache still verifies requests from two peers
// that take turns, each with its own key.
func TestVerifierKeyCacheChurn(t *testing.T) {
	k := testKeys(t)
	v, err := NewVerifier(VerifierConfig{Self: k.bob.Public(), KeyCache: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		caller := k.alice
		if i%2 == 1 {
			caller = k.mallory
		}
		c, _ := signedRequest(t, k, testBody, func(p *SignParams) { p.Key = caller; p.Rand = seededRand(uint64(100 + i)) })
		if _, err := v.VerifyRequest(serverView(t, c), testBody, caller.Public(), t0); err != nil {
			t.Fatalf("request %d from %s: %v", i, caller.Public().Short(), err)
		}
		// The same request presented as the other peer's is refused.
		other := k.mallory
		if caller.Public().Equal(k.mallory.Public()) {
			other = k.alice
		}
		c, _ = signedRequest(t, k, testBody, func(p *SignParams) { p.Key = caller; p.Rand = seededRand(uint64(200 + i)) })
		_, err := v.VerifyRequest(serverView(t, c), testBody, other.Public(), t0)
		wantReason(t, err, ReasonKeyMismatch)
	}
	if n := v.keys.len(); n != 1 {
		t.Errorf("%d keys kept, bound 1", n)
	}
}

// BenchmarkVerifyResponseKeyCache alternates blocks of the package's
// VerifyResponse (the callee's key decoded on every call) and the Verifier's
// (expanded once), so that a loaded machine slows both alike, and reports
// each one's cost per response and cached/uncached. Each block runs at one
// of 64 stack depths in turn: the expanded key's table is on the heap, and
// at a few stack addresses its reads alias the stack's writes (4 KiB apart)
// and run slower, so one depth alone can mislead either way.
func BenchmarkVerifyResponseKeyCache(b *testing.B) {
	k := testKeys(b)
	r, sent := signedRequest(b, k, testBody, nil)
	req, err := newVerifier(b, k.bob.Public()).VerifyRequest(serverView(b, r), testBody, k.alice.Public(), t0)
	if err != nil {
		b.Fatal(err)
	}
	h := http.Header{}
	if err := SignResponse(h, 200, respBody, req, k.bob, t0); err != nil {
		b.Fatal(err)
	}
	resp := &http.Response{StatusCode: 200, Header: h}
	v, callee := newVerifier(b, k.alice.Public()), k.bob.Public()
	const block = 4
	uncachedBlock := func() {
		for range block {
			if _, err := VerifyResponse(resp, respBody, sent, callee); err != nil {
				b.Fatal(err)
			}
		}
	}
	cachedBlock := func() {
		for range block {
			if _, err := v.VerifyResponse(resp, respBody, sent, callee); err != nil {
				b.Fatal(err)
			}
		}
	}
	var uncached, cached time.Duration
	i := 0
	for b.Loop() {
		depth := i % 64
		i++
		t0 := time.Now()
		atDepth(depth, uncachedBlock)
		t1 := time.Now()
		atDepth(depth, cachedBlock)
		uncached, cached = uncached+t1.Sub(t0), cached+time.Since(t1)
	}
	n := float64(b.N * block)
	b.ReportMetric(float64(uncached.Nanoseconds())/n, "uncached-ns/response")
	b.ReportMetric(float64(cached.Nanoseconds())/n, "cached-ns/response")
	b.ReportMetric(float64(cached)/float64(uncached), "cached/uncached")
}

// atDepth calls f with n more 64-byte frames on the stack.
//
//go:noinline
func atDepth(n int, f func()) {
	if n == 0 {
		f()
		return
	}
	var pad [64]byte
	pad[n%64] = byte(n)
	atDepth(n-1, f)
	if pad[n%64] != byte(n) {
		panic("stack pad changed")
	}
}
