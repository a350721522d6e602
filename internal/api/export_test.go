package api

import "time"

// IdleTimeoutForTest returns the server's idle timeout and sets it to d for
// the connections accepted from now on.
func (s *Server) IdleTimeoutForTest(d time.Duration) time.Duration {
	old := s.srv.IdleTimeout
	s.srv.IdleTimeout = d
	return old
}
