package audit

import "github.com/treaty-dev/treaty/internal/identity"

// MaxUnwitnessed is how many notes in a row a peer may leave unjudged before
// the witness alerts (NotJudgedError.Alert); metrics and the dashboard show
// the streak against it.
const MaxUnwitnessed = maxUnwitnessed

// Unwitnessed is peer's current streak: how many of its checkpoint notes in
// a row could not be judged for want of a proof (0 once one is judged, and
// after a restart).
func (w *Witness) Unwitnessed(peer identity.PublicKey) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.streaks[peer]; s != nil {
		return s.failures
	}
	return 0
}
