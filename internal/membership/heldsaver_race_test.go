package membership

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHeldSaverNoMarkLostUnderRaces: many goroutines hold statements while
// saves fail now and then and Close races with them. Saves never overlap;
// once marking stops, the retries and timers save everything without a
// further Mark (no lost wake-up); and once Close and every concurrent Mark
// have returned, everything held is saved, with no timer left to run.
func TestHeldSaverNoMarkLostUnderRaces(t *testing.T) {
	st := &savedState{}
	var inFlight, overlaps atomic.Int64
	s, err := NewHeldSaver(HeldSaverConfig{Interval: time.Millisecond, Save: func() error {
		if inFlight.Add(1) > 1 {
			overlaps.Add(1)
		}
		defer inFlight.Add(-1)
		return st.save()
	}})
	if err != nil {
		t.Fatal(err)
	}
	burst := func(goroutines, marks int, during func()) {
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range marks {
					st.hold(s)
					if g == 0 && i == marks/2 && during != nil {
						during()
					}
				}
			})
		}
		wg.Wait()
	}

	st.fail.Store(3) // the first saves fail: retried with backoff
	burst(8, 200, nil)
	waitFor(t, "every statement held saved, with no Mark after the burst", func() bool {
		return st.saved.Load() == st.held.Load()
	})
	if st.fail.Load() != 0 {
		t.Fatalf("%d injected failures never hit", st.fail.Load())
	}

	var closeErr error
	burst(8, 200, func() { closeErr = s.Close() })
	if closeErr != nil {
		t.Fatal(closeErr)
	}
	if saved, held := st.saved.Load(), st.held.Load(); saved != held {
		t.Fatalf("after Close and the Marks racing it returned: saved %d of %d held", saved, held)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	timer := s.timer
	s.mu.Unlock()
	if timer != nil {
		t.Fatal("a timer is left after Close")
	}
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d saves ran while another ran", n)
	}
	if got := s.Stats(); got.Failed != 3 {
		t.Fatalf("stats %+v, want 3 failed", got)
	}
}
