package raftengine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// A member that catches up from a snapshot (it was away while the group
// compacted its log past it) adopts the entries the snapshot covers without
// applying them one by one. So that its audit log and its decision records
// still hold every entry (ADR 0011), it fetches their records from the other
// members over the forwarding stream (kindRecords), checks each, stores them
// and delivers them to OnApply marked Adopted, before any later entry.
const (
	// maxRecordsAnswer bounds the records one answer carries (a record is at
	// most a request, a result and the group's encoding, well under it).
	maxRecordsAnswer = 2 << 20
	// catchUpTimeout bounds fetching one snapshot's gap; past it the gap is
	// logged, the delivered mark stays below it and the next start tries
	// again.
	catchUpTimeout = 2 * time.Minute
	// catchUpRetry is the pause between rounds over the members.
	catchUpRetry = 500 * time.Millisecond
)

// catchUp is the fetch of the records of [from, to] after a snapshot.
type catchUp struct {
	from, to uint64 // inclusive
	done     chan struct{}
}

// startCatchUp begins fetching the records a restored snapshot skipped:
// those above both what this member applied before and its delivered mark,
// up to the snapshot's index. It runs on the apply goroutine (Restore);
// ApplyBatch delivers nothing later until it is done.
func (e *Engine) startCatchUp(prevLast, snapIndex uint64) {
	e.waitCatchUp()
	from := max(prevLast, e.reported) + 1
	if snapIndex < from {
		return
	}
	c := &catchUp{from: from, to: snapIndex, done: make(chan struct{})}
	e.catching = c
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(c.done)
		e.runCatchUp(c)
	}()
}

// waitCatchUp waits for a running catch-up (on the apply goroutine).
func (e *Engine) waitCatchUp() {
	if c := e.catching; c != nil {
		select {
		case <-c.done:
		case <-e.done:
		}
		e.catching = nil
	}
}

