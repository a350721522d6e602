package dashboard_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/dashboard"
	"github.com/treaty-dev/treaty/internal/testnet"
	"github.com/treaty-dev/treaty/localapi"
)

const tok = "0123456789abcdef0123456789abcdef0123456789abcdef"

// get serves one authorized GET on h.
func get(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Host = "127.0.0.1:7780"
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func snapshot(t *testing.T, h http.Handler) dashboard.Snapshot {
	t.Helper()
	w := get(t, h, "/api/snapshot")
	var s dashboard.Snapshot
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatalf("snapshot %d: %v: %s", w.Code, err, w.Body)
	}
	return s
}

// TestSnapshotFromNode reads a real node without a browser: peers, calls,
// refusals, verification before and after an edit, proofs.
func TestSnapshotFromNode(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme, globex := c.Members[0], c.Members[1]
	globex.Handle(t, "echo", backend.Func(func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil }))
	globex.Handle(t, "secret", backend.Func(func(_ context.Context, inv backend.Invocation) ([]byte, error) { return inv.Input, nil }))
	globex.Grant(t, "acme", "echo")
	acme.MustCall(t, "globex", "echo", `{}`)
	if o := acme.Call(t, "globex", "secret", `{}`); o.Err == nil {
		t.Fatal("ungranted call succeeded")
	}

	d, err := dashboard.New(dashboard.Options{Node: acme.Client(), Home: acme.Home})
	if err != nil {
		t.Fatal(err)
	}
	h, err := d.Handler(tok, "127.0.0.1:7780", true)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	d.Refresh(ctx, true)
	if v := d.Verify(ctx); v.State != "ok" {
		t.Fatalf("verify: %+v", v)
	}
	d.Refresh(ctx, false)
	s := snapshot(t, h)
	if !s.Node.Up || s.Node.Name != "acme" || len(s.Peers) != 1 || s.Peers[0].Name != "globex" || s.Verify.State != "ok" {
		t.Fatalf("snapshot: %+v", s)
	}
	var ok, refused bool
	for _, e := range s.Calls {
		ok = ok || (e.Kind == "call.completed" && e.Capability == "echo" && e.Outcome == "ok" && e.PeerName == "globex")
	}
	for _, e := range s.Refusals {
		refused = refused || (e.Capability == "secret" && e.Stage != "")
	}
	if !ok || !refused {
		t.Fatalf("calls %+v\nrefusals %+v", s.Calls, s.Refusals)
	}
	// Members come from GET /v1/members: globex, from the peer book.
	var member bool
	for _, m := range s.Members {
		member = member || (m.Name == "globex" && m.ID == globex.ID.String() && m.Status == "member")
	}
	if !s.HasMembers || !member {
		t.Fatalf("members (has %v): %+v", s.HasMembers, s.Members)
	}
	if raw := get(t, h, "/api/snapshot").Body.String(); !strings.Contains(raw, `"has_members":true`) || !strings.Contains(raw, `"members":[`) {
		t.Fatalf("snapshot JSON without members: %s", raw)
	}

	// The proof of an entry checks; an unknown entry is 404.
	w := get(t, h, "/api/prove?index=0")
	var pv dashboard.ProofView
	if err := json.Unmarshal(w.Body.Bytes(), &pv); err != nil || !pv.Valid || pv.Proof.Size == 0 {
		t.Fatalf("prove 0: %d %v %s", w.Code, err, w.Body)
	}
	if w := get(t, h, "/api/prove?index=99999"); w.Code != http.StatusNotFound {
		t.Fatalf("prove unknown: %d %s", w.Code, w.Body)
	}

	// An edited row fails verification, naming the entry.
	idx := s.Calls[0].Index
	db, err := sql.Open("sqlite", "file:"+filepath.Join(acme.Home, "audit.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`UPDATE entries SET leaf = replace(leaf, '"kind":"', '"kind":"x') WHERE idx = ?`, idx)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if v := d.Verify(ctx); v.State != "failed" || !strings.Contains(v.Detail, "entry "+itoa(idx)) {
		t.Fatalf("verify after edit: %+v", v)
	}
	d.Refresh(ctx, false)
	if s := snapshot(t, h); s.Verify.State != "failed" {
		t.Fatalf("snapshot after edit: %+v", s.Verify)
	}
}

