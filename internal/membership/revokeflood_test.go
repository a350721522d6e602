package membership

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// TestRevocationFloodByGossip: a member gossips more revocations of fresh
// keys than members keep for later joiners (MaxStatements, 256), then
// another member publishes a real one. Every member hands each on with the
// member that published it (nodes hold unknown keys' revocations against
// it), and a member that joins after the flood still learns the real
// revocation by push-pull. Without the fair store every member's store held
// the first 256 of the flood and refused the real revocation, so the later
// joiner never learned it.
func TestRevocationFloodByGossip(t *testing.T) {
	floodByGossip(t, func(i int) string {
		_, text, err := SignRevocation(testKey(t, i), t0, "")
		if err != nil {
			t.Fatal(err)
		}
		return text
	})
}

// TestRotationFloodByGossip is TestRevocationFloodByGossip with rotations
// between fresh keys (ADR 22): gossip hands each on with its publisher, so
// nodes hold them against the flooder, and the real rotation still reaches
// a member that joins after the flood.
func TestRotationFloodByGossip(t *testing.T) {
	floodByGossip(t, func(i int) string {
		_, text, err := SignRotation(testKey(t, i), testKey(t, i+20000), t0)
		if err != nil {
			t.Fatal(err)
		}
		return text
	})
}

// floodByGossip has member 0 gossip 300 statements sign(5000+i), then
// member 1 the real one, sign(4000).
func floodByGossip(t *testing.T, sign func(i int) string) {
	const n, flood = 4, 300
	var (
		mu         sync.Mutex
		publishers = map[string]map[identity.PublicKey]bool{} // statement text -> who published it, as members saw
	)
	kinds := AdmissionKinds(func(st AdmissionStatement) {
		mu.Lock()
		defer mu.Unlock()
		if publishers[st.Text] == nil {
			publishers[st.Text] = map[identity.PublicKey]bool{}
		}
		publishers[st.Text][st.Publisher] = true
	})
	c := newCluster(t, n, kinds)
	ctx := context.Background()
	for i := 1; i < n-1; i++ { // the last member joins after the flood
		if _, err := c.ms[i].Join(ctx, []Seed{c.seed(0)}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "the first members converge", func() bool { return c.converged(seq(n - 1)) })

	publish := func(from int, text string) string {
		t.Helper()
		st, err := ParseAdmission(text)
		if err != nil {
			t.Fatal(err)
		}
		env, err := AdmissionEnvelope(c.keys[from], st)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ms[from].Publish(ctx, env); err != nil {
			t.Fatal(err)
		}
		return text
	}
	var lastFlood string
	for i := range flood {
		lastFlood = publish(0, sign(5000+i))
	}
	genuine := publish(1, sign(4000))
	keeps := func(m *Membership, text string) bool {
		for _, s := range m.Statements() {
			if string(s.Body) == text {
				return true
			}
		}
		return false
	}
	eventually(t, 30*time.Second, "every first member keeps the real revocation", func() bool {
		for i := range n - 1 {
			if !keeps(c.ms[i], genuine) {
				return false
			}
		}
		return true
	})
	if _, err := c.ms[n-1].Join(ctx, []Seed{c.seed(0)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the later joiner learns the real revocation", func() bool { return keeps(c.ms[n-1], genuine) })

	eventually(t, 30*time.Second, "members hand both on with their publisher", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(publishers[genuine]) == 1 && publishers[genuine][c.pubs[1]] &&
			len(publishers[lastFlood]) == 1 && publishers[lastFlood][c.pubs[0]]
	})
	for i := range n {
		if got := len(c.ms[i].Statements()); got > 256 {
			t.Errorf("member %d keeps %d statements, want at most MaxStatements 256", i, got)
		}
	}
}
