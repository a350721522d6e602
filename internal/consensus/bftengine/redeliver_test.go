package bftengine

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"testing"
	"time"

	protos "github.com/hyperledger-labs/SmartBFT/smartbftprotos"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// logWatch is a slog handler that signals when a record with message want
// is logged, and passes records on to next (nil: drops them).
type logWatch struct {
	want atomic.Pointer[string]
	seen chan struct{}
	next slog.Handler
}

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }

func (w *logWatch) Handle(ctx context.Context, r slog.Record) error {
	if p := w.want.Load(); p != nil && r.Message == *p {
		select {
		case w.seen <- struct{}{}:
		default:
		}
	}
	if w.next != nil && w.next.Enabled(ctx, r.Level) {
		return w.next.Handle(ctx, r)
	}
	return nil
}

func (w *logWatch) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *logWatch) WithGroup(string) slog.Handler      { return w }

// A member's SmartBFT controller syncs while its view decides the next
// sequence: the sync fetches that decision from the others and aborts the
// view, and the controller, handed the decision its checkpoint already
// holds, syncs again instead of delivering it. SmartBFT v1.0.1 then blocked
// handing the decision back to the view that was gone: the member applied
// each later decision only when the one after it was decided (one behind in
// an idle group, for good) and its Close could block. The engine answers
// that sync with a reconfiguration to the same node set, and the member
// keeps deciding.
func TestControllerSyncRacingItsViewsDecision(t *testing.T) {
	h := newHarness(t, 4)
	const m = 3
	watch := &logWatch{seen: make(chan struct{}, 1)}
	if testLogger(t, m).Enabled(context.Background(), slog.LevelDebug) {
		watch.next = testLogger(t, m).Handler()
	}
	h.logs[m] = slog.New(watch)
	var armed atomic.Bool
	inSync, release := make(chan struct{}, 1), make(chan struct{})
	h.opts[m].beforeSync = func() {
		if armed.CompareAndSwap(true, false) {
			inSync <- struct{}{}
			<-release
		}
	}
	h.startAll()
	all := []int{0, 1, 2, 3}
	a := h.proposeOp(0, fsm.Put("x", []byte("v")), 30*time.Second)
	h.waitIndex(all, a.Index, 20*time.Second)

	e := h.engines[m]
	e.dmu.Lock()
	next := e.lastSeq + 1
	e.dmu.Unlock()
	want := fmt.Sprintf("smartbft: Deciding on seq %d", next)
	watch.want.Store(&want)

	// Make the controller sync, as catchUp does: a heartbeat from the
	// leader naming a later view.
	armed.Store(true)
	l := e.leaderID()
	if l == 0 || l == e.self.Load() {
		t.Fatalf("member %d: leader %d", m+1, l)
	}
	e.cons().HandleMessage(l, &protos.Message{Content: &protos.Message_HeartBeat{HeartBeat: &protos.HeartBeat{View: math.MaxUint64}}})
	select {
	case <-inSync:
	case <-time.After(10 * time.Second):
		t.Fatal("the controller did not sync")
	}
	// While it syncs, the group decides the next sequence; this member's
	// view takes part and decides it too.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := contextWithin(30 * time.Second)
		defer cancel()
		_, err := h.engines[0].ProposeOp(ctx, fsm.Put("y", []byte("v")))
		done <- err
	}()
	select {
	case <-watch.seen:
	case <-time.After(20 * time.Second):
		close(release)
		t.Fatalf("member %d's view did not decide sequence %d", m+1, next)
	}
	waitFor(t, 20*time.Second, "the others to store the decision", func() bool {
		for _, i := range []int{0, 1, 2} {
			o := h.engines[i]
			o.dmu.Lock()
			s := o.lastSeq
			o.dmu.Unlock()
			if s < next {
				return false
			}
		}
		return true
	})
	close(release) // the sync fetches it and aborts the view
	if err := <-done; err != nil {
		t.Fatalf("propose y: %v", err)
	}

	// The member decides what follows, in an idle group.
	z := h.proposeOp(1, fsm.Put("z", []byte("v")), 30*time.Second)
	h.waitIndex([]int{m}, z.Index, 15*time.Second)
	z2 := h.proposeOp(m, fsm.Put("z2", []byte("v")), 30*time.Second)
	h.sameState(all, z2.Index)
	h.applied.check(t, all)
}

// Close returns even when SmartBFT's Stop does not (its controller blocked
// for good, as SmartBFT v1.0.1's can be; here held inside Deliver), after
// stopWait, instead of hanging the caller.
func TestCloseDoesNotWaitForAStuckSmartBFT(t *testing.T) {
	h := newHarness(t, 4)
	const m = 2
	var armed atomic.Bool
	entered, hold := make(chan struct{}, 1), make(chan struct{})
	h.opts[m].stopWait = time.Second
	h.opts[m].beforeDeliver = func() {
		if armed.Load() {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-hold
		}
	}
	h.startAll()
	t.Cleanup(func() { close(hold) }) // runs before the harness closes the others
	armed.Store(true)
	h.proposeOp(0, fsm.Put("x", []byte("v")), 30*time.Second)
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatalf("member %d's controller did not deliver", m+1)
	}
	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- h.engines[m].Close() }()
	select {
	case err := <-closed:
		if d := time.Since(start); d < time.Second {
			t.Errorf("Close returned after %v, before stopWait: SmartBFT was not blocked", d)
		}
		t.Logf("Close returned after %v (%v)", time.Since(start), err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked on SmartBFT's Stop")
	}
	h.engines[m] = nil
}
