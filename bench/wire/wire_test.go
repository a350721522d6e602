// Package wirebench measures the cost of the treaty/1 federation protocol
// per call against the bare ed25519 operations it cannot avoid.
package wirebench

import (
	"bytes"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/wire"
)

func key(b *testing.B, n byte) identity.PrivateKey {
	k, err := identity.FromSeed(bytes.Repeat([]byte{n}, 32))
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// oneCall runs the four protocol steps of one call: the caller signs, the
// callee verifies and signs its response, the caller verifies the response.
func oneCall(b *testing.B, caller, callee identity.PrivateKey, v *wire.Verifier, body, out []byte, now time.Time) (wire.Sent, wire.Request) {
	req, err := http.NewRequest(http.MethodPost, "https://callee.example:7443/v1/call/code.review", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	sent, err := wire.SignRequest(req, body, wire.SignParams{Key: caller, Audience: callee.Public(), Capability: "code.review", Now: now})
	if err != nil {
		b.Fatal(err)
	}
	in, err := v.VerifyRequest(req, body, caller.Public(), now)
	if err != nil {
		b.Fatal(err)
	}
	h := http.Header{}
	if err := wire.SignResponse(h, http.StatusOK, out, in, callee, now); err != nil {
		b.Fatal(err)
	}
	if _, err := wire.VerifyResponse(&http.Response{StatusCode: http.StatusOK, Header: h}, out, sent, callee.Public()); err != nil {
		b.Fatal(err)
	}
	return sent, in
}

// BenchmarkCall measures SignRequest + VerifyRequest + SignResponse +
// VerifyResponse per call with 1 KiB bodies against the baseline: 2 ed25519
// signs and 2 verifies over messages as long as the real signature bases.
// Each iteration times one call and then one baseline, interleaved, so both
// see the same load on a shared machine. ns/op covers both; the metrics are
// wire-ns/op and baseline-ns/op (means), p50-wire-ns and p50-baseline-ns,
// overhead-ns/op (wire minus baseline, means) and x-baseline (the ratio of
// means). The clock advances 1 ms per call, so the replay window reaches
// its steady state (60 s of nonces) as in production.
func BenchmarkCall(b *testing.B) {
	caller, callee := key(b, 1), key(b, 2)
	v, err := wire.NewVerifier(wire.VerifierConfig{Self: callee.Public()})
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("a"), 1024)
	out := bytes.Repeat([]byte("b"), 1024)
	t0 := time.Unix(1_750_000_000, 0)

	// A sample call sizes the baseline messages exactly.
	sample, _ := oneCall(b, caller, callee, v, body, out, t0.Add(-time.Hour))
	reqMsg := bytes.Repeat([]byte("r"), len(sample.Base))
	respMsg := bytes.Repeat([]byte("s"), 420) // a response base is 400-430 bytes
	cpub, epub := caller.Public(), callee.Public()

	wireD := make([]time.Duration, 0, b.N)
	baseD := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t1 := time.Now()
		oneCall(b, caller, callee, v, body, out, t0.Add(time.Duration(i)*time.Millisecond))
		t2 := time.Now()
		s1 := caller.Sign(reqMsg)
		ok1 := cpub.Verify(reqMsg, s1)
		s2 := callee.Sign(respMsg)
		ok2 := epub.Verify(respMsg, s2)
		t3 := time.Now()
		if !ok1 || !ok2 {
			b.Fatal("baseline verify failed")
		}
		wireD = append(wireD, t2.Sub(t1))
		baseD = append(baseD, t3.Sub(t2))
	}
	b.StopTimer()
	wireMean, baseMean := mean(wireD), mean(baseD)
	b.ReportMetric(wireMean, "wire-ns/op")
	b.ReportMetric(baseMean, "baseline-ns/op")
	b.ReportMetric(p50(wireD), "p50-wire-ns")
	b.ReportMetric(p50(baseD), "p50-baseline-ns")
	b.ReportMetric(wireMean-baseMean, "overhead-ns/op")
	b.ReportMetric(wireMean/baseMean, "x-baseline")
}

func mean(d []time.Duration) float64 {
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return float64(sum.Nanoseconds()) / float64(len(d))
}

func p50(d []time.Duration) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[len(s)/2].Nanoseconds())
}
