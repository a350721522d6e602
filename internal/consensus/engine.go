// Package consensus runs treaty's consensus groups: members that agree on
// shared state (a key-value store and motions, see package fsm) through a
// Raft engine inside one organisation or a BFT engine across organisations.
//
// Both engines sit behind Engine, so the node, the CLI and the local API use
// one interface whatever the mode. Engines talk over the node's transport,
// one ALPN protocol per group (see Network), so group traffic gets the same
// pinned-key mutual TLS as every other connection and one group's connections
// never count against another's per-peer limits.
package consensus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// Engine orders the entries of one group and applies them, in order and
// exactly once, to the group's fsm.Machine. Its methods are safe for
// concurrent use.
type Engine interface {
	// Propose submits a signed request (fsm.Request.Encode) and returns once
	// the entry that carries it is committed and applied on this member, with
	// its index and the machine's result. A result that refused the request
	// (CAS mismatch, not a member, replayed sequence) is returned, not an
	// error: the entry was still agreed. Errors wrap ErrNoQuorum,
	// ErrNotMember, ErrClosed or ctx.Err().
	Propose(ctx context.Context, req []byte) (Applied, error)
	// Read runs fn on the applied state once every entry committed before
	// Read was called has been applied here (a linearizable read). fn must
	// not retain m or call into the engine.
	Read(ctx context.Context, fn func(m *fsm.Machine)) error
	// Record returns the decision record of an applied index: for BFT with
	// the certificate of 2f+1 member signatures, for Raft with
	// NoCertificate set. Errors wrap ErrNoRecord when the index is unknown
	// or compacted away.
	Record(ctx context.Context, index uint64) (fsm.Record, error)
	// Status is a snapshot of the engine's view of the group.
	Status() Status
	// Close stops the engine; durable state stays in its directory.
	Close() error
}

// Applied is the outcome of a committed entry on this member.
type Applied struct {
	Index  uint64
	Entry  fsm.Entry
	Result fsm.Result
	// Redelivered says OnApply may have seen this entry before this
	// member restarted (its delivery was not yet recorded as flushed):
	// the consumer must deduplicate it. Since is then the consumer's
	// position FlushApplied returned before any of these entries could
	// have been consumed: the consumer looks for them from there.
	Redelivered bool
	Since       uint64
	// Adopted says this member did not apply the entry itself: it was
	// away while the group decided it and caught up with a snapshot, and
	// the entry and result come from the leader's decision record (Raft).
	Adopted bool
	// Removed says this member's own request (a yes vote) passed a
	// membership change that removed it: the request succeeded, and this
	// node is no longer a member. Set by Manager, never by an engine.
	Removed bool
}

// Status is what `treaty group ls` shows.
type Status struct {
	Group     fsm.Group
	Leader    identity.PublicKey // Raft leader or leader of the BFT view; zero if none is known
	Term      uint64             // Raft term or BFT view number
	LastIndex uint64             // last index applied on this member
	Healthy   bool               // a leader is known and it heard from a quorum recently
	Members   []MemberStatus
}

// MemberStatus is one member as this member sees it.
type MemberStatus struct {
	Key         identity.PublicKey
	Reachable   bool
	LastContact time.Time // zero if never
}

// Errors an Engine's methods wrap.
var (
	ErrNoQuorum  = errors.New("consensus: no quorum")
	ErrNotMember = errors.New("consensus: not a member of the group")
	ErrClosed    = errors.New("consensus: engine closed")
	ErrNoRecord  = errors.New("consensus: no record for that index")
)

// EngineConfig is what both engines are built from. Each engine validates
// it and names the wrong field.
type EngineConfig struct {
	Group fsm.Group           // required: the definition at epoch 0, or as last persisted
	Self  identity.PrivateKey // required: this member's identity key (signs BFT messages and attestations)
	Dir   string              // required: the engine's durable state (log, WAL, snapshots); created 0700
	Net   Network             // required: connections to the other members
	// Now is the clock that stamps proposals and checks others' stamps
	// (fsm.CheckProposedTime). Nil: time.Now.
	Now func() time.Time
	// MaxSkew bounds how far ahead of local time a proposal's stamp may be.
	// Zero: 5s.
	MaxSkew time.Duration
	// OnApply, if set, is called after each entry is applied on this member,
	// in index order, from the engine's apply goroutine. It must not block
	// for long and must not call into the engine. It is the audit seam.
	OnApply func(Applied)
	// FlushApplied, if set, is called after each run of OnApply calls, on
	// the same goroutine. It returns the consumer's current position
	// (entries OnApply is given later are consumed at or after it) and a
	// wait that returns once the run is durable with the consumer (the
	// audit log's fsync); wait may be called from another goroutine. An
	// engine that calls it records the run as delivered only after wait
	// returns nil, so that a crash before then redelivers it
	// (Applied.Redelivered, Applied.Since) and a crash after it does not:
	// with the consumer's deduplication, each entry is consumed exactly
	// once.
	FlushApplied func() (position uint64, wait func() error)
	// OnEvidence, if set, reports misbehaviour by a member (a bad signature,
	// an equivocating proposal, a forged request): the trust and audit seam.
	// It must not block.
	OnEvidence func(member identity.PublicKey, kind, detail string)
	// AdmitRequest, if set, gates each request another member asks this
	// member to order for it (a Raft follower's proposal forwarded to the
	// leader, a request sent to the BFT view's leader): trust and budgets,
	// as for a call. size is the request's length. Its error, a
	// *refusal.Error naming the stage (budget, trust), refuses the request
	// before it is ordered and reaches the proposer with that stage. release, if not nil, is called once the request is
	// decided or abandoned. It must not block.
	AdmitRequest func(member identity.PublicKey, size int) (release func(), err error)
	// Log receives engine events. Nil: slog.Default().
	Log *slog.Logger
}
