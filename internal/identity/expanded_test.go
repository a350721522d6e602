package identity

import (
	"crypto/ed25519"
	"sync"
	"testing"
	"time"
)

// One expansion serves many verifications, concurrently, with the same
// verdicts as the key itself: the way a per-peer cache uses it.
func TestExpandedKeyReused(t *testing.T) {
	k, other := seeded(t, 7), seeded(t, 8)
	ek := k.Public().Expand()
	if !ek.PublicKey().Equal(k.Public()) {
		t.Fatal("PublicKey is not the key expanded")
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				msg := []byte{byte(g), byte(i)}
				sig := k.Sign(msg)
				if !ek.Verify(msg, sig) {
					t.Errorf("goroutine %d message %d: a valid signature was refused", g, i)
				}
				bad := append([]byte(nil), sig...)
				bad[i%64] ^= 1 << (i % 8)
				if ek.Verify(msg, bad) || ek.Verify(append(msg, 0), sig) {
					t.Errorf("goroutine %d message %d: a corrupted signature or other message was accepted", g, i)
				}
				if ek.Verify(msg, other.Sign(msg)) {
					t.Errorf("goroutine %d message %d: another key's signature was accepted", g, i)
				}
			}
		})
	}
	wg.Wait()
}

// The zero and nil ExpandedKey, the zero key's expansion, and wrong lengths
// refuse without a panic.
func TestExpandedKeyRefusesEmpty(t *testing.T) {
	k := seeded(t, 7)
	msg := []byte("m")
	sig := k.Sign(msg)
	var nilKey *ExpandedKey
	for name, ek := range map[string]*ExpandedKey{"nil": nilKey, "zero value": {}, "zero key": PublicKey{}.Expand()} {
		if ek.Verify(msg, sig) {
			t.Errorf("%s: accepted a signature", name)
		}
		if !ek.PublicKey().IsZero() {
			t.Errorf("%s: PublicKey is not zero", name)
		}
	}
	ek := k.Public().Expand()
	for _, n := range []int{0, 63, 65} {
		if ek.Verify(msg, make([]byte, n)) {
			t.Errorf("a %d-byte signature was accepted", n)
		}
	}
	if ek.Verify(msg, append(sig, 0)) || ek.Verify(msg, sig[:ed25519.SignatureSize-1]) {
		t.Error("a signature of the wrong length was accepted")
	}
}

// BenchmarkVerifyExpandedRatio alternates blocks of plain and expanded
// verifications, so that a loaded machine slows both alike, and reports each
// one's cost per verification and expanded/plain. Each block runs at one of
// 64 stack depths in turn: the expanded table is on the heap, and at a few
// stack addresses its reads alias the stack's writes (4 KiB apart) and run
// slower, so one depth alone can mislead either way.
func BenchmarkVerifyExpandedRatio(b *testing.B) {
	k := seeded(b, 7)
	msg := make([]byte, 400)
	sig := k.Sign(msg)
	pub := k.Public()
	ek := pub.Expand()
	const block = 4
	plainBlock := func() {
		for range block {
			if !pub.Verify(msg, sig) {
				b.Fatal("refused")
			}
		}
	}
	expandedBlock := func() {
		for range block {
			if !ek.Verify(msg, sig) {
				b.Fatal("refused")
			}
		}
	}
	var plain, expanded time.Duration
	i := 0
	for b.Loop() {
		depth := i % 64
		i++
		t0 := time.Now()
		atDepth(depth, plainBlock)
		t1 := time.Now()
		atDepth(depth, expandedBlock)
		plain, expanded = plain+t1.Sub(t0), expanded+time.Since(t1)
	}
	n := float64(b.N * block)
	b.ReportMetric(float64(plain.Nanoseconds())/n, "plain-ns/verify")
	b.ReportMetric(float64(expanded.Nanoseconds())/n, "expanded-ns/verify")
	b.ReportMetric(float64(expanded)/float64(plain), "expanded/plain")
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
