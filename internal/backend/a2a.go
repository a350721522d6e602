package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2aclient"
	"github.com/a2aproject/a2a-go/a2aclient/agentcard"
)

// A2A bounds: how often a task an agent left unfinished is polled, and how
// long cancelling a task the call gave up on may take.
const (
	a2aPollMin   = 50 * time.Millisecond
	a2aPollMax   = time.Second
	a2aCancelFor = 2 * time.Second
)

// A2A sends a call's input to one skill of a local A2A agent over JSON-RPC
// (github.com/a2aproject/a2a-go) and maps the task's state to the call's
// outcome:
//
//   - completed: the output is built from the task's artifacts (or, without
//     any, its status message): one data part is its object; text parts
//     alone are their JSON, else {"text": TEXT}; anything else is
//     {"parts": [...]} with the parts as A2A writes them.
//   - failed, rejected, canceled: a failure naming the state.
//   - input-required, auth-required: a failure saying the agent asked for
//     more, which a treaty call (one message) cannot give; the task is
//     cancelled at the agent.
//   - submitted, working: the task is polled until it ends or the call's
//     Timeout passes, when it is cancelled at the agent.
//
// The message carries the input as its one data part (a JSON object) or as
// JSON text (any other value), and the skill's id in its metadata under
// "skill": A2A has no field that chooses a skill, and an agent serving one
// skill may ignore it. The agent sees nothing of the peer.
//
// The agent card is read from URL on first use and again after a failure.
// Its endpoint must be on the same host as URL, so a card cannot send inputs
// elsewhere; only the JSON-RPC transport is used. Every answer's body, and
// every event of a stream, is read up to 2*MaxOutput + 1 MiB (a stream's
// length is bounded by Timeout). What the agent says when a task fails
// stays in Failure.Err (local logs): like a tool's error text, it may hold
// local detail the peer must not see.
type A2A struct {
	URL        string        // the agent's base URL; its card is at URL/.well-known/agent-card.json
	Skill      string        // required: the skill's id on the card
	Timeout    time.Duration // per call, card included; required
	MaxOutput  int           // zero: DefaultMaxOutput
	HTTPClient *http.Client  // nil: a client without proxy or redirects
	Log        *slog.Logger  // nil: slog.Default()

	mu     sync.Mutex
	client *a2aclient.Client
	card   *a2a.AgentCard
}

func (b *A2A) log() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.Default()
}

func (b *A2A) maxOutput() int {
	if b.MaxOutput > 0 {
		return b.MaxOutput
	}
	return DefaultMaxOutput
}

func (b *A2A) httpClient() *http.Client {
	base := b.HTTPClient
	if base == nil {
		base = &http.Client{
			Transport: &http.Transport{
				// Local agents only: no proxy from the environment.
				DialContext:     (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				IdleConnTimeout: idleConnTimeout,
			},
			CheckRedirect: noRedirects,
		}
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c := *base
	c.Transport = boundedBodies{rt: rt, max: int64(2*b.maxOutput() + 1<<20), perEvent: true}
	return &c
}

// connect returns the client, reading the card and making one if needed.
func (b *A2A) connect(ctx context.Context) (*a2aclient.Client, *a2a.AgentCard, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client != nil {
		return b.client, b.card, nil
	}
	hc := b.httpClient()
	card, err := agentcard.NewResolver(hc).Resolve(ctx, b.URL)
	if err != nil {
		return nil, nil, fail("could not read the a2a agent's card", err)
	}
	if err := sameHost(b.URL, card); err != nil {
		return nil, nil, fail("the a2a agent's card points elsewhere", err)
	}
	if len(card.Skills) > 0 && !hasSkill(card, b.Skill) {
		return nil, nil, fail("the a2a agent has no such skill", fmt.Errorf("skill %q is not on the card of %s", b.Skill, b.URL))
	}
	c, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithDefaultsDisabled(), a2aclient.WithJSONRPCTransport(hc))
	if err != nil {
		return nil, nil, fail("the a2a agent offers no JSON-RPC endpoint", err)
	}
	b.client, b.card = c, card
	return c, card, nil
}

// forget drops the client after a failure that may mean the agent changed.
func (b *A2A) forget(c *a2aclient.Client) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client == c {
		b.client, b.card = nil, nil
	}
}

