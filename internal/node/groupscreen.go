package node

import (
	"context"
	"fmt"
	"strings"

	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/screen"
)

// ScreenGroupContent screens what group members wrote (a key's value, a
// motion's text or reason) before a local agent reads it. Other members,
// possibly of other organisations, chose those bytes, so they pass the same
// inbound screen as a call's result. The group's state does not record who
// wrote a value, so the policy is the screen rule for capability
// "group:NAME" (else the default), a marked value names the group as its
// source, and no peer's trust changes. A block is a screen refusal.
func (n *Node) ScreenGroupContent(ctx context.Context, group string, data []byte) ([]byte, error) {
	defer n.timeStage(stageScreen)()
	source := "group:" + group
	v, err := n.screener.ScreenContext(ctx, n.state.Load().cfg.ScreenPolicyFor("", source), data)
	if err != nil {
		return nil, refusal.Wrap(refusal.StageScreen, err)
	}
	n.noteVerdict(v)
	switch v.Action {
	case screen.ActionBlock:
		return nil, &refusal.Error{Stage: refusal.StageScreen,
			Reason: fmt.Sprintf("content in group %s blocked (score %.2f: %s)", group, v.Score, strings.Join(v.Reasons, ", "))}
	case screen.ActionMark:
		return screen.Mark(source, v, data), nil
	}
	return data, nil
}
