package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/catalogue"
	"github.com/treaty-dev/treaty/localapi"
)

// The witness's streak of unjudged checkpoint notes shows beside each peer's
// health, flagged once the witness alerts on it.
func TestPeerUnwitnessedStreak(t *testing.T) {
	n := &fakeNode{peers: []localapi.PeerInfo{
		{Name: "acme", ID: "did:key:z6MkAcme", Addr: "127.0.0.1:1", Breaker: "closed"},
		{Name: "beta", ID: "did:key:z6MkBeta", Addr: "127.0.0.1:2", Breaker: "closed", Unwitnessed: 3},
		{Name: "gamma", ID: "did:key:z6MkGamma", Addr: "127.0.0.1:3", Breaker: "open", Unwitnessed: audit.MaxUnwitnessed},
	}}
	d, err := New(Options{Node: n, Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d.Refresh(t.Context(), false)
	b, _, _ := d.current()
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		n     int
		alert bool
	}{"acme": {0, false}, "beta": {3, false}, "gamma": {audit.MaxUnwitnessed, true}}
	if len(s.Peers) != len(want) {
		t.Fatalf("peers %+v", s.Peers)
	}
	for _, p := range s.Peers {
		if w := want[p.Name]; p.Unwitnessed != w.n || p.UnwitnessedAlert != w.alert {
			t.Errorf("%s: unwitnessed %d alert %v, want %d %v", p.Name, p.Unwitnessed, p.UnwitnessedAlert, w.n, w.alert)
		}
	}
}

// Trust samples are kept for the peers in the book only: a book that churns
// (gossip adds and drops peers) must not grow the dashboard's memory.
func TestSamplesOfDroppedPeersAreForgotten(t *testing.T) {
	n := &fakeNode{}
	trusts := map[string]catalogue.Trust{}
	d, err := New(Options{Node: n, Home: t.TempDir(), Trust: func(context.Context) (map[string]catalogue.Trust, error) { return trusts, nil }})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		n.peers = nil
		trusts = map[string]catalogue.Trust{}
		for i := range 50 {
			id := fmt.Sprintf("did:key:z6Mk%d-%d", round, i)
			n.peers = append(n.peers, localapi.PeerInfo{Name: fmt.Sprintf("p%d-%d", round, i), ID: id})
			trusts[id] = catalogue.Trust{Level: "known", Score: 0.5}
		}
		d.Refresh(t.Context(), true)
	}
	d.mu.Lock()
	kept := len(d.samples)
	d.mu.Unlock()
	if kept != 50 {
		t.Fatalf("samples kept for %d peers, want the 50 in the book", kept)
	}
}
