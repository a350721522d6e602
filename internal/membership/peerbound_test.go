package membership

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestTrackedPeersAreBounded: any member can sign records for fresh keys at
// will and gossip them; the keys this node tracks are bounded (like a
// push-pull's members). When full, a key that is not alive or suspect makes
// room; with every tracked key alive, a new one is not learned and memberlist
// is told to refuse it. Without the bound every fresh key was kept forever.
func TestTrackedPeersAreBounded(t *testing.T) {
	t.Parallel()
	m := newInspectOnly(t)
	m.maxPeers = 4
	rec := func(seed int) Record {
		r := Record{Fields: Fields{Addrs: []string{"127.0.0.1:7420"}}, Seq: 1, Expires: t0.Add(time.Hour)}
		if err := SignRecord(testKey(t, seed), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	tracked := func() int {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.peers)
	}
	has := func(r Record) bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.peers[r.Key] != nil
	}
	for i := range 4 {
		m.learn(rec(100+i), -1)
	}
	fifth := rec(104)
	m.learn(fifth, -1)
	if n := tracked(); n != 4 || !has(fifth) {
		t.Fatalf("tracked %d (fifth %v), want 4 with the fifth in place of a key never seen alive", n, has(fifth))
	}
	m.mu.Lock()
	for _, p := range m.peers {
		p.state = StateAlive
	}
	m.mu.Unlock()
	sixth := rec(105)
	m.learn(sixth, -1)
	if n := tracked(); n != 4 || has(sixth) {
		t.Fatalf("tracked %d (sixth %v), want 4 alive keys kept and the sixth not learned", n, has(sixth))
	}
	seventh := rec(106)
	meta, err := seventh.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	node := &memberlist.Node{Name: seventh.Key.String(), Addr: net.ParseIP("127.0.0.1"), Port: 7420, Meta: meta}
	if err := (*delegate)(m).NotifyAlive(node); err == nil {
		t.Fatal("memberlist told to believe a key beyond the bound")
	}
}
