package backend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// A call its caller cancels ends only when the worker is done with it (or
// at its timeout): the protocol cannot stop the work, so a peer that
// cancels at once must not free its concurrency slot while the worker still
// works for it, or it could queue unbounded work on a worker all peers share.
func TestWorkerCancelWaitsForTheWork(t *testing.T) {
	t.Parallel()
	w := testWorker(t, 10*time.Second)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		out []byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		out, err := w.Call(ctx, inv(t, `{"do":"gate","dir":`+strconv.Quote(dir)+`}`))
		res <- result{out, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "got")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker never got the call")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case r := <-res:
		t.Fatalf("Call returned (%s, %v) while the worker still worked on it", r.out, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := <-res
	var f *Failure
	if !errors.As(r.err, &f) || f.Reason != "cancelled" {
		t.Fatalf("Call = %s, %v; want the failure \"cancelled\"", r.out, r.err)
	}
}
