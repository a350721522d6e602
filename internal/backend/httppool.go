package backend

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// httpPool is the HTTP/1.1 client of one backend URL. A call runs wholly in
// its caller's goroutine, on a connection it holds alone: it writes the
// request and reads the answer itself. net/http's transport hands every
// request to a writer and a reader goroutine per connection; without them the
// hop costs a third less CPU (BENCHMARKS.md, h/hops).
//
// At most max connections are open, idle ones included; a call that finds
// none free waits for one within its context. Idle connections are reused
// last in, first out, checked for a close by the server before reuse, and
// closed after idleTimeout.
type httpPool struct {
	target     string // request-target: path and query
	host       string // Host header
	addr       string // host:port to dial
	serverName string // TLS server name; empty for http
	auth       string // Authorization from the URL's userinfo, as net/http sends it

	slots       chan struct{} // a token per connection in use
	idleTimeout time.Duration // idleConnTimeout; shorter in tests

	mu    sync.Mutex
	idle  []*pconn // oldest first
	timer *time.Timer
}

// pconn is one pooled connection.
type pconn struct {
	conn      net.Conn
	rc        syscall.RawConn // the TCP connection's, for the liveness check; nil if none
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

func newHTTPPool(rawURL string, conns int) (*httpPool, error) {
	// Errors do not quote the URL: it may hold a password.
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("url does not parse: %w", err)
	}
	p := &httpPool{target: u.RequestURI(), host: u.Host, slots: make(chan struct{}, conns), idleTimeout: idleConnTimeout}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		p.serverName = u.Hostname()
	default:
		return nil, fmt.Errorf("url scheme %q: want http:// or https://", u.Scheme)
	}
	if u.Host == "" || !httpguts.ValidHostHeader(u.Host) {
		return nil, fmt.Errorf("url host %q: want host or host:port", u.Host)
	}
	p.addr = net.JoinHostPort(u.Hostname(), port)
	if u.User != nil {
		pw, _ := u.User.Password()
		p.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw))
	}
	return p, nil
}

var (
	// errBadHeader refuses a header value that would break the request's framing.
	errBadHeader = errors.New("header value with a control character")
	// errReadBody is a failure after the answer's head arrived.
	errReadBody = errors.New("reading the answer's body")
)

// do POSTs body with the given extra headers (name, value pairs) and returns
// the answer's status and body, read up to max+1 bytes: a longer body is
// more than max.
func (p *httpPool) do(ctx context.Context, body []byte, max int, headers ...string) (status int, out []byte, err error) {
	for i := 1; i < len(headers); i += 2 {
		if !httpguts.ValidHeaderFieldValue(headers[i]) {
			return 0, nil, fmt.Errorf("%s: %w", headers[i-1], errBadHeader)
		}
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, nil, fmt.Errorf("waiting for a connection: %w", ctx.Err())
	}
	defer func() { <-p.slots }()
	// The context's deadline bounds every read and write; a cancellation
	// moves it to the past, which fails the one in progress.
	deadline, _ := ctx.Deadline()
	pc, err := p.get(ctx, deadline)
	if err != nil {
		return 0, nil, err
	}
	stop := context.AfterFunc(ctx, func() { pc.conn.SetDeadline(time.Unix(1, 0)) })
	status, out, reuse, err := p.roundTrip(pc, body, max, headers)
	if stop() && reuse {
		p.put(pc)
	} else {
		pc.conn.Close()
	}
	return status, out, err
}

func (p *httpPool) roundTrip(pc *pconn, body []byte, max int, headers []string) (status int, out []byte, reuse bool, err error) {
	w := pc.bw
	w.WriteString("POST ")
	w.WriteString(p.target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(p.host)
	w.WriteString("\r\nUser-Agent: treaty\r\nContent-Type: application/json\r\nContent-Length: ")
	w.WriteString(strconv.Itoa(len(body)))
	if p.auth != "" {
		w.WriteString("\r\nAuthorization: ")
		w.WriteString(p.auth)
	}
	for i := 1; i < len(headers); i += 2 {
		w.WriteString("\r\n")
		w.WriteString(headers[i-1])
		w.WriteString(": ")
		w.WriteString(headers[i])
	}
	w.WriteString("\r\n\r\n")
	w.Write(body)
	werr := w.Flush()
	// A server may answer before it has read the whole body (a refusal of a
	// large input) and close: its answer is still read.
	resp, err := readResponse(pc.br)
	if err != nil {
		if werr != nil {
			err = werr
		}
		return 0, nil, false, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, nil, false, nil // not HTTP any more
	}
	lim := &io.LimitedReader{R: resp.Body, N: int64(max) + 1}
	out, err = readBody(lim, resp.ContentLength, max)
	if err != nil {
		return 0, nil, false, fmt.Errorf("%w: %w", errReadBody, err)
	}
	// The body was read to its end (LimitedReader stopped short of max+1
	// only at the body's EOF): the connection is at the next answer.
	reuse = werr == nil && !resp.Close && len(out) <= max
	if reuse {
		resp.Body.Close()
	}
	return resp.StatusCode, out, reuse, nil
}

// readResponse reads an answer's head, skipping informational (1xx) ones.
func readResponse(br *bufio.Reader) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

// readBody reads r to its end into a buffer sized from the announced length
// (within max+1, so an announcement cannot buy memory).
func readBody(r io.Reader, announced int64, max int) ([]byte, error) {
	size := 512
	if announced >= 0 {
		size = int(min(announced, int64(max)) + 1)
	}
	b := make([]byte, 0, size)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// get returns an idle connection that the server has not closed, or dials,
// with deadline set.
func (p *httpPool) get(ctx context.Context, deadline time.Time) (*pconn, error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			pc, err := p.dial(ctx)
			if err != nil {
				return nil, err
			}
			pc.conn.SetDeadline(deadline)
			return pc, nil
		}
		pc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		pc.conn.SetDeadline(deadline)
		if time.Since(pc.idleSince) < p.idleTimeout && stillOpen(pc.rc) {
			return pc, nil
		}
		pc.conn.Close()
	}
}

func (p *httpPool) dial(ctx context.Context) (*pconn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	conn := raw
	if p.serverName != "" {
		tc := tls.Client(raw, &tls.Config{ServerName: p.serverName, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		conn = tc
	}
	var rc syscall.RawConn
	if sc, ok := raw.(syscall.Conn); ok {
		rc, _ = sc.SyscallConn()
	}
	return &pconn{conn: conn, rc: rc, br: bufio.NewReaderSize(conn, 4<<10), bw: bufio.NewWriterSize(conn, 4<<10)}, nil
}

// put makes pc idle and, for the first idle connection, arms the timer that
// closes stale ones.
func (p *httpPool) put(pc *pconn) {
	pc.idleSince = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle = append(p.idle, pc)
	if p.timer == nil {
		p.timer = time.AfterFunc(p.idleTimeout, p.expire)
	}
}

// expire closes the connections idle for idleTimeout and re-arms the
// timer for the next one.
func (p *httpPool) expire() {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].idleSince) >= p.idleTimeout {
		p.idle[n].conn.Close()
		n++
	}
	p.idle = append(p.idle[:0], p.idle[n:]...)
	clear(p.idle[len(p.idle):cap(p.idle)])
	p.timer = nil
	if len(p.idle) > 0 {
		p.timer = time.AfterFunc(p.idleTimeout-now.Sub(p.idle[0].idleSince), p.expire)
	}
}

// closeIdle closes every idle connection.
func (p *httpPool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.idle {
		pc.conn.Close()
	}
	clear(p.idle)
	p.idle = p.idle[:0]
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}
