package sanitize

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// A pattern longer than a quarter of the input (a long canary's hex form
// against a 1 KiB message) once made hits slice before the data and panic.
func TestACPatternLongerThanAPart(t *testing.T) {
	pat := strings.Repeat("ab", 150) // 300 bytes
	m := newACMatcher([]string{pat})
	for _, n := range []int{303, 400, 1024, 1100, 1199, 1200, 4096} {
		data := bytes.Repeat([]byte("x"), n)
		copy(data[n-len(pat)-3:], pat)
		hits := m.hits(data, nil)
		if len(hits) != 1 || int(hits[0].start) != n-len(pat)-3 {
			t.Fatalf("%d bytes: hits %+v, want one at %d", n, hits, n-len(pat)-3)
		}
	}
}

// TestACHitsScratchReuse checks that hits with kept scratch lists, reused
// over inputs of falling and rising size, gives what a fresh call gives.
func TestACHitsScratchReuse(t *testing.T) {
	m := newACMatcher([]string{"key", "token", "ab", "bab"})
	var scratch [acWays - 1][]acHit
	for _, n := range []int{2000, 300, 5000, 255, 256, 1024} {
		data := bytes.Repeat([]byte("xkey tokenbab "), n/14+1)[:n]
		want := m.hits(data, nil)
		got := m.hitsScratch(data, nil, &scratch)
		if !slices.Equal(got, want) {
			t.Fatalf("%d bytes: %d hits with scratch, %d without", n, len(got), len(want))
		}
	}
}
