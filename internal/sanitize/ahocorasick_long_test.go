package sanitize

import (
	"bytes"
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
