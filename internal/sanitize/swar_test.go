package sanitize

import (
	"math/rand/v2"
	"testing"
)

// TestNextBreakByte checks the eight-byte skip against a byte loop on random
// data drawn mostly from the two bytes it looks for and their neighbours.
func TestNextBreakByte(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alpha := []byte("\n\\\x00\x09\x0b\x5b\x5d\x1c\x8a\xdc\xffaZ09 ")
	for range 20000 {
		d := make([]byte, r.IntN(40))
		for k := range d {
			if r.IntN(4) == 0 {
				d[k] = alpha[r.IntN(len(alpha))]
			} else {
				d[k] = byte('a' + r.IntN(26))
			}
		}
		for i := 0; i <= len(d); i++ {
			want := i
			for want < len(d) && d[want] != '\n' && d[want] != '\\' {
				want++
			}
			if got := nextBreakByte(d, i); got != want {
				t.Fatalf("nextBreakByte(%q, %d) = %d, want %d", d, i, got, want)
			}
		}
	}
}
