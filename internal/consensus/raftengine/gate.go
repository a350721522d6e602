package raftengine

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// maxGateReason bounds the leader's reason a follower shows its caller.
const maxGateReason = 512

// admit runs the node's gate (EngineConfig.AdmitRequest) on a request member
// forwarded to this leader. The release it returns is never nil.
func (e *Engine) admit(member identity.PublicKey, size int) (release func(), err error) {
	release = func() {}
	if e.cfg.AdmitRequest == nil {
		return release, nil
	}
	rel, err := e.cfg.AdmitRequest(member, size)
	if err != nil {
		return release, err
	}
	if rel != nil {
		release = rel
	}
	return release, nil
}

// gateBody is a gate refusal on the forwarding stream: its stage, a zero
// byte, its reason.
func gateBody(err error) []byte {
	stage, reason := refusal.StageBudget, err.Error()
	var r *refusal.Error
	if errors.As(err, &r) {
		stage, reason = r.Stage, r.Reason
	}
	return append(append([]byte(stage), 0), reason...)
}

// gateRefusal is the follower's error for a gate refusal by leader: a
// refusal with the stage the leader named (budget or trust; any other is
// taken as budget), so that the proposer's exit code follows it. The
// leader's reason is bounded and stripped of control characters.
func gateRefusal(leader identity.PublicKey, body []byte) error {
	st, reason, _ := strings.Cut(string(body), "\x00")
	stage := refusal.Stage(st)
	if stage != refusal.StageTrust {
		stage = refusal.StageBudget
	}
	if len(reason) > maxGateReason {
		reason = reason[:maxGateReason]
	}
	reason = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, reason)
	return refusal.Wrap(stage, fmt.Errorf("raftengine: propose: leader %s refused the request at stage %s, nothing was appended: %s", leader.Short(), stage, reason))
}
