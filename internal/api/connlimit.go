package api

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// connLimits bounds the connections open at once on the socket, so that a
// local process, buggy or hostile, cannot take the node's descriptors and
// goroutines (10,000 idle connections would otherwise be 10,000 of each), nor,
// where the kernel names the process at the other end, every connection other
// agents need.
type connLimits struct {
	total, perProcess int
}

var defaultConnLimits = connLimits{total: localapi.MaxConnections, perProcess: localapi.MaxConnectionsPerProcess}

// maxRefusing bounds the connections being refused at once; past it a
// connection is closed without an answer.
const maxRefusing = 64

// refuseWithin bounds the exchange that refuses a connection.
const refuseWithin = time.Second

// limitListener counts the connections it accepted that are still open and
// answers one over a bound with a refusal of stage budget, then closes it.
type limitListener struct {
	net.Listener
	lim connLimits
	log *slog.Logger

	mu        sync.Mutex
	open      int
	byProcess map[int32]int
	lastLog   time.Time
	refusing  atomic.Int32
}

func newLimitListener(ln net.Listener, lim connLimits, log *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, lim: lim, log: log, byProcess: map[int32]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		pid := peerProcess(c) // 0: unknown
		l.mu.Lock()
		reason := ""
		switch {
		case l.open >= l.lim.total:
			reason = fmt.Sprintf("too many connections to the local API (%d open, the most for all processes); close idle ones or reuse them", l.open)
		case pid != 0 && l.byProcess[pid] >= l.lim.perProcess:
			reason = fmt.Sprintf("too many connections to the local API from process %d (%d open, the most for one process); close idle ones or reuse them", pid, l.byProcess[pid])
		}
		if reason == "" {
			l.open++
			if pid != 0 {
				l.byProcess[pid]++
			}
			l.mu.Unlock()
			return &limitedConn{Conn: c, l: l, pid: pid}, nil
		}
		logIt := time.Since(l.lastLog) >= time.Minute
		if logIt {
			l.lastLog = time.Now()
		}
		l.mu.Unlock()
		if logIt {
			l.log.Warn("api: connection refused", "reason", reason, "pid", pid)
		}
		if l.refusing.Add(1) > maxRefusing {
			l.refusing.Add(-1)
			c.Close()
			continue
		}
		go l.refuse(c, reason)
	}
}

// refuse answers c's request, whatever it is, with a refusal of stage budget
// and closes c. It reads what the client sent, within refuseWithin, so that
// closing leaves no unread bytes that would reset the answer.
func (l *limitListener) refuse(c net.Conn, reason string) {
	defer l.refusing.Add(-1)
	defer c.Close()
	c.SetDeadline(time.Now().Add(refuseWithin))
	body := refusalBody(reason)
	head := "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := c.Write(append([]byte(head), body...)); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	var buf [4 << 10]byte
	for n := 0; n < 64<<10; {
		k, err := c.Read(buf[:])
		n += k
		if err != nil {
			return
		}
	}
}

func refusalBody(reason string) []byte {
	var b []byte
	b = append(b, `{"error":{"stage":"budget","reason":`...)
	b = strconv.AppendQuote(b, reason)
	return append(b, "}}\n"...)
}

// limitedConn gives its slot back once, at its first Close.
type limitedConn struct {
	net.Conn
	l    *limitListener
	pid  int32
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		if c.pid != 0 {
			if c.l.byProcess[c.pid]--; c.l.byProcess[c.pid] <= 0 {
				delete(c.l.byProcess, c.pid)
			}
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
