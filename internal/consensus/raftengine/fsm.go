package raftengine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// Every command in the raft log is a version byte, the leader's time stamp
// (i64 big-endian unix ns), then the request bytes. Version 2 says the leader
// verified the request's signature before appending it (every leader of this
// engine does, see checkRequest); version 1 entries, appended before that,
// are verified by every member at apply.
const (
	entryVersion         byte = 1
	entryVersionVerified byte = 2
)

const entryHeader = 1 + 8

func encodeEntry(e fsm.Entry) []byte {
	b := make([]byte, 0, entryHeader+len(e.Request))
	v := entryVersion
	if e.LeaderVerified {
		v = entryVersionVerified
	}
	b = append(b, v)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time))
	return append(b, e.Request...)
}

// decodeEntry never fails: bytes that are not an entry (which no leader of
// this engine writes) are applied as a request of those bytes at time 0, so
// every replica refuses them the same way (malformed).
func decodeEntry(b []byte) fsm.Entry {
	if len(b) < entryHeader || (b[0] != entryVersion && b[0] != entryVersionVerified) {
		return fsm.Entry{Request: b}
	}
	return fsm.Entry{Time: int64(binary.BigEndian.Uint64(b[1:entryHeader])), Request: b[entryHeader:], LeaderVerified: b[0] == entryVersionVerified}
}

// checkRequest is the leader's check before it appends a request: its
// signature must be its proposer's. Apply then trusts the entry's
// LeaderVerified mark (fsm.SignaturesVerifiedByLeader) instead of verifying
// again on every member; the group, epoch, membership and sequence checks
// stay in apply, against the state the entry meets. Bytes that do not decode
// pass: apply refuses them as malformed before any signature check.
// It returns the refusal's reason, "" when the request may be appended.
func checkRequest(req []byte) string {
	q, err := fsm.DecodeRequest(req)
	if err != nil || q.VerifySignature() {
		return ""
	}
	return fmt.Sprintf("signature is not %s's; the leader refused it before ordering", q.Proposer)
}

// badSignature is the refusal of a request whose signature did not verify at
// the leader: nothing was appended, so Index is 0.
func (e *Engine) badSignature(reason string) error {
	return fmt.Errorf("raftengine: propose: %w", &consensus.RejectedError{Group: e.genesis.Name, Code: fsm.CodeBadSignature, Reason: reason})
}

// maxSnapshotBytes bounds what Restore reads: a canonical snapshot of a full
// store (fsm.MaxStoreBytes of keys and values) with its per-key overhead,
// proposers and motions fits well inside it.
const maxSnapshotBytes = 4 * fsm.MaxStoreBytes

// machine adapts fsm.Machine to raft.BatchingFSM. raft calls Apply,
// ApplyBatch, Snapshot and Restore from one goroutine; Read runs concurrently
// under the read lock.
type machine struct{ e *Engine }

var _ raft.BatchingFSM = machine{}

// Apply implements raft.FSM.
func (f machine) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: it applies the commands in order,
// stores their decision records, then calls OnApply in order and wakes the
// readers waiting for these indexes.
func (f machine) ApplyBatch(logs []*raft.Log) []any {
	e := f.e
	out := make([]any, len(logs))
	applied := make([]consensus.Applied, 0, len(logs))
	recs := make([]storedRecord, 0, len(logs))
	changed := false
	e.mu.Lock()
	// The group before each entry, for its record; it changes only when a
	// membership motion closes.
	ep, grp := e.m.Epoch(), e.groupCanon()
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		ent := decodeEntry(l.Data)
		res := e.m.Apply(l.Index, ent)
		a := consensus.Applied{Index: l.Index, Entry: ent, Result: res}
		out[i] = a
		if res.Code == fsm.CodeIndex {
			continue // already applied (a snapshot covered it): its record stands
		}
		applied = append(applied, a)
		if rj, err := json.Marshal(res); err == nil {
			recs = append(recs, storedRecord{index: l.Index, group: grp, time: ent.Time, req: ent.Request, res: rj})
		} else {
			e.log.Error("raftengine: encode record", "index", l.Index, "err", err)
		}
		if len(res.Closed) > 0 {
			if e.m.Epoch() != ep {
				ep, grp, changed = e.m.Epoch(), e.groupCanon(), true
				e.member.Store(e.m.Group().IsMember(e.self))
			}
		}
	}
	last := e.m.LastIndex()
	e.mu.Unlock()

	e.waitCatchUp() // a snapshot's skipped entries are delivered first
	job := e.deliver(applied)
	if err := e.store.putRecords(recs); err != nil {
		e.log.Error("raftengine: decision records not stored", "event", "consensus.record_lost", "err", err)
	}
	// The delivered mark advances once the consumer flushed the batch (the
	// marker waits for it), so a crash before then replays it to OnApply.
	// Entries a restart replays up to the stored mark leave it where it is.
	if len(applied) > 0 && applied[len(applied)-1].Index > e.reported {
		job.mark = applied[len(applied)-1].Index
		e.queueMark(job)
	}
	e.watch.advance(last)
	if changed {
		e.pokeReconcile()
	}
	return out
}