// TestNodeDown: a node that does not answer is shown as such, not an error page.
func TestNodeDown(t *testing.T) {
	d, err := dashboard.New(dashboard.Options{Node: downNode{}, Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := d.Handler(tok, "127.0.0.1:7780", true)
	d.Refresh(t.Context(), true)
	if v := d.Verify(t.Context()); v.State != "failed" {
		t.Fatalf("verify of a missing log: %+v", v)
	}
	d.Refresh(t.Context(), true)
	s := snapshot(t, h)
	if s.Node.Up || s.Node.Error == "" || s.Verify.State != "failed" {
		t.Fatalf("snapshot: %+v", s)
	}
}

// TestEvents: the stream sends the current snapshot at once and a new one
// after a change.
func TestEvents(t *testing.T) {
	n := &switchNode{}
	d, err := dashboard.New(dashboard.Options{Node: n, Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := d.Handler(tok, "127.0.0.1:7780", true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Host = "127.0.0.1:7780"
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	next := func() dashboard.Snapshot {
		t.Helper()
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var s dashboard.Snapshot
				if err := json.Unmarshal([]byte(data), &s); err != nil {
					t.Fatal(err)
				}
				return s
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return dashboard.Snapshot{}
	}
	if s := next(); s.Node.Up {
		t.Fatalf("first event: %+v", s)
	}
	n.up.Store(true)
	d.Refresh(ctx, false)
	if s := next(); !s.Node.Up || s.Node.Name != "self" {
		t.Fatalf("second event: %+v", s)
	}
}

// TestGroups: a node running a group shows it, its members and its motions;
// one running none shows no group panel.
func TestGroups(t *testing.T) {
	c := testnet.NewCluster(t, 2, testnet.Options{Names: []string{"acme", "globex"}})
	acme := c.Members[0]
	d, err := dashboard.New(dashboard.Options{Node: acme.Client(), Home: acme.Home})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := d.Handler(tok, "127.0.0.1:7780", true)
	d.Refresh(t.Context(), false)
	if s := snapshot(t, h); s.HasGroups || len(s.Groups) != 0 {
		t.Fatalf("groups before any: %+v", s.Groups)
	}
	for _, m := range c.Members {
		if err := m.Client().GroupCreate(t.Context(), localapi.GroupCreateRequest{Name: "board", Mode: "raft", Members: []string{"acme", "globex"}}); err != nil {
			t.Fatalf("%s: group create: %v", m.Name, err)
		}
	}
	// A fresh group elects its leader first: retry while it has no quorum.
	deadline := time.Now().Add(45 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := acme.Client().MotionOpen(ctx, localapi.MotionOpenRequest{Group: "board", Name: "hire-bob", Quorum: 2, Text: "<b>hire</b>"})
		cancel()
		if err == nil {
			break
		}
		if localapi.ExitCode(err) != localapi.ExitUnreachable || time.Now().After(deadline) {
			t.Fatalf("motion open: %v", err)
		}
	}
	d.Refresh(t.Context(), false)
	s := snapshot(t, h)
	if !s.HasGroups || len(s.Groups) != 1 || s.Groups[0].Name != "board" || len(s.Groups[0].Members) != 2 {
		t.Fatalf("groups: %+v", s.Groups)
	}
	if len(s.Motions) != 1 || s.Motions[0].Group != "board" || s.Motions[0].Name != "hire-bob" || s.Motions[0].Outcome != "open" {
		t.Fatalf("motions: %+v", s.Motions)
	}
}

// TestSnapshotShowsGossipMembers: with membership.enabled, the members panel
// carries gossip's view: the peer alive, with the organisation its record names.
func TestSnapshotShowsGossipMembers(t *testing.T) {
	names := []string{"acme", "globex"}
	cfg := map[string]string{}
	for _, n := range names {
		cfg[n] = "membership:\n  enabled: true\n  org: " + n + " inc\n"
	}
	c := testnet.NewCluster(t, 2, testnet.Options{Names: names, Config: cfg})
	for _, m := range c.Members { // seed gossip with the peer books written after start
		m.Stop(t)
		m.Start(t)
	}
	acme, globex := c.Members[0], c.Members[1]
	d, err := dashboard.New(dashboard.Options{Node: acme.Client(), Home: acme.Home})
	if err != nil {
		t.Fatal(err)
	}
	h, err := d.Handler(tok, "127.0.0.1:7780", true)
	if err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 10*time.Second, func() error {
		d.Refresh(t.Context(), false)
		s := snapshot(t, h)
		for _, m := range s.Members {
			if m.ID == globex.ID.String() && m.State == "alive" && m.Org == "globex inc" {
				return nil
			}
		}
		return fmt.Errorf("globex not alive with its org in %+v", s.Members)
	})
}