// sameHost checks that every endpoint of card is on rawURL's host.
func sameHost(rawURL string, card *a2a.AgentCard) error {
	want, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	eps := append([]a2a.AgentInterface{{Transport: card.PreferredTransport, URL: card.URL}}, card.AdditionalInterfaces...)
	for _, ep := range eps {
		if ep.Transport != a2a.TransportProtocolJSONRPC {
			continue
		}
		u, err := url.Parse(ep.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Hostname(), want.Hostname()) {
			return fmt.Errorf("endpoint %q is not on %s", ep.URL, want.Hostname())
		}
	}
	return nil
}

func hasSkill(card *a2a.AgentCard, id string) bool {
	for _, s := range card.Skills {
		if s.ID == id {
			return true
		}
	}
	return false
}

// Describe returns the skill's description from the agent's card, for the
// capability's own when it has none; bounded and cleaned as MCP.Describe's.
// It reads the card afresh each time (a reload asks again, so an agent
// updated in place is described anew), checked as a call checks it; the
// client calls use is not changed.
func (b *A2A) Describe(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeout)
	defer cancel()
	card, err := agentcard.NewResolver(b.httpClient()).Resolve(ctx, b.URL)
	if err != nil {
		return "", fail("could not read the a2a agent's card", err)
	}
	if err := sameHost(b.URL, card); err != nil {
		return "", fail("the a2a agent's card points elsewhere", err)
	}
	for _, s := range card.Skills {
		if s.ID == b.Skill {
			return describedText(s.Description), nil
		}
	}
	if len(card.Skills) > 0 {
		return "", fail("the a2a agent has no such skill", fmt.Errorf("skill %q is not on the card of %s", b.Skill, b.URL))
	}
	return "", nil
}

// message is the A2A message carrying input.
func (b *A2A) message(input []byte) (*a2a.Message, error) {
	in := bytes.TrimSpace(input)
	if len(in) == 0 {
		in = []byte("{}")
	}
	var part a2a.Part = a2a.TextPart{Text: string(in)}
	if in[0] == '{' {
		var obj map[string]any
		if err := json.Unmarshal(in, &obj); err != nil {
			return nil, fail("input is not JSON", err)
		}
		part = a2a.DataPart{Data: obj}
	}
	m := a2a.NewMessage(a2a.MessageRoleUser, part)
	m.Metadata = map[string]any{"skill": b.Skill}
	return m, nil
}

// Call sends one message and waits for its task to end.
func (b *A2A) Call(ctx context.Context, inv Invocation) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeout)
	defer cancel()
	msg, err := b.message(inv.Input)
	if err != nil {
		return nil, err
	}
	c, _, err := b.connect(ctx)
	if err != nil {
		return nil, b.timedOut(ctx, err)
	}
	res, err := c.SendMessage(ctx, &a2a.MessageSendParams{Message: msg})
	if err != nil {
		if ctx.Err() == nil {
			b.forget(c)
		}
		return nil, b.timedOut(ctx, fail("a2a call failed", err))
	}
	task, ok := res.(*a2a.Task)
	if !ok || task == nil {
		m, _ := res.(*a2a.Message)
		return b.bounded(outputOf(nil, m))
	}
	for poll := a2aPollMin; !stopped(task); poll = min(2*poll, a2aPollMax) {
		select {
		case <-ctx.Done():
			b.cancel(c, task.ID)
			return nil, b.timedOut(ctx, ctx.Err())
		case <-time.After(poll):
		}
		t, err := c.GetTask(ctx, &a2a.TaskQueryParams{ID: task.ID})
		if err == nil && t == nil {
			err = errors.New("no task in the answer")
		}
		if err != nil {
			b.cancel(c, task.ID)
			return nil, b.timedOut(ctx, fail("a2a task could not be read", err))
		}
		task = t
	}
	out, err := taskOutcome(task)
	if errors.Is(err, errAsked) {
		b.cancel(c, task.ID)
	}
	if err != nil {
		return nil, err
	}
	return b.bounded(out, nil)
}

