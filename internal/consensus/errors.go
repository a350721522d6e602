package consensus

import (
	"context"
	"errors"
	"fmt"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// Errors the Manager's methods wrap besides the Engine's. Every error a
// Manager returns for a request is also a *refusal.Error, so the local API
// and the CLI map it to an exit code:
//
//	ErrUnknownGroup            usage     (exit 2)
//	ErrNotMember               policy    (exit 3)
//	ErrNoQuorum, ErrTimeout    transport (exit 4)
//	a refused request          consensus (exit 1): ErrCASMismatch, a closed motion, ...
var (
	ErrUnknownGroup = errors.New("consensus: no such group on this node")
	ErrTimeout      = errors.New("consensus: timed out before the group committed")
	ErrCASMismatch  = errors.New("consensus: compare-and-set mismatch")
)

// RejectedError is a request the group refused on its merits (the machine's
// Result.Code): the entry exists at Index and changed nothing. Index 0 means
// it was refused before ordering (a Raft leader found its signature bad) and
// no entry exists.
// errors.Is matches ErrCASMismatch for a CAS mismatch and ErrNotMember for a
// proposer that is not a member.
type RejectedError struct {
	Group   string
	Index   uint64
	Code    fsm.Code
	Reason  string
	Version uint64 // a CAS mismatch: the key's current version (0: absent)
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("group %s refused entry %d (%s): %s", e.Group, e.Index, e.Code, e.Reason)
}

// Is implements errors.Is for the typed outcomes callers branch on.
func (e *RejectedError) Is(target error) bool {
	switch target {
	case ErrCASMismatch:
		return e.Code == fsm.CodeCASMismatch
	case ErrNotMember:
		return e.Code == fsm.CodeNotMember
	}
	return false
}

// asRefusal gives err the stage its exit code follows from. An error that is
// already a refusal keeps its stage.
func asRefusal(err error) error {
	if err == nil || refusal.StageOf(err) != "" {
		return err
	}
	var rej *RejectedError
	switch {
	case errors.Is(err, ErrUnknownGroup):
		return refusal.Wrap(refusal.StageUsage, err)
	case errors.Is(err, ErrNotMember):
		return refusal.Wrap(refusal.StagePolicy, err)
	case errors.Is(err, ErrNoQuorum), errors.Is(err, ErrTimeout), errors.Is(err, ErrClosed):
		return refusal.Wrap(refusal.StageTransport, err)
	case errors.Is(err, context.DeadlineExceeded):
		return refusal.Wrap(refusal.StageTransport, fmt.Errorf("%w: %w", ErrTimeout, err))
	case errors.As(err, &rej):
		return refusal.Wrap(refusal.StageConsensus, err)
	}
	return err
}
