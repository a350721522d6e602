package localapi

import (
	"errors"
	"fmt"
)

// Stage names the stage of the call path that refused.
type Stage string

// The stages in call-path order. ExitCode maps each to the CLI's exit code.
const (
	StageUsage     Stage = "usage"     // the local caller's request is malformed
	StageResolve   Stage = "resolve"   // unknown, unadmitted or revoked peer
	StageBudget    Stage = "budget"    // rate, concurrency, bytes, cost, breaker, depth
	StageSanitize  Stage = "sanitize"  // outbound content blocked
	StageTransport Stage = "transport" // unreachable, handshake refused, wrong key
	StageWire      Stage = "wire"      // signature, audience, freshness, replay, limits
	StageTrust     Stage = "trust"     // trust too low or quarantined
	StagePolicy    Stage = "policy"    // no permit (default deny)
	StageScreen    Stage = "screen"    // inbound content blocked
	StageBackend   Stage = "backend"   // the capability failed
	StageConsensus Stage = "consensus" // the group refused the request on its merits (CAS mismatch, closed motion)
	StageAudit     Stage = "audit"     // the evidence could not be made durable
	StageInternal  Stage = "internal"  // a bug or local fault
)

// Error is a refusal. Reason is short and safe to show to the peer; Err is local
// detail and is never sent over the wire or the socket.
type Error struct {
	Stage  Stage
	Reason string
	Remote bool  // the refusal came from the peer, not from this node
	Err    error // local cause, or nil
}

func (e *Error) Error() string {
	where := ""
	if e.Remote {
		where = "remote "
	}
	return fmt.Sprintf("%s%s: %s", where, e.Stage, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// StageOf returns the stage of the first refusal in err's chain, or "" when err
// is not a refusal.
func StageOf(err error) Stage {
	var r *Error
	if errors.As(err, &r) {
		return r.Stage
	}
	return ""
}

// Exit codes of the CLI contract (docs/cli.md).
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitDenied      = 3
	ExitUnreachable = 4
	ExitBlocked     = 5
	ExitRemoteFail  = 6
)

// ExitCode maps an error to the CLI's exit code: nil is ExitOK and an error
// that is not a refusal, or whose stage is audit or internal, is ExitError.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	switch StageOf(err) {
	case StageUsage:
		return ExitUsage
	case StageResolve, StageBudget, StageWire, StageTrust, StagePolicy:
		return ExitDenied
	case StageTransport:
		return ExitUnreachable
	case StageSanitize, StageScreen:
		return ExitBlocked
	case StageBackend:
		return ExitRemoteFail
	default:
		return ExitError
	}
}

// HTTPStatus is the status code the local API answers err with: 400 usage,
// 403 denied, 502 unreachable, 422 blocked, 424 remote failure, 409 consensus,
// 500 otherwise.
func HTTPStatus(err error) int {
	switch ExitCode(err) {
	case ExitOK:
		return 200
	case ExitUsage:
		return 400
	case ExitDenied:
		return 403
	case ExitUnreachable:
		return 502
	case ExitBlocked:
		return 422
	case ExitRemoteFail:
		return 424
	}
	if StageOf(err) == StageConsensus {
		return 409 // agreed, and refused: the request conflicts with the group's state
	}
	return 500
}
