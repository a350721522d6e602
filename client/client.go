// Package client is the Go client of a running node's local API (the unix
// socket treaty.sock in the node's home). Refusals come back as
// *localapi.Error with the stage the node reported, so callers can branch on
// it with errors.As and localapi.ExitCode.
//
// It imports only the standard library, localapi and internal/h1pool (its
// connection pool, itself standard library only), never the node: an agent
// that embeds it links no SQLite, policy engine or scanner.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/internal/h1pool"
	"github.com/treaty-dev/treaty/localapi"
)

// ErrNotRunning is returned when no node serves the home's socket.
var ErrNotRunning = errors.New("client: no node is running for this home (start it with 'treaty run')")

// Client talks to one node. It is safe for concurrent use.
type Client struct {
	p       *h1pool.Pool // requests with one JSON answer
	poolErr error        // newPool's
	hc      *http.Client // streams
	within  string       // TREATY_CALL of the call being served, if any

	readTimeout time.Duration // bounds a read (GET) whose context has no deadline
	bodyWithin  time.Duration // AnswerBodyWithin
}

// AnswerBodyWithin bounds the time from the head of an answer with one JSON
// body to the end of that body: the node writes both at once, so a node that
// announces more than it sends, or trickles, is broken, and must not hang a
// caller whose context has no deadline (a call waits for its head as long as
// the call takes).
const AnswerBodyWithin = 60 * time.Second

// ReadTimeout bounds a read of the node's state (a GET: status, listings,
// a key) when the caller's context sets no deadline, so that a node that
// accepts connections but no longer answers does not hang a script. Calls,
// streams and changes are bounded by the caller's context and by the node's
// own limits (a call by its capability's timeout), not by this.
const ReadTimeout = 30 * time.Second

// errNoAnswer is the cause of a read that ReadTimeout cut.
var errNoAnswer = errors.New("no answer")

// New returns a client for the node whose home is home.
func New(home string) *Client {
	sock := filepath.Join(home, localapi.SocketName)
	dial := dialer(sock)
	p, err := newPool(dial)
	return &Client{within: os.Getenv("TREATY_CALL"), p: p, poolErr: err, readTimeout: ReadTimeout, bodyWithin: AnswerBodyWithin, hc: &http.Client{Transport: &http.Transport{
		IdleConnTimeout:        idleTimeout,
		MaxResponseHeaderBytes: maxHead,
		DialContext:            func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
	}}}
}

// Status returns the node's identity and address; it fails when the node is down.
func (c *Client) Status(ctx context.Context) (localapi.Status, error) {
	var s localapi.Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Peers lists the node's peer book.
func (c *Client) Peers(ctx context.Context) ([]localapi.PeerInfo, error) {
	var p []localapi.PeerInfo
	return p, c.do(ctx, http.MethodGet, "/v1/peers", nil, &p)
}

// Caps asks the node what peer exposes to it: a JSON array of
// localapi.CapabilityInfo.
func (c *Client) Caps(ctx context.Context, peer string) (json.RawMessage, error) {
	var out struct {
		Capabilities json.RawMessage `json:"capabilities"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/caps?peer="+url.QueryEscape(peer), nil, &out)
	return out.Capabilities, err
}

// Call runs capability on peer with input (nil means {}). Inside a backend (TREATY_CALL set)
// the call is made on behalf of the call being served: it carries the signed
// delegation chain.
func (c *Client) Call(ctx context.Context, peer, capability string, input json.RawMessage) (*localapi.CallResponse, error) {
	req, err := c.request(peer, capability, input)
	if err != nil {
		return nil, err
	}
	var out localapi.CallResponse
	if err := c.do(ctx, http.MethodPost, "/v1/call", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// request builds a call's body; input that is not JSON is refused here, as
// the node would.
func (c *Client) request(peer, capability string, input json.RawMessage) (localapi.CallRequest, error) {
	if len(input) == 0 {
		input = json.RawMessage("{}")
	}
	if !json.Valid(input) {
		return localapi.CallRequest{}, &localapi.Error{Stage: localapi.StageUsage, Reason: "input is not valid JSON"}
	}
	return localapi.CallRequest{Peer: peer, Capability: capability, Input: input, Within: c.within}, nil
}

// maxStreamLine bounds a line of a stream's answer: an event of at most
// 16 MiB (a node's largest limits.max_event_bytes), each byte of it perhaps
// made U+FFFD (3 bytes) on its way to UTF-8, in {"data":...}.
const maxStreamLine = 3*16<<20 + 1<<10

// Stream runs a stream capability with input (nil means {}) and calls emit
// for each event's data, in order. An error from emit stops the stream and is
// returned as is; a refusal, before or during the stream, is a *localapi.Error.
func (c *Client) Stream(ctx context.Context, peer, capability string, input json.RawMessage, emit func(json.RawMessage) error) error {
	cr, err := c.request(peer, capability, input)
	if err != nil {
		return err
	}
	body, err := json.Marshal(cr)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://treaty/v1/stream", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return unwrapDial(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxStreamLine)
	for sc.Scan() {
		var line localapi.StreamLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("client: bad stream line: %w", err)
		}
		if line.End {
			if line.Error != nil {
				return toRefusal(line.Error)
			}
			return nil
		}
		if len(line.Data) == 0 {
			return errors.New("client: stream line has neither data nor end")
		}
		if err := emit(line.Data); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return errors.New("client: stream ended without an end line")
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	bounded := false
	if _, ok := ctx.Deadline(); !ok && method == http.MethodGet {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.readTimeout, errNoAnswer)
		defer cancel()
		bounded = true
	}
	status, answer, err := c.roundTrip(ctx, method, path, body)
	// The pool sets the deadline on the connection too, which may fire
	// before the context's timer does.
	if bounded && err != nil && (errors.Is(context.Cause(ctx), errNoAnswer) || errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err)) {
		return fmt.Errorf("client: the node did not answer %s %s within %v: it may be hung (see its log)", method, pathOnly(path), c.readTimeout)
	}
	var tooLarge *AnswerTooLargeError
	if errors.As(err, &tooLarge) {
		return tooLarge
	}
	if err != nil {
		return unwrapDial(err)
	}
	if status != http.StatusOK {
		return errorAnswer(status, answer)
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("client: decode answer: %w", err)
	}
	return nil
}

// pathOnly is path without its query, which may name keys and groups.
func pathOnly(path string) string {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		return path[:i]
	}
	return path
}

func unwrapDial(err error) error {
	var nh noHomeError
	if errors.As(err, &nh) {
		return nh
	}
	if errors.Is(err, ErrNotRunning) {
		return ErrNotRunning
	}
	return fmt.Errorf("client: %w", err)
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return errorAnswer(resp.StatusCode, b)
}

// errorAnswer is the error a non-200 answer with body b stands for.
func errorAnswer(status int, b []byte) error {
	var e localapi.ErrorResponse
	if json.Unmarshal(b, &e) != nil || e.Error == nil {
		return fmt.Errorf("client: node answered HTTP %d", status)
	}
	return toRefusal(e.Error)
}

func toRefusal(e *localapi.ErrorBody) error { return e.Err() }
