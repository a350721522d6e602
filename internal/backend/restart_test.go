package backend

import (
	"testing"
	"time"
)

// TestRestartBackoff: at once after the first death, then doubling from
// 100 ms to the 5 s cap however many deaths follow; a healthy answer resets.
func TestRestartBackoff(t *testing.T) {
	var b restartBackoff
	t0 := time.Unix(0, 0)
	b.died(t0)
	if w := b.wait(t0); w > 0 {
		t.Fatalf("after one death: wait %v, want none", w)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	for _, d := range want {
		b.died(t0)
		if w := b.wait(t0); w != d {
			t.Fatalf("wait %v, want %v", w, d)
		}
	}
	for range 100 {
		b.died(t0)
	}
	if w := b.wait(t0); w != restartMaxBackoff {
		t.Fatalf("after many deaths: wait %v, want the cap %v", w, restartMaxBackoff)
	}
	b.healthy()
	b.died(t0)
	if w := b.wait(t0); w > 0 {
		t.Fatalf("after a healthy answer and one death: wait %v, want none", w)
	}
}
