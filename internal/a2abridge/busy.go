package a2abridge

import (
	"context"
	"fmt"
	"iter"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2asrv"
)

// ErrBusy is wrapped by the refusal of a task beyond MaxConcurrent.
var ErrBusy = fmt.Errorf("a2abridge: %d tasks are executing, the most at once; retry when one ends", MaxConcurrent)

// limitErrText is how a2a-go's limiter refuses an execution beyond
// MaxExecutions: a plain error, which its JSON-RPC layer would answer as an
// unexplained "internal error".
const limitErrText = "max concurrency limit reached"

// busyHandler answers a2a-go's refusal of a task beyond MaxConcurrent as a
// server error that says so.
type busyHandler struct{ a2asrv.RequestHandler }

func busy(err error) error {
	if err != nil && strings.Contains(err.Error(), limitErrText) {
		return fmt.Errorf("%w: %w", ErrBusy, a2a.ErrServerError)
	}
	return err
}

func (h busyHandler) OnSendMessage(ctx context.Context, p *a2a.MessageSendParams) (a2a.SendMessageResult, error) {
	res, err := h.RequestHandler.OnSendMessage(ctx, p)
	return res, busy(err)
}

func (h busyHandler) OnSendMessageStream(ctx context.Context, p *a2a.MessageSendParams) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		for ev, err := range h.RequestHandler.OnSendMessageStream(ctx, p) {
			if !yield(ev, busy(err)) {
				return
			}
		}
	}
}
