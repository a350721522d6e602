package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/treaty-dev/treaty/internal/h1pool"
)

// idleTimeout closes a pooled connection to the node nobody used for this
// long: a long-lived agent does not hold the node's connections forever.
const idleTimeout = 90 * time.Second

// maxIdle bounds the connections a client keeps open between requests.
const maxIdle = 64

// Each answer with one JSON body is bounded by what it can honestly be, so a
// broken node, or another process serving its socket, cannot make a
// listing allocate a gigabyte. The bounds count JSON as the node writes it:
// a byte of text may take 6 (\u003c), which the worst cases below assume.
const (
	// maxRemoteAnswer bounds a call's answer and a peer's capability list:
	// a peer's body, which limits.max_body_bytes lets be up to 1 GiB, and
	// room for the receipt.
	maxRemoteAnswer = 1<<30 + 1<<20

	// maxMotionList bounds /v1/motions/ls: 5,120 motions (1,024 open and
	// 4,096 decided kept), each at most ~34 KiB (a 4 KiB text, 6 bytes a
	// byte; 128 votes of a did:key; name, reason and the rest), ~170 MiB.
	maxMotionList = 200 << 20

	// maxStateAnswer bounds every other answer: the node's state and its
	// answers to changes. The largest is kv ls, 10,000 keys of at most
	// 256 bytes, ~14.5 MiB; a decision record is at most 1 MiB, a value
	// 64 KiB (384 KiB as JSON).
	maxStateAnswer = 32 << 20
)

// answerBound is the bound of the answer to method path.
func answerBound(method, path string) int {
	switch p := pathOnly(path); {
	case method == http.MethodPost && p == "/v1/call", method == http.MethodGet && p == "/v1/caps":
		return maxRemoteAnswer
	case method == http.MethodGet && p == "/v1/motions/ls":
		return maxMotionList
	}
	return maxStateAnswer
}

// AnswerTooLargeError is an answer longer than its request's answer can
// honestly be (the node is broken, or another process serves its socket).
// It is read no further than Limit and none of it is returned.
type AnswerTooLargeError struct {
	Method, Path string // Path without its query
	Limit        int    // bytes
}

func (e *AnswerTooLargeError) Error() string {
	return fmt.Sprintf("client: the answer to %s %s is over %d MiB, the most it can honestly be: the node is broken, or another process serves its socket", e.Method, e.Path, e.Limit>>20)
}

// maxHead bounds the head of a stream's answer, as h1pool bounds the others'.
const maxHead = 1 << 20

// dialer opens connections to the node's socket.
func dialer(sock string) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", sock)
		if err != nil {
			return nil, dialError(sock, err)
		}
		return c, nil
	}
}

// noHomeError is ErrNotRunning for a home directory that does not exist.
type noHomeError struct{ dir string }

func (e noHomeError) Error() string {
	return fmt.Sprintf("client: no treaty home at %s (a node's home is made with 'treaty init --home %s')", e.dir, e.dir)
}
func (e noHomeError) Is(target error) bool { return target == ErrNotRunning }

// dialError tells "no node runs here" (no socket, or one nobody listens on)
// from a socket this user may not open or cannot even name, which a
// restart would not fix.
func dialError(sock string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		dir := filepath.Dir(sock)
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) { // a mistyped --home, not a stopped node
			return noHomeError{dir}
		}
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	case errors.Is(err, syscall.EINVAL) && len(sock) > 100:
		return fmt.Errorf("client: the socket path %s is %d bytes, longer than the system allows for a unix socket (about 104); use a shorter --home", sock, len(sock))
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("client: %s: permission denied (the node runs as another user?): %w", sock, err)
	}
	return fmt.Errorf("client: %s: %w", sock, err)
}

// newPool pools the connections of requests with one JSON answer; streams,
// which read as they go, use net/http. Its config is constant: it fails only
// on a mistake in this file, which every test making a request catches.
func newPool(dial func(context.Context) (net.Conn, error)) (*h1pool.Pool, error) {
	return h1pool.New(h1pool.Config{
		Dial:        dial,
		Header:      []string{"Host", "treaty", "User-Agent", "treaty-client"},
		MaxIdle:     maxIdle,
		IdleTimeout: idleTimeout,
	})
}

// roundTrip sends method target with body (JSON; nil for none) and returns
// the answer's status and body, or *AnswerTooLargeError for a body over
// answerBound. As net/http does, a request that failed on a
// reused connection before any answer (the node closed it as the request
// went: it restarted, or is stopping) is sent again on another when the node
// cannot have acted on it (it did not go out whole) or may act on it twice
// (a GET).
func (c *Client) roundTrip(ctx context.Context, method, target string, body []byte) (int, []byte, error) {
	req := h1pool.Request{Method: method, Target: target, Body: body, BodyWithin: c.bodyWithin}
	if body != nil {
		req.Header = []string{"Content-Type", "application/json"}
	}
	if c.poolErr != nil {
		return 0, nil, c.poolErr
	}
	limit := answerBound(method, target)
	for {
		status, out, err := c.p.Do(ctx, req, limit)
		var na *h1pool.NoAnswerError
		if errors.As(err, &na) && na.Reused && (na.Unsent || method == http.MethodGet) {
			continue
		}
		if errors.Is(err, h1pool.ErrTooLarge) {
			return 0, nil, &AnswerTooLargeError{Method: method, Path: pathOnly(target), Limit: limit}
		}
		return status, out, err
	}
}