// Stream sends one message and emits the output of each artifact update (or
// message) as one event, until the task ends.
func (b *A2A) Stream(ctx context.Context, inv Invocation, emit func([]byte) error) error {
	ctx, cancel := context.WithTimeout(ctx, b.Timeout)
	defer cancel()
	msg, err := b.message(inv.Input)
	if err != nil {
		return err
	}
	c, _, err := b.connect(ctx)
	if err != nil {
		return b.timedOut(ctx, err)
	}
	var last *a2a.Task
	var taskID a2a.TaskID
	for ev, err := range c.SendStreamingMessage(ctx, &a2a.MessageSendParams{Message: msg}) {
		if err != nil {
			if taskID != "" {
				b.cancel(c, taskID)
			}
			return b.timedOut(ctx, fail("a2a stream failed", err))
		}
		var out []byte
		switch ev := ev.(type) {
		case *a2a.Task:
			taskID, last = ev.ID, ev
		case *a2a.TaskStatusUpdateEvent:
			taskID = ev.TaskID
			last = &a2a.Task{ID: ev.TaskID, Status: ev.Status}
		case *a2a.TaskArtifactUpdateEvent:
			taskID = ev.TaskID
			if ev.Artifact != nil {
				out, err = outputOf(ev.Artifact.Parts, nil)
			}
		case *a2a.Message:
			out, err = outputOf(nil, ev)
			last = &a2a.Task{Status: a2a.TaskStatus{State: a2a.TaskStateCompleted}}
		}
		if err != nil {
			return err
		}
		if out != nil {
			if len(out) > b.maxOutput() {
				return outputTooLarge(b.maxOutput())
			}
			if err := emit(out); err != nil {
				b.cancel(c, taskID)
				return err
			}
		}
		if stopped(last) {
			break
		}
	}
	if !stopped(last) {
		return b.timedOut(ctx, fail("a2a stream ended before the task did", nil))
	}
	if last.Status.State == a2a.TaskStateCompleted {
		return nil
	}
	last.Artifacts = nil
	_, err = taskOutcome(last)
	if errors.Is(err, errAsked) {
		b.cancel(c, taskID)
	}
	return err
}

// timedOut says so when the call's deadline is why err happened.
func (b *A2A) timedOut(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fail(fmt.Sprintf("timed out after %v", b.Timeout), err)
	}
	if ctx.Err() != nil {
		return fail("cancelled", err)
	}
	var f *Failure
	if errors.As(err, &f) {
		return err
	}
	return fail("a2a call failed", err)
}

// cancel asks the agent to stop a task the call gave up on; best effort.
func (b *A2A) cancel(c *a2aclient.Client, id a2a.TaskID) {
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a2aCancelFor)
	defer cancel()
	if _, err := c.CancelTask(ctx, &a2a.TaskIDParams{ID: id}); err != nil {
		b.log().Debug("a2a: could not cancel a task", "agent", b.URL, "task", id, "err", err)
	}
}

func (b *A2A) bounded(out []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if len(out) > b.maxOutput() {
		return nil, outputTooLarge(b.maxOutput())
	}
	return out, nil
}

// stopped reports whether t ended or waits for what a call cannot give.
func stopped(t *a2a.Task) bool {
	if t == nil {
		return false
	}
	s := t.Status.State
	return s.Terminal() || s == a2a.TaskStateInputRequired || s == a2a.TaskStateAuthRequired || s == a2a.TaskStateUnknown
}

// errAsked marks a task that stopped to ask for input or authentication.
var errAsked = errors.New("a2a agent asked for more")

