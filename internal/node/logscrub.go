package node

import (
	"context"
	"time"

	"github.com/treaty-dev/treaty/internal/sanitize"
)

// logScrubTimeout bounds the redaction of one log value.
const logScrubTimeout = time.Second

// logRedact replaces every secret and PII value found in a log value.
var logRedact = sanitize.Policy{Secrets: sanitize.ActionRedact, PII: sanitize.ActionRedact}

// logSafe is err's text for the node's log with secrets and PII redacted. A
// backend's failure carries what the local tool or agent said (an MCP
// tool's error text, an A2A agent's status message), which may hold both;
// the operator still reads the rest. Text the sanitizer will not redact (a
// private key, a canary) or cannot scan in time is withheld whole.
func (n *Node) logSafe(err error) string {
	if err == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), logScrubTimeout)
	defer cancel()
	res, derr := n.sanitizer.DryRunContext(ctx, "", logRedact, []byte(err.Error()))
	if derr != nil || res.Action == sanitize.ActionBlock {
		return "[withheld from the log: the sanitizer blocks it]"
	}
	return res.Output
}
