package fsm

import (
	"fmt"
	"testing"
)

// BenchmarkApplyPut measures apply alone (decode, ed25519 verify, store), the
// state machine's share of a commit; signing is done before the timer starts.
func BenchmarkApplyPut(b *testing.B) {
	ks := keys(b, 4)
	g := group(b, ModeBFT, ks)
	reqs := make([][]byte, b.N)
	for i := range reqs {
		reqs[i] = signed(b, ks[i%4], g.ID(), uint64(i/4+1), Put(fmt.Sprintf("k%d", i%1024), []byte("value")))
	}
	m := machine(b, g)
	b.ResetTimer()
	for i := range b.N {
		if r := m.Apply(uint64(i+1), Entry{Time: int64(i), Request: reqs[i]}); !r.OK() {
			b.Fatal(r.Err())
		}
	}
}
