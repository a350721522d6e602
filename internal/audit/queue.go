package audit

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// queue holds the work waiting for a commit, in log order. One goroutine at a
// time is the committer: it takes batches off the queue and commits them. On
// an idle log that is the appender itself, so an uncontended Append commits
// on its own goroutine and waits for no other (each hand-off between
// goroutines cost a wake-up on the call path, two per durable append). When
// appenders pile up behind a commit, the committer hands the rest to the
// writer goroutine once its own entry is durable, so no appender waits for
// more than the commits ahead of it.
type queue struct {
	mu         sync.Mutex
	ops        []*op
	urgent     int  // ops that ask for a commit (not deferred)
	flush      bool // commit the held deferred entries too (Wait, DeferFor, Close)
	committing bool
	closed     bool
	held       *time.Timer // armed while deferred entries wait: DeferFor
	idle       sync.Cond   // signalled when committing ends (Close waits on it)

	// contendedAt is when an urgent append last found a commit under way
	// (monotonic nanoseconds since epoch): appends arrive faster than
	// commits end.
	contendedAt atomic.Int64
	epoch       time.Time
}

// add queues o in log order and reports whether the caller became the
// committer (it must then call lead, or hand the role to the writer). A
// deferred entry makes its caller the committer only when it fills a batch.
func (l *Log) add(ctx context.Context, o *op) (lead bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	q := &l.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false, ErrClosed
	}
	q.ops = append(q.ops, o)
	if o.deferred {
		if q.held == nil {
			q.held = time.AfterFunc(l.cfg.DeferFor, l.deferElapsed)
		}
		if len(q.ops) < l.cfg.MaxBatch || q.committing {
			return false, nil
		}
		// A full batch commits without waiting for DeferFor.
		q.committing = true
		return true, nil
	}
	q.urgent++
	if q.committing {
		q.contendedAt.Store(int64(time.Since(q.epoch)))
		return false, nil
	}
	q.committing = true
	return true, nil
}

// askFlush asks for the held deferred entries' commit and reports whether
// the caller became the committer.
func (l *Log) askFlush() (lead bool) {
	q := &l.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ops) == 0 {
		return false
	}
	q.flush = true
	if q.committing {
		return false
	}
	q.committing = true
	return true
}

// deferElapsed commits held deferred entries DeferFor after the first of them.
func (l *Log) deferElapsed() {
	q := &l.q
	q.mu.Lock()
	q.held = nil
	lead := false
	if len(q.ops) > 0 {
		q.flush = true
		if !q.committing {
			q.committing, lead = true, true
		}
	}
	q.mu.Unlock()
	if lead {
		l.wake <- struct{}{}
	}
}

// wanted reports whether queued work asks for a commit. q.mu is held.
func (l *Log) wanted() bool {
	q := &l.q
	return len(q.ops) > 0 && (q.urgent > 0 || q.flush || len(q.ops) >= l.cfg.MaxBatch)
}

// take returns the next batch, or nil when nothing asks for a commit; then
// the caller is no longer the committer.
func (l *Log) take() []*op {
	q := &l.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if !l.wanted() {
		q.committing = false
		q.idle.Broadcast()
		return nil
	}
	n := min(len(q.ops), l.cfg.MaxBatch)
	batch := make([]*op, n)
	copy(batch, q.ops)
	clear(q.ops[:n])
	q.ops = q.ops[n:]
	for _, o := range batch {
		if !o.deferred {
			q.urgent--
		}
	}
	if len(q.ops) == 0 {
		q.ops = nil
		q.flush = false
		if q.held != nil {
			q.held.Stop()
			q.held = nil
		}
	}
	return batch
}

// release ends an inline committer's turn, or, when queued work asks for a
// commit (it may have come while the last batch was committed), keeps the
// role and reports that the writer goroutine must be woken to take it on.
func (l *Log) release() (more bool) {
	q := &l.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if l.wanted() {
		return true
	}
	q.committing = false
	q.idle.Broadcast()
	return false
}

// lead runs the committer's loop. With own set (an appender committing
// inline) it returns once own is answered, handing any further work to the
// writer goroutine; with own nil (the writer) it commits until nothing asks
// for a commit.
func (l *Log) lead(own *op) {
	if l.q.contended() {
		// Appends are piling up: let the goroutines that are ready run
		// first, so those about to append join this batch instead of paying
		// for a commit of their own. With nothing else ready this returns at
		// once; it adds no timer and no wake-up.
		runtime.Gosched()
	}
	for {
		batch := l.take()
		if batch == nil {
			return
		}
		l.commit(batch)
		if own != nil && len(own.done) > 0 {
			if l.release() {
				l.wake <- struct{}{} // still the committer: the writer goes on
			}
			return
		}
	}
}

// contended reports whether an urgent append waited for a commit within the
// last contendedFor.
func (q *queue) contended() bool {
	at := q.contendedAt.Load()
	return at != 0 && time.Duration(int64(time.Since(q.epoch))-at) < contendedFor
}

// contendedFor is how long after an append last waited for a commit the
// committer still yields before it takes its batch (lead).
const contendedFor = 10 * time.Millisecond

// writer is the committer whenever an appender cannot be: after an inline
// committer's own entry is durable, for AppendAsync and for DeferFor.
func (l *Log) writer() {
	defer close(l.done)
	for {
		select {
		case <-l.wake:
			l.lead(nil)
		case <-l.closing:
			return
		}
	}
}

// drainForClose refuses new work, waits for the committer, and commits what
// is queued, deferred entries included.
func (l *Log) drainForClose() {
	q := &l.q
	q.mu.Lock()
	q.closed = true
	for q.committing {
		q.idle.Wait()
	}
	lead := len(q.ops) > 0
	if lead {
		q.flush = true
		q.committing = true
	}
	q.mu.Unlock()
	if lead {
		l.lead(nil)
	}
}