// canonGroup caches the canonical encoding of one epoch's group: encoding
// it for every apply batch was a measurable share of a commit's CPU.
type canonGroup struct {
	epoch uint64
	b     []byte
}

// groupCanon is the canonical encoding of the group as last applied. The
// bytes are shared and never modified. Callers hold e.mu.
func (e *Engine) groupCanon() []byte {
	if ep := e.m.Epoch(); e.canon == nil || e.canon.epoch != ep {
		e.canon = &canonGroup{epoch: ep, b: e.m.Group().Canonical()}
	}
	return e.canon.b
}

// Snapshot implements raft.FSM: the canonical state bytes, taken under the
// read lock (Persist then runs concurrently with Apply).
func (f machine) Snapshot() (raft.FSMSnapshot, error) {
	e := f.e
	e.waitCatchUp()
	e.syncMarks() // the mark covers every applied entry, or the run is stuck
	if e.stuck.Load() {
		// A snapshot would let raft compact entries the consumer has not
		// flushed; the next start must replay them from the log.
		return nil, errors.New("raftengine: no snapshot: applied entries were not flushed by the consumer (see consensus.flush_failed)")
	}
	e.mu.RLock()
	b, idx := e.m.Snapshot(), e.m.LastIndex()
	e.mu.RUnlock()
	return &snapshot{b: b, index: idx, st: e.store}, nil
}

// Restore implements raft.FSM: it replaces the state with a snapshot's, after
// checking it is a snapshot of this group.
func (f machine) Restore(rc io.ReadCloser) error {
	e := f.e
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSnapshotBytes+1))
	if err != nil {
		return fmt.Errorf("raftengine: restore: %w", err)
	}
	if len(b) > maxSnapshotBytes {
		return fmt.Errorf("raftengine: restore: snapshot over %d bytes", maxSnapshotBytes)
	}
	m, err := fsm.RestoreWith(b, fsm.SignaturesVerifiedByLeader())
	if err != nil {
		return fmt.Errorf("raftengine: restore: %w", err)
	}
	if g := m.Group(); g.Name != e.genesis.Name || g.Mode != e.genesis.Mode {
		return fmt.Errorf("raftengine: restore: snapshot of group %s/%s, this engine runs %s/%s", g.Name, g.Mode, e.genesis.Name, e.genesis.Mode)
	}
	e.mu.Lock()
	prev := e.m.LastIndex()
	e.m, e.canon = m, nil
	e.member.Store(m.Group().IsMember(e.self))
	e.mu.Unlock()
	e.startCatchUp(prev, m.LastIndex())
	e.watch.advance(m.LastIndex())
	e.pokeReconcile()
	return nil
}

type snapshot struct {
	b     []byte
	index uint64
	st    *store
}

// Persist implements raft.FSMSnapshot. Records up to the snapshot are made
// durable first: once the snapshot exists, raft may compact their entries.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	err := s.st.syncRecords(s.index)
	if err == nil {
		_, err = sink.Write(s.b)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("raftengine: persist snapshot: %w", err), sink.Cancel())
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *snapshot) Release() {}
