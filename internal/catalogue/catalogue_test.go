package catalogue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/localapi"
)

// source is a node whose peers and answers the test sets.
type source struct {
	peers []localapi.PeerInfo
	caps  map[string]string // peer ID -> JSON answer; missing: unreachable
}

func (s *source) Peers(context.Context) ([]localapi.PeerInfo, error) { return s.peers, nil }

func (s *source) Caps(_ context.Context, peer string) (json.RawMessage, error) {
	c, ok := s.caps[peer]
	if !ok {
		return nil, &localapi.Error{Stage: localapi.StageTransport, Reason: "unreachable"}
	}
	return json.RawMessage(c), nil
}

var quiet = slog.New(slog.DiscardHandler)

// TestReadKeepsUnreachableDropsGone: the promises an agent relies on
// between polls.
func TestReadKeepsUnreachableDropsGone(t *testing.T) {
	t.Parallel()
	src := &source{
		peers: []localapi.PeerInfo{{ID: "did:key:a", Name: "acme"}, {ID: "did:key:g", Name: "globex"}},
		caps:  map[string]string{"did:key:a": `[{"name":"echo"}]`, "did:key:g": `[{"name":"review"},{"name":"lint"}]`},
	}
	lim := Limits{Max: 10, Noun: "tool"}
	l, err := Read(t.Context(), src, List{}, lim, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(l.Entries)); !slices.Equal(got, []string{"acme__echo", "globex__lint", "globex__review"}) {
		t.Fatalf("entries %v", got)
	}

	delete(src.caps, "did:key:g") // globex briefly unreachable
	l, err = Read(t.Context(), src, l, lim, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Entries["globex__review"]; !ok || len(l.Entries) != 3 {
		t.Fatalf("an unreachable peer lost its entries: %v", slices.Sorted(maps.Keys(l.Entries)))
	}
	if v := l.Peers[1]; v.Err == nil || v.Err.Stage != localapi.StageTransport || len(v.Caps) != 2 {
		t.Fatalf("unreachable peer view %+v", v)
	}
	if e := l.Find("globex", "review"); e.PeerID != "did:key:g" || e.Cap.Name != "review" {
		t.Fatalf("Find by nickname: %+v", e)
	}

	src.peers = src.peers[:1] // globex removed from the book
	l, err = Read(t.Context(), src, l, lim, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(l.Entries)); !slices.Equal(got, []string{"acme__echo"}) {
		t.Fatalf("a peer gone from the book kept entries: %v", got)
	}
}

// TestReadBounds: however many capabilities peers answer, the list stays at
// Max, and two that fit the same name list the first only.
func TestReadBounds(t *testing.T) {
	t.Parallel()
	var many []string
	for i := range 50 {
		many = append(many, fmt.Sprintf(`{"name":"c%d"}`, i))
	}
	src := &source{
		peers: []localapi.PeerInfo{{ID: "did:key:a", Name: "acme"}, {ID: "did:key:b", Name: "acme"}},
		caps:  map[string]string{"did:key:a": "[" + strings.Join(many, ",") + "]", "did:key:b": `[{"name":"c0"}]`},
	}
	l, err := Read(t.Context(), src, List{}, Limits{Max: 20, Noun: "skill"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 20 {
		t.Fatalf("%d entries, want the bound 20", len(l.Entries))
	}
	if e := l.Entries["acme__c0"]; e.PeerID != "did:key:a" {
		t.Fatalf("a duplicate name replaced the first: %+v", e)
	}
}

func TestReadFailsWithoutPeers(t *testing.T) {
	t.Parallel()
	prev := List{Entries: map[string]Entry{"x__y": {PeerID: "did:key:x"}}}
	l, err := Read(t.Context(), failing{}, prev, Limits{Max: 1}, quiet)
	if err == nil || len(l.Entries) != 1 {
		t.Fatalf("Read = %v, %v; want the error and prev", l, err)
	}
}

type failing struct{}

func (failing) Peers(context.Context) ([]localapi.PeerInfo, error) { return nil, errors.New("down") }
func (failing) Caps(context.Context, string) (json.RawMessage, error) {
	return nil, errors.New("down")
}
