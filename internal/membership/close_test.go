package membership

import (
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// A join memberlist reports while Close is under way (a push-pull it was
// still serving) must not start work Close is already waiting for: Close
// waits on m.wg, and an Add concurrent with that Wait is a race the
// detector reports (and work that outlives Close).
func TestJoinDuringCloseStartsNoWork(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.joinAll()
	eventually(t, 30*time.Second, "converge", func() bool { return c.converged(seq(2)) })
	m, peer := c.ms[0], c.pubs[1]
	m.mu.Lock()
	m.peers[peer].state = StateDead // so that an alive report would warm a connection
	m.mu.Unlock()

	// The join runs after Close has marked m closed, but is not ordered
	// after Close's Wait: only after its m.mu section.
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(10 * time.Second)
		for {
			m.mu.Lock()
			closed := m.closed
			m.mu.Unlock()
			if closed || time.Now().After(deadline) {
				break
			}
			<-time.After(time.Millisecond)
		}
		(*events)(m).NotifyJoin(&memberlist.Node{Name: peer.String()})
	}()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
}
