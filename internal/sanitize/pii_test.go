package sanitize

import (
	"encoding/binary"
	"testing"
)

// hasTrigger8 must never miss a digit, ':' or '@', whatever the other bytes.
func TestHasTrigger8(t *testing.T) {
	for b := 0; b < 256; b++ {
		for pos := 0; pos < 8; pos++ {
			for _, fill := range []byte{'a', 0xff, 0x80, 0x2f, 0x41, 0} {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(b)
				got := hasTrigger8(binary.LittleEndian.Uint64(w[:]))
				trigger := piiTrigger[b] != 0
				fillTrig := piiTrigger[fill] != 0
				if trigger && !got {
					t.Fatalf("missed byte %#x at %d among %#x", b, pos, fill)
				}
				if !trigger && !fillTrig && got && !(b >= 0x30 && b <= 0x40) {
					t.Fatalf("false alarm on %#x among %#x", b, fill)
				}
			}
		}
	}
}
