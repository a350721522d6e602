package audit

import (
	"errors"
	"fmt"

	"github.com/treaty-dev/treaty/internal/identity"
)

var (
	// ErrTampered is wrapped by every error that says the stored log does not
	// match its signed checkpoints (*BadEntryError, *BadCheckpointError).
	ErrTampered = errors.New("audit: log does not match its signed checkpoints")
	// ErrClosed is returned by a Log after Close.
	ErrClosed = errors.New("audit: log closed")
	// ErrBeyondSize is returned by ConsistencyProof and Prove for a size or index
	// the log has not reached. A peer that answers a consistency request with it
	// for a size it once signed admits a rollback; Witness.Observe treats it so.
	ErrBeyondSize = errors.New("audit: beyond the log's size")
)

// BadEntryError names the first entry at which the stored log stops matching
// its signed checkpoints.
type BadEntryError struct {
	Index  uint64
	Reason string
}

func (e *BadEntryError) Error() string {
	return fmt.Sprintf("audit: entry %d: %s", e.Index, e.Reason)
}

func (e *BadEntryError) Unwrap() error { return ErrTampered }

// BadCheckpointError names a stored checkpoint that is not a valid signed
// checkpoint of this log.
type BadCheckpointError struct {
	Size   uint64 // the size column of the row
	Reason string
}

func (e *BadCheckpointError) Error() string {
	return fmt.Sprintf("audit: checkpoint at size %d: %s", e.Size, e.Reason)
}

func (e *BadCheckpointError) Unwrap() error { return ErrTampered }

// ForkError reports a peer whose signed checkpoints cannot both describe one
// append-only log. Old and New are the two signed notes; with a valid signature
// each, they are evidence that a third party can check (for a failed proof,
// the proof is stored with them).
type ForkError struct {
	Peer   identity.PublicKey
	Reason string // "same size, different root", "rollback", "inconsistent", ReasonUnproven, ReasonPruneInconsistent
	Old    []byte // the checkpoint note seen before (ReasonPruneInconsistent: the peer's pruning record)
	New    []byte // the conflicting checkpoint note
}

func (e *ForkError) Error() string {
	return fmt.Sprintf("audit: peer %s log forked: %s", e.Peer.Short(), e.Reason)
}

// ErrDependency is wrapped by *DependencyError.
var ErrDependency = errors.New("audit: the entry it depends on was not logged")

// DependencyError refuses an entry appended with AppendAfter whose dependency
// did not become durable: the log never holds the one without the other. Err
// is why the dependency was refused.
type DependencyError struct {
	Err error
}

func (e *DependencyError) Error() string {
	return fmt.Sprintf("%v: %v", ErrDependency, e.Err)
}

func (e *DependencyError) Unwrap() []error { return []error{ErrDependency, e.Err} }
