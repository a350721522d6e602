package sanitize

import (
	"math"
	"math/rand/v2"
	"testing"
)

// shannonPlain is the entropy summed over all 256 counts in order: the
// reference shannon must equal bit for bit, as entropy thresholds compare
// against it.
func shannonPlain(s []byte) float64 {
	if len(s) == 0 {
		return 0
	}
	var counts [256]int
	for _, b := range s {
		counts[b]++
	}
	inv := 1 / float64(len(s))
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			f := float64(c) * inv
			h -= f * math.Log2(f)
		}
	}
	return h
}

func TestShannonExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		b := make([]byte, r.IntN(300))
		alpha := 1 + r.IntN(256)
		for k := range b {
			b[k] = byte(r.IntN(alpha) + r.IntN(256-alpha+1))
		}
		if got, want := shannon(b), shannonPlain(b); got != want {
			t.Fatalf("shannon(%q) = %v, want %v", b, got, want)
		}
	}
}
