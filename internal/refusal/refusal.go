// Package refusal is the one error type every stage of the call path returns when
// it declines a call, so that callers (the CLI's exit codes, the local API, the
// audit log) can branch on the stage without parsing messages.
package refusal

import (
	"errors"
	"fmt"
)

// Stage names the stage of the call path that refused.
type Stage string

// The stages in call-path order. The CLI maps each to an exit code (see ExitCode).
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
	StageAudit     Stage = "audit"     // the evidence could not be made durable
	StageInternal  Stage = "internal"  // a bug or local fault
)

// Error is a refusal. Reason is short and safe to show to the peer; Err is local
// detail and is never sent over the wire.
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

// New returns a refusal with a formatted reason.
func New(stage Stage, format string, args ...any) *Error {
	return &Error{Stage: stage, Reason: fmt.Sprintf(format, args...)}
}

// Wrap returns a refusal whose reason is err's text and whose cause is err.
func Wrap(stage Stage, err error) *Error {
	return &Error{Stage: stage, Reason: err.Error(), Err: err}
}

// StageOf returns the stage of the first refusal in err's chain, or "" when err
// is not a refusal.
func StageOf(err error) Stage {
	var r *Error
	if errors.As(err, &r) {
		return r.Stage
	}
	return ""
}

// Exit codes of the CLI contract (DESIGN.md).
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitDenied      = 3
	ExitUnreachable = 4
	ExitBlocked     = 5
	ExitRemoteFail  = 6
)

// ExitCode maps an error to the CLI's exit code.
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
