package trust

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

func peerID(t testing.TB, n byte) string {
	t.Helper()
	seed := make([]byte, 32)
	seed[0] = n
	k, err := identity.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public().String()
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openBook(t *testing.T, cfg Config, path string) *Book {
	t.Helper()
	b, err := Open(cfg, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBookRestartKeepsScores(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state", "trust.json")
	clk := &fakeClock{now: t0}
	cfg := Config{Now: clk.Now}
	alice, bob := peerID(t, 1), peerID(t, 2)

	b := openBook(t, cfg, path)
	for range 10 {
		if _, err := b.Observe(alice, Evidence{Kind: KindSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Observe(bob, Evidence{Kind: KindEquivocation, Detail: "round 7"}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetCeiling(alice, lvl(LevelTrusted)); err != nil {
		t.Fatal(err)
	}
	before := b.List(t0)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Observe(alice, Evidence{Kind: KindSuccess}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Observe after Close: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}

	b2 := openBook(t, cfg, path)
	after := b2.List(t0)
	ja, _ := json.Marshal(after)
	jb, _ := json.Marshal(before)
	if string(ja) != string(jb) || len(after) != 2 {
		t.Fatalf("restart changed state:\n got %s\nwant %s", ja, jb)
	}
	if s := b2.Get(bob, t0); s.Level != LevelQuarantined || s.QuarantineCause == nil || s.QuarantineCause.Detail != "round 7" {
		t.Fatalf("bob after restart: %+v", s)
	}
	if s := b2.Get(alice, t0); s.Level != LevelTrusted || s.Ceiling == nil || *s.Ceiling != LevelTrusted || s.Score <= 0.5 {
		t.Fatalf("alice after restart: %+v", s)
	}
}

// A level change is on disk before Observe returns, without Close.
func TestBookLevelChangeWrittenAtOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "trust.json")
	cfg := Config{FlushEvery: time.Minute}
	b := openBook(t, cfg, path)
	p := peerID(t, 3)
	c, err := b.Observe(p, Evidence{Kind: KindBadSignature, At: t0})
	if err != nil || c.To != LevelQuarantined {
		t.Fatalf("Observe: %+v %v", c, err)
	}
	snaps, err := ReadFile(cfg, path, t0)
	if err != nil || len(snaps) != 1 || !snaps[0].Quarantined {
		t.Fatalf("file after severe evidence: %+v %v", snaps, err)
	}
}

// Ordinary evidence reaches the file within FlushEvery, without Close.
func TestBookBackgroundFlush(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "trust.json")
	cfg := Config{FlushEvery: 10 * time.Millisecond}
	b := openBook(t, cfg, path)
	p := peerID(t, 4)
	if _, err := b.Observe(p, Evidence{Kind: KindSuccess, At: t0}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		snaps, err := ReadFile(cfg, path, t0)
		if err == nil && len(snaps) == 1 && snaps[0].Good == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("evidence not flushed: %+v %v", snaps, err)
		}
		time.Sleep(5 * time.Millisecond) // polling a file against a deadline, not synchronising
	}
}

func TestBookLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "trust.json")
	b := openBook(t, Config{}, path)
	if _, err := Open(Config{}, path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	b.Close()
	b2, err := Open(Config{}, path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	b2.Close()
}

func TestBookRejects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := openBook(t, Config{}, filepath.Join(dir, "trust.json"))
	p := peerID(t, 5)
	for _, tc := range []struct {
		name string
		peer string
		e    Evidence
		want error
	}{
		{"unknown kind", p, Evidence{Kind: "bogus"}, ErrUnknownKind},
		{"internal kind", p, Evidence{Kind: KindDecay}, ErrUnknownKind},
		{"operator kind", p, Evidence{Kind: KindOperator}, ErrUnknownKind},
		{"empty peer", "", Evidence{Kind: KindSuccess}, ErrBadPeer},
		{"huge peer", string(make([]byte, 600)), Evidence{Kind: KindSuccess}, ErrBadPeer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := b.Observe(tc.peer, tc.e); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if len(b.List(t0)) != 0 {
		t.Fatal("rejected evidence was stored")
	}

	t.Run("bad config", func(t *testing.T) {
		if _, err := Open(Config{Prior: 2}, filepath.Join(dir, "x.json")); err == nil {
			t.Fatal("accepted Prior 2")
		}
	})
	for name, content := range map[string]string{
		"corrupt":      "{not json",
		"version":      `{"version":2,"peers":{}}`,
		"bad state":    `{"version":1,"peers":{"p":{"good":-3}}}`,
		"empty peer":   `{"version":1,"peers":{"":{}}}`,
		"bad level":    `{"version":1,"peers":{"p":{"floor":"superb"}}}`,
		"wrong shape":  `{"version":1,"peers":[]}`,
		"no version":   `{"peers":{}}`,
		"trailing obj": `{"version":1,"peers":{}} {}`,
	} {
		t.Run("file "+name, func(t *testing.T) {
			path := filepath.Join(dir, name+".json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if b, err := Open(Config{}, path); err == nil {
				b.Close()
				t.Fatalf("opened %s", content)
			}
		})
	}
}

func TestBookNotifiesEveryChange(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{now: t0}
	cfg := Config{HalfLife: time.Hour, Now: clk.Now}
	b := openBook(t, cfg, filepath.Join(t.TempDir(), "trust.json"))
	var mu sync.Mutex
	var got []LevelChange
	b.OnLevelChange(func(peer string, c LevelChange) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	})
	p := peerID(t, 6)
	for range 3 {
		if _, err := b.Observe(p, Evidence{Kind: KindDenied}); err != nil {
			t.Fatal(err)
		}
	}
	// Untrusted now; after a few half-lives decay alone brings it back to provisional,
	// which Standing notices.
	clk.Add(5 * time.Hour)
	if st := b.Standing(p, clk.Now()); st.Level != LevelProvisional {
		t.Fatalf("after decay: %+v", st)
	}
	if err := b.SetFloor(p, lvl(LevelTrusted)); err != nil {
		t.Fatal(err)
	}
	if err := b.SetFloor(p, lvl(LevelHigh)); err != nil {
		t.Fatal(err)
	}
	if err := b.SetCeiling(p, lvl(LevelTrusted)); !errors.Is(err, ErrFloorAboveCeiling) {
		t.Fatalf("ceiling below floor: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []struct {
		from, to Level
		kind     Kind
	}{
		{LevelProvisional, LevelUntrusted, KindDenied},
		{LevelUntrusted, LevelProvisional, KindDecay},
		{LevelProvisional, LevelTrusted, KindOperator},
		{LevelTrusted, LevelHigh, KindOperator},
	}
	if len(got) != len(want) {
		t.Fatalf("changes = %+v", got)
	}
	for i, w := range want {
		if got[i].From != w.from || got[i].To != w.to || got[i].Cause.Kind != w.kind {
			t.Errorf("change %d = %+v, want %v->%v by %v", i, got[i], w.from, w.to, w.kind)
		}
	}
}

func TestBookUnknownPeerNotStored(t *testing.T) {
	t.Parallel()
	b := openBook(t, Config{}, filepath.Join(t.TempDir(), "trust.json"))
	s := b.Get(peerID(t, 7), t0)
	if s.Score != 0.5 || s.Level != LevelProvisional || s.Quarantined || len(s.Recent) != 0 {
		t.Fatalf("unknown peer: %+v", s)
	}
	if n := len(b.List(t0)); n != 0 {
		t.Fatalf("Get stored an unknown peer: %d", n)
	}
}

func TestBookLiftAndForget(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "trust.json")
	clk := &fakeClock{now: t0}
	b := openBook(t, Config{Now: clk.Now}, path)
	p := peerID(t, 8)
	if _, err := b.Observe(p, Evidence{Kind: KindAuditFork}); err != nil {
		t.Fatal(err)
	}
	if err := b.Lift(p); err != nil {
		t.Fatal(err)
	}
	if s := b.Get(p, t0); s.Quarantined || s.Level == LevelQuarantined {
		t.Fatalf("after Lift: %+v", s)
	}
	if err := b.Forget(p); err != nil {
		t.Fatal(err)
	}
	if n := len(b.List(t0)); n != 0 {
		t.Fatalf("after Forget: %d peers", n)
	}
}

func TestBookUpdate(t *testing.T) {
	t.Parallel()
	b := openBook(t, Config{}, filepath.Join(t.TempDir(), "trust.json"))
	p := peerID(t, 9)
	if _, err := b.Observe(p, Evidence{Kind: KindSuccess, At: t0}); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(Config{Prior: 2}); err == nil {
		t.Fatal("Update accepted an invalid config")
	}
	if err := b.Update(Config{Weights: Weights{KindSuccess: 5}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Observe(p, Evidence{Kind: KindSuccess, At: t0}); err != nil {
		t.Fatal(err)
	}
	if s := b.Get(p, t0); s.Good != 6 {
		t.Fatalf("new weight not used: good = %v", s.Good)
	}
}

// Concurrent evidence, reads and operator changes: run with -race.
func TestBookConcurrent(t *testing.T) {
	t.Parallel()
	b := openBook(t, Config{FlushEvery: 10 * time.Millisecond}, filepath.Join(t.TempDir(), "trust.json"))
	peers := []string{peerID(t, 10), peerID(t, 11), peerID(t, 12)}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				p := peers[(g+i)%len(peers)]
				at := t0.Add(time.Duration(i) * time.Second)
				switch i % 4 {
				case 0:
					b.Observe(p, Evidence{Kind: KindSuccess, At: at})
				case 1:
					b.Observe(p, Evidence{Kind: KindDenied, At: at})
				case 2:
					b.Standing(p, at)
				case 3:
					b.Get(p, at)
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			b.SetFloor(peers[0], lvl(LevelUntrusted))
			b.List(t0)
		}
	})
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStandingAllocs(t *testing.T) {
	b := openBook(t, Config{}, filepath.Join(t.TempDir(), "trust.json"))
	p := peerID(t, 13)
	if _, err := b.Observe(p, Evidence{Kind: KindSuccess, At: t0}); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { b.Standing(p, t0) }); n != 0 {
		t.Errorf("Standing allocates %v times", n)
	}
}
