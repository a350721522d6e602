package bftengine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

func TestFourMembersDecideAndAgree(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()

	// Every member proposes, concurrently, through itself.
	const per = 5
	var wg sync.WaitGroup
	errs := make(chan error, 4*per)
	for i := range 4 {
		reqs := make([][]byte, per)
		for j := range per {
			reqs[j] = h.req(i, fsm.Put(fmt.Sprintf("k%d-%d", i, j), []byte("v")))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range reqs {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				a, err := h.engines[i].Propose(ctx, r)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				if !a.Result.OK() {
					errs <- a.Result.Err()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := []int{0, 1, 2, 3}
	h.waitIndex(all, 4*per, 10*time.Second)
	d := h.digest(0)
	for _, i := range all[1:] {
		if h.digest(i) != d {
			t.Fatalf("member %d's state differs from member 1's", i+1)
		}
	}
	h.applied.check(t, all)

	// A linearizable read on another member sees every write.
	var n int
	if err := h.engines[2].Read(context.Background(), func(m *fsm.Machine) { n = len(m.Keys("k")) }); err != nil {
		t.Fatal(err)
	}
	if n != 4*per {
		t.Fatalf("read saw %d keys, want %d", n, 4*per)
	}
	st := h.engines[1].Status()
	if !st.Healthy || st.Leader.IsZero() || st.LastIndex < 4*per {
		t.Fatalf("status %+v", st)
	}
}

func TestProposeRefusals(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	e := h.engines[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := e.Propose(ctx, []byte("junk")); err == nil {
		t.Fatal("malformed request accepted")
	}
	stranger := h.c.Keys[0] // signs for another group
	other, _ := fsm.NewGroup("other", fsm.ModeBFT, 0, h.c.Group.Members)
	q, _ := fsm.SignRequest(stranger, other.ID(), 1, fsm.Put("a", nil))
	if _, err := e.Propose(ctx, q.Encode()); err == nil {
		t.Fatal("request for another group accepted")
	}
	// A request whose signature is not its proposer's.
	r := h.req(1, fsm.Put("a", []byte("1")))
	r[len(r)-1] ^= 1
	if _, err := e.Propose(ctx, r); err == nil {
		t.Fatal("request with a bad signature accepted")
	}
	// A CAS mismatch is an agreed result, not an error.
	a, err := e.Propose(ctx, h.req(1, fsm.CAS("a", []byte("x"), 7)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Result.Code != fsm.CodeCASMismatch {
		t.Fatalf("code %q, want cas-mismatch", a.Result.Code)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	h.engines[0] = nil
	if _, err := e.Propose(ctx, h.req(1, fsm.Put("b", nil))); !errors.Is(err, consensus.ErrClosed) {
		t.Fatalf("propose after close: %v, want ErrClosed", err)
	}
}

func TestRecordsVerifyOffline(t *testing.T) {
	h := newHarness(t, 4)
	h.startAll()
	a := h.propose(1, h.req(1, fsm.OpenMotion("approve", 3, 0, "merge #12")), 10*time.Second)
	h.waitIndex([]int{0, 1, 2, 3}, a.Index, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 4 {
		r, err := h.engines[i].Record(ctx, a.Index)
		if err != nil {
			t.Fatalf("member %d: %v", i+1, err)
		}
		if err := fsm.Verify(r); err != nil {
			t.Fatalf("member %d's record: %v", i+1, err)
		}
		if len(r.Certificate) < h.c.Group.Quorum() {
			t.Fatalf("certificate of %d", len(r.Certificate))
		}
	}
	if _, err := h.engines[0].Record(ctx, a.Index+100); !errors.Is(err, consensus.ErrNoRecord) {
		t.Fatalf("record of an unknown index: %v", err)
	}
}