func (e *Engine) runCatchUp(c *catchUp) {
	select { // e.raft is set once start returns
	case <-e.ready:
	case <-e.done:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), catchUpTimeout)
	defer cancel()
	go func() {
		select {
		case <-e.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	e.log.Info("raftengine: fetching the records a snapshot skipped", "event", "consensus.catch_up", "from", c.from, "to", c.to)
	next := c.from
	for next <= c.to {
		through, recs, err := e.fetchRound(ctx, next, c.to)
		if err == nil {
			applied := make([]consensus.Applied, 0, len(recs))
			for _, r := range recs {
				var res fsm.Result
				_ = json.Unmarshal(r.res, &res) // checked by checkRecord
				applied = append(applied, consensus.Applied{Index: r.index, Entry: fsm.Entry{Time: r.time, Request: r.req}, Result: res, Adopted: true})
			}
			job := e.deliver(applied)
			if err := e.store.putRecords(recs); err != nil {
				e.log.Error("raftengine: adopted records not stored", "event", "consensus.record_lost", "err", err)
			}
			job.mark = through
			e.queueMark(job)
			next = through + 1
			continue
		}
		if ctx.Err() != nil {
			e.stuck.Store(true)
			e.log.Error("raftengine: entries adopted with a snapshot are not audited; the next start tries again", "event", "consensus.audit_gap",
				"from", next, "to", c.to, "err", err)
			return
		}
		t := time.NewTimer(catchUpRetry)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// fetchRound asks the leader, then every other member, for the records
// from next to at most to, and returns the first valid answer.
func (e *Engine) fetchRound(ctx context.Context, next, to uint64) (uint64, []storedRecord, error) {
	e.mu.RLock()
	members := e.m.Group().Members
	e.mu.RUnlock()
	var peers []identity.PublicKey
	if l, ok := e.leader(); ok && l != e.self {
		peers = append(peers, l)
	}
	for _, k := range members {
		if k != e.self && (len(peers) == 0 || k != peers[0]) {
			peers = append(peers, k)
		}
	}
	err := errors.New("no other member")
	for _, p := range peers {
		through, recs, ferr := e.fwd.records(ctx, p, next, to)
		if ferr == nil {
			return through, recs, nil
		}
		err = ferr
		e.log.Debug("raftengine: records not fetched", "peer", p.Short(), "from", next, "err", err)
	}
	return 0, nil, err
}

// records asks peer for the records from..to (inclusive); the answer covers
// from..through, through <= to.
func (f *forwarder) records(ctx context.Context, peer identity.PublicKey, from, to uint64) (through uint64, recs []storedRecord, err error) {
	r, _, _, err := f.call(ctx, peer, kindRecords, func() ([]byte, error) {
		return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, from), to), nil
	})
	if err != nil {
		return 0, nil, err
	}
	if r.status != statusOK {
		return 0, nil, fmt.Errorf("member %s: %s", peer.Short(), r.body)
	}
	through, recs, err = f.e.checkAnswer(from, to, r.body)
	if err != nil {
		return 0, nil, fmt.Errorf("member %s: %w", peer.Short(), err)
	}
	return through, recs, nil
}

// checkAnswer decodes and checks another member's answer for from..to: it
// covers from..through within the request, and its records are in order,
// within that range, and each passes checkRecord.
func (e *Engine) checkAnswer(from, to uint64, body []byte) (through uint64, recs []storedRecord, err error) {
	if len(body) < 8 {
		return 0, nil, errors.New("short answer")
	}
	through = binary.BigEndian.Uint64(body)
	if through < from || through > to {
		return 0, nil, fmt.Errorf("answer through %d, asked %d..%d", through, from, to)
	}
	if recs, err = decodeRecords(body[8:]); err != nil {
		return 0, nil, err
	}
	next := from
	for _, x := range recs {
		if x.index < next || x.index > through {
			return 0, nil, fmt.Errorf("record %d out of order or range", x.index)
		}
		if err := e.checkRecord(x); err != nil {
			return 0, nil, fmt.Errorf("record %d: %w", x.index, err)
		}
		next = x.index + 1
	}
	return through, recs, nil
}

// checkRecord accepts a fetched record of this group: its definition parses
// and is this group's, its result parses, and a request the group accepted
// verifies as its proposer's, a member's (fsm.Verify). Raft members do not
// lie (ADR 0011); the checks catch a corrupt store or a member of another
// group.
func (e *Engine) checkRecord(r storedRecord) error {
	g, err := fsm.ParseGroup(r.group)
	if err != nil {
		return err
	}
	if g.Name != e.genesis.Name || g.Mode != e.genesis.Mode {
		return fmt.Errorf("record of group %s/%s", g.Name, g.Mode)
	}
	var res fsm.Result
	if err := json.Unmarshal(r.res, &res); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	if res.OK() {
		if err := fsm.Verify(fsm.NewRecord(g, r.index, fsm.Entry{Time: r.time, Request: r.req}, res, nil)); err != nil {
			return err
		}
	}
	return nil
}

// serveRecords answers a kindRecords request from the store: through (the
// last index the answer covers), then the records of the indexes from..through
// that have one. This member's records are complete up to its delivered
// mark (an index without one is raft's own entry), so it answers only that
// far.
func (e *Engine) serveRecords(ctx context.Context, body []byte) (byte, []byte) {
	if len(body) != 16 {
		return statusRefused, []byte("records request of the wrong size")
	}
	from, to := binary.BigEndian.Uint64(body), binary.BigEndian.Uint64(body[8:])
	mark, _, err := e.store.delivered(ctx)
	if err != nil {
		return statusRefused, []byte(err.Error())
	}
	if to = min(to, mark); from == 0 || to < from {
		return statusRefused, fmt.Appendf(nil, "records here are complete only through index %d", mark)
	}
	recs, err := e.store.recordsFrom(ctx, from, to, maxRecordsAnswer)
	if err != nil {
		return statusRefused, []byte(err.Error())
	}
	through := to
	if len(recs) > 0 && recs[len(recs)-1].index < to {
		if more, err := e.store.recordsFrom(ctx, recs[len(recs)-1].index+1, to, 0); err == nil && len(more) > 0 {
			through = recs[len(recs)-1].index // cut by size: the rest comes next round
		}
	}
	out := binary.BigEndian.AppendUint64(nil, through)
	for _, r := range recs {
		out = appendRecord(out, r)
	}
	return statusOK, out
}

func appendRecord(b []byte, r storedRecord) []byte {
	b = binary.BigEndian.AppendUint64(b, r.index)
	b = binary.BigEndian.AppendUint64(b, uint64(r.time))
	for _, p := range [][]byte{r.group, r.req, r.res} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

func decodeRecords(b []byte) ([]storedRecord, error) {
	var out []storedRecord
	for len(b) > 0 {
		if len(b) < 16 {
			return nil, errors.New("truncated record")
		}
		r := storedRecord{index: binary.BigEndian.Uint64(b), time: int64(binary.BigEndian.Uint64(b[8:]))}
		b = b[16:]
		for _, p := range []*[]byte{&r.group, &r.req, &r.res} {
			if len(b) < 4 {
				return nil, errors.New("truncated record")
			}
			n := binary.BigEndian.Uint32(b)
			b = b[4:]
			if uint64(n) > uint64(len(b)) {
				return nil, errors.New("truncated record")
			}
			*p, b = b[:n:n], b[n:]
		}
		out = append(out, r)
	}
	return out, nil
}
