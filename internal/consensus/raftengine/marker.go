package raftengine

import "github.com/treaty-dev/treaty/internal/consensus"

// The delivered mark (ADR 0011) advances off the apply goroutine: after each
// batch the apply goroutine hands OnApply's consumer the batch, takes the
// consumer's position and a wait for its durability, and queues them here;
// the marker stores the mark once the wait returns, in batch order. Apply
// never waits for the consumer's fsync, and the mark never runs ahead of
// it.

// markQueue bounds the batches waiting for the consumer; beyond it the
// apply goroutine waits (backpressure from a slow audit log).
const markQueue = 256

// markJob is one batch's delivery. sync, if set, is a barrier: closed once
// every earlier job is done.
type markJob struct {
	mark, cursor uint64
	wait         func() error
	sync         chan struct{}
}

// deliver hands applied entries to OnApply (those above the mark stored
// before this start; the ones a restart may have delivered before marked
// Redelivered) and asks the consumer to flush them. It returns the job that
// marks them delivered once flushed; its mark is left for the caller.
func (e *Engine) deliver(applied []consensus.Applied) markJob {
	n := 0
	if e.cfg.OnApply != nil {
		for _, a := range applied {
			if a.Index > e.reported {
				a.Redelivered = a.Index <= e.maybeReported
				if a.Redelivered {
					a.Since = e.reportedCursor
				}
				e.cfg.OnApply(a)
				n++
			}
		}
	}
	if n > 0 && e.cfg.FlushApplied != nil {
		e.lastCursor, e.pendingWait = e.cfg.FlushApplied()
	}
	return markJob{cursor: e.lastCursor, wait: e.takeWait()}
}

// takeWait returns the consumer's wait of the last flush, once.
func (e *Engine) takeWait() func() error {
	w := e.pendingWait
	e.pendingWait = nil
	return w
}

// queueMark hands j to the marker; it waits while the queue is full.
func (e *Engine) queueMark(j markJob) {
	select {
	case e.marks <- j:
	case <-e.done:
	}
}

// syncMarks waits until the marker has handled every job queued so far.
func (e *Engine) syncMarks() {
	ch := make(chan struct{})
	e.queueMark(markJob{sync: ch})
	select {
	case <-ch:
	case <-e.done:
	}
}

// markLoop is the marker. After a failed flush it stores no further mark in
// this run (and snapshots stop, see Snapshot), so the next start replays
// everything from the last good mark.
func (e *Engine) markLoop() {
	defer e.wg.Done()
	for {
		var j markJob
		select {
		case j = <-e.marks:
		case <-e.done:
			return
		}
		if j.sync != nil {
			close(j.sync)
			continue
		}
		if e.stuck.Load() {
			continue
		}
		if j.wait != nil {
			if err := j.wait(); err != nil {
				e.stuck.Store(true)
				e.log.Error("raftengine: applied entries not flushed by the consumer; they are delivered again at the next start", "event", "consensus.flush_failed",
					"through", j.mark, "err", err)
				continue
			}
		}
		if j.mark > 0 {
			if err := e.store.setMark(j.mark, j.cursor); err != nil {
				e.log.Error("raftengine: delivered mark not stored", "event", "consensus.mark_lost", "mark", j.mark, "err", err)
			}
		}
	}
}
