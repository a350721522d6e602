// Package refusal is the one error type every stage of the call path returns when
// it declines a call, so that callers (the CLI's exit codes, the local API, the
// audit log) can branch on the stage without parsing messages.
//
// The type, the stages and the exit codes are defined in the public leaf
// package localapi, so that agents see the same *Error the node returns; the
// names here are aliases of those.
package refusal

import (
	"fmt"

	"github.com/treaty-dev/treaty/localapi"
)

// Stage names the stage of the call path that refused.
type Stage = localapi.Stage

// The stages in call-path order. The CLI maps each to an exit code (see ExitCode).
const (
	StageUsage     = localapi.StageUsage
	StageResolve   = localapi.StageResolve
	StageBudget    = localapi.StageBudget
	StageSanitize  = localapi.StageSanitize
	StageTransport = localapi.StageTransport
	StageWire      = localapi.StageWire
	StageTrust     = localapi.StageTrust
	StagePolicy    = localapi.StagePolicy
	StageScreen    = localapi.StageScreen
	StageBackend   = localapi.StageBackend
	StageConsensus = localapi.StageConsensus
	StageAudit     = localapi.StageAudit
	StageInternal  = localapi.StageInternal
)

// Error is a refusal. Reason is short and safe to show to the peer; Err is local
// detail and is never sent over the wire.
type Error = localapi.Error

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
func StageOf(err error) Stage { return localapi.StageOf(err) }

// Exit codes of the CLI contract (docs/cli.md).
const (
	ExitOK          = localapi.ExitOK
	ExitError       = localapi.ExitError
	ExitUsage       = localapi.ExitUsage
	ExitDenied      = localapi.ExitDenied
	ExitUnreachable = localapi.ExitUnreachable
	ExitBlocked     = localapi.ExitBlocked
	ExitRemoteFail  = localapi.ExitRemoteFail
)

// ExitCode maps an error to the CLI's exit code.
func ExitCode(err error) int { return localapi.ExitCode(err) }
