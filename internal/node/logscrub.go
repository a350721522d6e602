package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/treaty-dev/treaty/internal/sanitize"
)

// logScrubTimeout bounds the redaction of one log value.
const logScrubTimeout = time.Second

// logRedact replaces every secret and PII value found in a log value.
var logRedact = sanitize.Policy{Secrets: sanitize.ActionRedact, PII: sanitize.ActionRedact}

// logSafe is err's text for the node's log with secrets and PII redacted
// (logRedacted). A backend's failure carries what the local tool or agent
// said (an MCP tool's error text, an A2A agent's status message), which may
// hold both; the operator still reads the rest.
func (n *Node) logSafe(err error) string {
	if err == nil {
		return ""
	}
	return n.logRedacted(err.Error())
}

// redactHandler is the handler of the logger backends get: the values of
// its redactKeys attributes (what a local tool, server or agent said: an
// error, a server's stderr) are logged as logRedacted makes them.
type redactHandler struct {
	slog.Handler
	n *Node
}

// redactKeys are the attributes a backend fills with foreign text.
var redactKeys = map[string]bool{"err": true, "stderr": true}

// backendLog is the logger capabilities' backends log through.
func (n *Node) backendLog() *slog.Logger {
	return slog.New(redactHandler{Handler: n.log.Handler(), n: n})
}

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	for i, a := range as {
		as[i] = h.attr(a)
	}
	return redactHandler{Handler: h.Handler.WithAttrs(as), n: h.n}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{Handler: h.Handler.WithGroup(name), n: h.n}
}

func (h redactHandler) attr(a slog.Attr) slog.Attr {
	if !redactKeys[a.Key] {
		return a
	}
	return slog.String(a.Key, h.n.logRedacted(a.Value.Resolve().String()))
}

// logRedacted is s with secrets and PII redacted, or a note that it was
// withheld: the sanitizer will not redact it (a private key, a canary),
// could not scan it in time, or does not run yet (backends built at Open,
// before it starts).
func (n *Node) logRedacted(s string) string {
	sz := n.logSanitizer.Load()
	if sz == nil {
		return "[withheld from the log: the sanitizer is not started yet]"
	}
	ctx, cancel := context.WithTimeout(context.Background(), logScrubTimeout)
	defer cancel()
	res, err := sz.DryRunContext(ctx, "", logRedact, []byte(s))
	if err != nil || res.Action == sanitize.ActionBlock {
		return "[withheld from the log: the sanitizer blocks it]"
	}
	return res.Output
}
