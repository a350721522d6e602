package testnet

import (
	"fmt"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
)

// TestMembershipMetrics: a gossiping member's /metrics shows the others
// alive, its peer book by source, and counts a join through its invite (and
// a refused second use of it), then a rotation and a revocation of the
// newcomer's key.
func TestMembershipMetrics(t *testing.T) {
	names := []string{"acme", "globex", "initech"}
	cfg := map[string]string{}
	for _, n := range names {
		cfg[n] = "membership:\n  enabled: true\n"
	}
	cfg["acme"] += "metrics:\n  listen: 127.0.0.1:0\n"
	c := NewCluster(t, 3, Options{Names: names, Config: cfg})
	// The peer books were written after the nodes started: restart them so
	// gossip is seeded with the book.
	for _, m := range c.Members {
		m.Stop(t)
		m.Start(t)
	}
	acme := c.Member("acme")
	alive := map[string]string{"state": "alive"}
	Eventually(t, 10*time.Second, func() error {
		fams := acme.ScrapeMetrics(t)
		if v := fams.Value("treaty_members", alive); v != 3 {
			return fmt.Errorf("treaty_members{state=alive} = %v, want 3 (itself and two peers)", v)
		}
		return nil
	})
	fams := acme.ScrapeMetrics(t)
	if v := fams.Value("treaty_membership_peers", map[string]string{"source": "operator"}); v != 2 {
		t.Fatalf("treaty_membership_peers{source=operator} = %v, want 2", v)
	}
	if v := fams.Value("treaty_membership_joins_total", map[string]string{"outcome": "admitted"}); v != 0 {
		t.Fatalf("joins admitted = %v before any join", v)
	}

	tok := invite(t, acme, time.Hour, 1)
	delta := c.Add(t, "delta", "")
	if _, err := delta.Node().Join(t.Context(), tok, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(t, "epsilon", "").Node().Join(t.Context(), tok, ""); err == nil {
		t.Fatal("second use of a one-use invite admitted")
	}
	fams = acme.ScrapeMetrics(t)
	for _, w := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"treaty_membership_joins_total", map[string]string{"outcome": "admitted"}, 1},
		{"treaty_membership_joins_total", map[string]string{"outcome": "refused"}, 1},
		{"treaty_membership_peers", map[string]string{"source": "invite"}, 1},
		{"treaty_membership_revoked_keys", nil, 0},
	} {
		if v := fams.Value(w.name, w.labels); v != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, v, w.want)
		}
	}

	if t.Failed() {
		return
	}

	// delta's key rotates (as a thief holding it would), then its prepared
	// revocation voids both keys.
	key, err := identity.LoadKeyFile(delta.Home + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	next, _ := identity.Generate(nil)
	_, rot, err := membership.SignRotation(key, next, c.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Node().Publish(t.Context(), rot); err != nil {
		t.Fatal(err)
	}
	_, rev, err := membership.SignRevocation(key, c.Clock.Now(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Node().Publish(t.Context(), rev); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, func() error {
		fams := acme.ScrapeMetrics(t)
		for _, w := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"treaty_membership_rotations_total", map[string]string{"direction": "in"}, 1},
			{"treaty_membership_rotations_total", map[string]string{"direction": "out"}, 0},
			{"treaty_membership_revocations_total", nil, 1},
			{"treaty_membership_revoked_keys", nil, 2},
			{"treaty_membership_peers", map[string]string{"source": "invite"}, 0},
		} {
			if v := fams.Value(w.name, w.labels); v != w.want {
				return fmt.Errorf("%s%v = %v, want %v", w.name, w.labels, v, w.want)
			}
		}
		return nil
	})
}
