package api

import (
	"reflect"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// IdleTimeoutForTest returns the server's idle timeout and sets it to d for
// the connections accepted from now on.
func (s *Server) IdleTimeoutForTest(d time.Duration) time.Duration {
	old := s.srv.IdleTimeout
	s.srv.IdleTimeout = d
	return old
}

// ConnLimitsForTest sets the connection bounds; call it before Serve.
func (s *Server) ConnLimitsForTest(total, perProcess int) {
	l := s.ln.(*limitListener)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lim = connLimits{total: total, perProcess: perProcess}
}

// StallForTest sets the bound on a body's arrival and each write's.
func (s *Server) StallForTest(d time.Duration) { s.stall.Store(int64(d)) }

var reflectCallRequest = reflect.TypeOf(localapi.CallRequest{})

// SlotWaitForTest sets how long a large body waits for a slot.
func (s *Server) SlotWaitForTest(d time.Duration) { s.slotWait.Store(int64(d)) }

// LargeBodiesForTest is the number of large bodies being read.
func (s *Server) LargeBodiesForTest() int { return len(s.bodySlots) }