// taskOutcome maps a task that stopped to the call's result.
func taskOutcome(t *a2a.Task) ([]byte, error) {
	detail := func() error {
		if t.Status.Message == nil {
			return errors.New("no status message")
		}
		s, _ := outputOf(nil, t.Status.Message)
		if len(s) > 512 {
			s = s[:512]
		}
		return errors.New(string(s))
	}
	switch t.Status.State {
	case a2a.TaskStateCompleted:
		var parts a2a.ContentParts
		for _, a := range t.Artifacts {
			if a != nil {
				parts = append(parts, a.Parts...)
			}
		}
		if len(parts) == 0 {
			return outputOf(nil, t.Status.Message)
		}
		return outputOf(parts, nil)
	case a2a.TaskStateFailed, a2a.TaskStateRejected, a2a.TaskStateCanceled:
		return nil, fail("a2a task "+string(t.Status.State), detail())
	case a2a.TaskStateInputRequired, a2a.TaskStateAuthRequired:
		// A treaty call is one message: it cannot answer.
		return nil, fail("a2a agent asked for more ("+string(t.Status.State)+")", fmt.Errorf("%w: %v", errAsked, detail()))
	default:
		return nil, fail(fmt.Sprintf("a2a task in unexpected state %q", t.Status.State), nil)
	}
}

// outputOf turns parts (or, when parts is nil, m's parts) into one JSON
// value: see A2A.
func outputOf(parts a2a.ContentParts, m *a2a.Message) ([]byte, error) {
	if parts == nil && m != nil {
		parts = m.Parts
	}
	if len(parts) == 0 {
		return []byte("{}"), nil
	}
	var text strings.Builder
	textOnly := true
	for _, p := range parts {
		switch p := p.(type) {
		case a2a.TextPart:
			text.WriteString(p.Text)
		case *a2a.TextPart:
			if p != nil {
				text.WriteString(p.Text)
			}
		default:
			textOnly = false
		}
	}
	var v any
	switch d, one := parts[0].(a2a.DataPart); {
	case len(parts) == 1 && one:
		if d.Data == nil {
			return []byte("{}"), nil
		}
		v = d.Data
	case textOnly:
		if t := strings.TrimSpace(text.String()); t != "" && json.Valid([]byte(t)) {
			return []byte(t), nil
		}
		v = map[string]string{"text": text.String()}
	default:
		v = map[string]any{"parts": parts}
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fail("a2a agent returned parts that cannot be encoded", err)
	}
	return out, nil
}

// boundedBodies cuts every response body at max bytes: what an agent (or
// an MCP server) sends is read whole by its SDK. With perEvent, an event
// stream is cut at an event of max bytes instead: an A2A stream's length is
// bounded by its call's timeout and the node's stream limits, and one
// answer's bound would end a long stream of small events half-way.
type boundedBodies struct {
	rt       http.RoundTripper
	max      int64
	perEvent bool
}

func (t boundedBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); t.perEvent && mt == "text/event-stream" {
		resp.Body = &eventCapped{rc: resp.Body, max: t.max}
	} else {
		resp.Body = &capped{rc: resp.Body, left: t.max}
	}
	return resp, nil
}

var errBodyTooLarge = errors.New("backend: the answer exceeds the backend's limit")

type capped struct {
	rc   io.ReadCloser
	left int64
	cut  *atomic.Bool // optional: set when the body is cut
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// At the bound the body may end: only a byte more is too much.
		var one [1]byte
		if _, err := io.ReadFull(c.rc, one[:]); err != nil {
			return 0, err // io.EOF: the body was exactly the bound
		}
		if c.cut != nil {
			c.cut.Store(true)
		}
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *capped) Close() error { return c.rc.Close() }

// eventCapped fails a server-sent event stream at an event of more than max
// bytes (counting neither line ends nor the blank line that ends it).
type eventCapped struct {
	rc      io.ReadCloser
	max     int64
	run     int64 // bytes of the event being read
	lineEnd bool  // the last byte other than CR was a line end
	over    bool
}

func (c *eventCapped) Read(p []byte) (int, error) {
	if c.over {
		return 0, errBodyTooLarge
	}
	n, err := c.rc.Read(p)
	for _, b := range p[:n] {
		switch b {
		case '\r':
		case '\n':
			if c.lineEnd { // a blank line: the event ended
				c.run = 0
			}
			c.lineEnd = true
		default:
			c.lineEnd = false
			if c.run++; c.run > c.max {
				c.over = true
				return n, errBodyTooLarge
			}
		}
	}
	return n, err
}

func (c *eventCapped) Close() error { return c.rc.Close() }
