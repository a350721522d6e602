package trust

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func ev(k Kind, at time.Time) Evidence { return Evidence{Kind: k, At: at} }

func lvl(l Level) *Level { return &l }

// observeN folds n pieces of evidence of kind k at time at.
func observeN(cfg Config, s State, k Kind, n int, at time.Time) State {
	for range n {
		s, _ = s.Observe(cfg, ev(k, at))
	}
	return s
}

func TestZeroStateIsPrior(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cfg   Config
		score float64
		level Level
	}{
		{"default", Config{}, 0.5, LevelProvisional},
		{"low prior", Config{Prior: 0.2}, 0.2, LevelUntrusted},
		{"high prior", Config{Prior: 0.9}, 0.9, LevelHigh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s State
			if got := s.Score(tc.cfg, t0); got != tc.score {
				t.Errorf("Score = %v, want %v", got, tc.score)
			}
			if got := s.Level(tc.cfg, t0); got != tc.level {
				t.Errorf("Level = %v, want %v", got, tc.level)
			}
		})
	}
}

// The numbers promised in DefaultThresholds' doc comment.
func TestDefaultsDocumentedPath(t *testing.T) {
	t.Parallel()
	cfg := Config{}
	t.Run("three denied make untrusted", func(t *testing.T) {
		s := observeN(cfg, State{}, KindDenied, 2, t0)
		if l := s.Level(cfg, t0); l != LevelProvisional {
			t.Fatalf("after 2 denied: %v", l)
		}
		s, c := s.Observe(cfg, ev(KindDenied, t0))
		if !c.Changed() || c.From != LevelProvisional || c.To != LevelUntrusted || c.Cause.Kind != KindDenied {
			t.Fatalf("3rd denied: change %+v", c)
		}
	})
	t.Run("successes make trusted then high", func(t *testing.T) {
		s := observeN(cfg, State{}, KindSuccess, 5, t0)
		if l := s.Level(cfg, t0); l != LevelProvisional {
			t.Fatalf("after 5 successes: %v", l)
		}
		s = observeN(cfg, s, KindSuccess, 1, t0)
		if l := s.Level(cfg, t0); l != LevelTrusted {
			t.Fatalf("after 6 successes: %v (score %v)", l, s.Score(cfg, t0))
		}
		s = observeN(cfg, s, KindSuccess, 25, t0)
		if l := s.Level(cfg, t0); l != LevelTrusted {
			t.Fatalf("after 31 successes: %v", l)
		}
		s = observeN(cfg, s, KindSuccess, 1, t0)
		if l := s.Level(cfg, t0); l != LevelHigh {
			t.Fatalf("after 32 successes: %v (score %v)", l, s.Score(cfg, t0))
		}
	})
}

func TestDecayHalvesEvidencePerHalfLife(t *testing.T) {
	t.Parallel()
	cfg := Config{HalfLife: time.Hour}
	s := observeN(cfg, State{}, KindSuccess, 8, t0)
	s = observeN(cfg, s, KindDenied, 2, t0) // bad = 4
	for _, tc := range []struct {
		after     time.Duration
		good, bad float64
	}{
		{0, 8, 4},
		{time.Hour, 4, 2},
		{2 * time.Hour, 2, 1},
		{-time.Hour, 8, 4}, // time before the last update does not decay
	} {
		g, b := s.Counts(cfg, t0.Add(tc.after))
		if math.Abs(g-tc.good) > 1e-12 || math.Abs(b-tc.bad) > 1e-12 {
			t.Errorf("after %v: good, bad = %v, %v; want %v, %v", tc.after, g, b, tc.good, tc.bad)
		}
	}
	// Long silence returns the score to the prior.
	if sc := s.Score(cfg, t0.Add(100*time.Hour)); math.Abs(sc-0.5) > 1e-9 {
		t.Errorf("score after 100 half-lives = %v, want 0.5", sc)
	}
}

func TestHysteresisConcrete(t *testing.T) {
	t.Parallel()
	// Prior weight 100 makes one piece of evidence move the score by about 0.005,
	// well inside the 0.03 margin.
	cfg := Config{PriorWeight: 100}
	s := State{}
	var up LevelChange
	for i := 0; i < 200 && !up.Changed(); i++ {
		s, up = s.Observe(cfg, ev(KindSuccess, t0))
	}
	if up.To != LevelTrusted {
		t.Fatalf("never promoted to trusted: %+v", up)
	}
	sc := s.Score(cfg, t0)
	if sc < 0.65+0.03 {
		t.Fatalf("promoted at score %v, below threshold+margin", sc)
	}
	// Several failures bring the score below 0.68 and even below 0.65: still trusted.
	for range 8 {
		var c LevelChange
		s, c = s.Observe(cfg, ev(KindFailure, t0))
		if c.Changed() {
			t.Fatalf("demoted at score %v after promotion at %v: %+v", s.Score(cfg, t0), sc, c)
		}
	}
	if got := s.Score(cfg, t0); got >= 0.65 {
		t.Fatalf("test setup: score %v should be below the threshold", got)
	}
}

func TestQuarantine(t *testing.T) {
	t.Parallel()
	cfg := Config{}
	s := observeN(cfg, State{}, KindSuccess, 100, t0)
	s, err := func() (State, error) { n, _, err := s.SetFloor(cfg, lvl(LevelTrusted), t0); return n, err }()
	if err != nil {
		t.Fatal(err)
	}
	s, c := s.Observe(cfg, Evidence{Kind: KindBadSignature, Detail: "forged", At: t0})
	if c.To != LevelQuarantined || c.From != LevelHigh || c.Cause.Kind != KindBadSignature {
		t.Fatalf("change = %+v", c)
	}
	if !s.Quarantined() || s.QuarantineCause().Detail != "forged" {
		t.Fatalf("not quarantined with cause: %+v", s.QuarantineCause())
	}
	// Good evidence, time and the floor do not end quarantine.
	s = observeN(cfg, s, KindSuccess, 1000, t0.Add(time.Hour))
	if l := s.Level(cfg, t0.Add(1000*time.Hour)); l != LevelQuarantined {
		t.Fatalf("level = %v, want quarantined", l)
	}
	s, c = s.Lift(cfg, t0.Add(2*time.Hour))
	if s.Quarantined() || c.From != LevelQuarantined || c.To < LevelTrusted || c.Cause.Kind != KindOperator {
		t.Fatalf("after lift: quarantined=%v change=%+v", s.Quarantined(), c)
	}
}

func TestSevereConfigurable(t *testing.T) {
	t.Parallel()
	cfg := Config{Severe: Severe{KindEquivocation: false, KindReplay: true}}
	s, _ := State{}.Observe(cfg, ev(KindEquivocation, t0))
	if s.Quarantined() {
		t.Error("equivocation quarantined although turned off")
	}
	s, _ = State{}.Observe(cfg, ev(KindReplay, t0))
	if !s.Quarantined() {
		t.Error("replay did not quarantine although turned on")
	}
	s, _ = State{}.Observe(cfg, ev(KindAuditFork, t0))
	if !s.Quarantined() {
		t.Error("audit_fork (default severe) did not quarantine")
	}
}

func TestWeightsConfigurable(t *testing.T) {
	t.Parallel()
	cfg := Config{Weights: Weights{KindSuccess: 3}}
	s, _ := State{}.Observe(cfg, ev(KindSuccess, t0))
	if g, _ := s.Counts(cfg, t0); g != 3 {
		t.Errorf("good = %v, want 3 (configured)", g)
	}
	s, _ = s.Observe(cfg, ev(KindTimeout, t0))
	if _, b := s.Counts(cfg, t0); b != 0.5 {
		t.Errorf("bad = %v, want 0.5 (default timeout weight)", b)
	}
	s, _ = s.Observe(cfg, Evidence{Kind: KindFailure, Weight: -7, At: t0})
	if _, b := s.Counts(cfg, t0); b != 7.5 {
		t.Errorf("bad = %v, want 7.5 (explicit weight)", b)
	}
	for _, w := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		n, _ := s.Observe(cfg, Evidence{Kind: KindFailure, Weight: w, At: t0})
		if n.Score(cfg, t0) != s.Score(cfg, t0) {
			t.Errorf("weight %v changed the score", w)
		}
	}
	n, _ := s.Observe(cfg, Evidence{Kind: KindFailure, Weight: -1e12, At: t0})
	if _, b := n.Counts(cfg, t0); b != 7.5+maxWeight {
		t.Errorf("huge weight not clamped: bad = %v", b)
	}
}

func TestFloorCeiling(t *testing.T) {
	t.Parallel()
	cfg := Config{}
	s := observeN(cfg, State{}, KindDenied, 10, t0) // untrusted
	s, c, err := s.SetFloor(cfg, lvl(LevelProvisional), t0)
	if err != nil || c.To != LevelProvisional || c.Cause.Kind != KindOperator {
		t.Fatalf("SetFloor: %+v %v", c, err)
	}
	if _, _, err := s.SetCeiling(cfg, lvl(LevelUntrusted), t0); !errors.Is(err, ErrFloorAboveCeiling) {
		t.Fatalf("ceiling below floor: err = %v", err)
	}
	s, _, _ = s.SetFloor(cfg, nil, t0)
	s = observeN(cfg, s, KindSuccess, 500, t0)
	s, c, err = s.SetCeiling(cfg, lvl(LevelTrusted), t0)
	if err != nil || c.From != LevelHigh || c.To != LevelTrusted {
		t.Fatalf("SetCeiling: %+v %v", c, err)
	}
	if _, _, err := s.SetFloor(cfg, lvl(LevelHigh), t0); !errors.Is(err, ErrFloorAboveCeiling) {
		t.Fatalf("floor above ceiling: err = %v", err)
	}
	if _, _, err := s.SetFloor(cfg, lvl(Level(9)), t0); err == nil {
		t.Fatal("invalid level accepted as floor")
	}
	s, _, _ = s.SetCeiling(cfg, lvl(LevelQuarantined), t0)
	if l := s.Level(cfg, t0); l != LevelQuarantined {
		t.Fatalf("ceiling quarantined: level %v", l)
	}
}

func TestDecayETA(t *testing.T) {
	t.Parallel()
	cfg := Config{HalfLife: time.Hour}
	for _, tc := range []struct {
		name string
		k    Kind
		n    int
	}{
		{"good", KindSuccess, 40},
		{"bad", KindDenied, 10},
		{"tiny", KindTimeout, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := observeN(cfg, State{}, tc.k, tc.n, t0)
			now := t0.Add(10 * time.Minute)
			eta := s.DecayETA(cfg, now)
			at := func(d time.Duration) float64 { return math.Abs(s.Score(cfg, now.Add(d)) - 0.5) }
			if eta == 0 {
				if at(0) > 0.01 {
					t.Fatalf("eta 0 but |score-prior| = %v", at(0))
				}
				return
			}
			if got := at(eta); got > 0.01+1e-9 {
				t.Errorf("at eta %v: |score-prior| = %v > 0.01", eta, got)
			}
			if got := at(eta - time.Second); got <= 0.01 {
				t.Errorf("1s before eta %v: |score-prior| = %v already <= 0.01", eta, got)
			}
		})
	}
	if eta := (State{}).DecayETA(cfg, t0); eta != 0 {
		t.Errorf("zero state eta = %v", eta)
	}
}

func TestRecentRingBounded(t *testing.T) {
	t.Parallel()
	cfg := Config{}
	s := State{}
	for i := range RecentCap + 5 {
		s, _ = s.Observe(cfg, Evidence{Kind: KindSuccess, Detail: strings.Repeat("x", 1000), At: t0.Add(time.Duration(i) * time.Second)})
	}
	r := s.Recent()
	if len(r) != RecentCap {
		t.Fatalf("len(Recent) = %d", len(r))
	}
	if !r[0].At.Equal(t0.Add(5*time.Second)) || !r[RecentCap-1].At.Equal(t0.Add(time.Duration(RecentCap+4)*time.Second)) {
		t.Errorf("ring order wrong: first %v last %v", r[0].At, r[RecentCap-1].At)
	}
	if len(r[0].Detail) != maxDetail || r[0].Weight != 1 {
		t.Errorf("detail len %d weight %v", len(r[0].Detail), r[0].Weight)
	}
	if got := truncate("ab\u00e9", 3); got != "ab" {
		t.Errorf("truncate split a rune: %q", got)
	}
}

func TestStateJSON(t *testing.T) {
	t.Parallel()
	cfg := Config{}
	s := observeN(cfg, State{}, KindSuccess, 20, t0)
	s, _, _ = s.SetCeiling(cfg, lvl(LevelTrusted), t0)
	s, _ = s.Observe(cfg, Evidence{Kind: KindAuditFork, Detail: "fork at 12", At: t0.Add(time.Minute)})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var r State
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(r)
	if string(b2) != string(b) || r.Score(cfg, t0) != s.Score(cfg, t0) || r.Level(cfg, t0) != s.Level(cfg, t0) ||
		r.QuarantineCause() != s.QuarantineCause() {
		t.Errorf("round trip differs:\n got %s\nwant %s", b2, b)
	}
	for _, bad := range []string{
		`{"good":-1}`,
		`{"good":1,"bad":-0.5}`,
		`{"natural":"quarantined"}`,
		`{"natural":"bogus"}`,
		`{"floor":"high","ceiling":"untrusted"}`,
		`[]`,
	} {
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string // "" = valid
	}{
		{"zero", Config{}, ""},
		{"prior 1", Config{Prior: 1}, "Prior"},
		{"prior negative", Config{Prior: -0.1}, "Prior"},
		{"prior NaN", Config{Prior: math.NaN()}, "Prior"},
		{"prior weight negative", Config{PriorWeight: -1}, "PriorWeight"},
		{"prior weight huge", Config{PriorWeight: 2e6}, "PriorWeight"},
		{"half-life short", Config{HalfLife: time.Millisecond}, "HalfLife"},
		{"flush long", Config{FlushEvery: time.Hour}, "FlushEvery"},
		{"unknown weight kind", Config{Weights: Weights{"sucess": 1}}, "Weights"},
		{"internal kind weighted", Config{Weights: Weights{KindDecay: 1}}, "Weights"},
		{"weight huge", Config{Weights: Weights{KindSuccess: 1e4}}, "Weights"},
		{"weight NaN", Config{Weights: Weights{KindSuccess: math.NaN()}}, "Weights"},
		{"unknown severe kind", Config{Severe: Severe{"forgery": true}}, "Severe"},
		{"hysteresis big", Config{Levels: Thresholds{Hysteresis: 0.3}}, "Levels.Hysteresis"},
		{"thresholds out of order", Config{Levels: Thresholds{Provisional: 0.7, Trusted: 0.6}}, "Levels.Trusted"},
		{"bands too narrow", Config{Levels: Thresholds{Provisional: 0.5, Trusted: 0.55, High: 0.9, Hysteresis: 0.03}}, "Levels.Trusted"},
		{"high unreachable", Config{Levels: Thresholds{High: 0.99, Hysteresis: 0.02}}, "Levels.High"},
		{"custom valid", Config{Prior: 0.3, PriorWeight: 4, HalfLife: time.Hour, Weights: Weights{KindSuccess: 2}, Levels: Thresholds{Provisional: 0.2, Trusted: 0.5, High: 0.8, Hysteresis: 0.05}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "Config."+tc.field) {
				t.Fatalf("error %v does not name Config.%s", err, tc.field)
			}
		})
	}
}

func TestLevelText(t *testing.T) {
	t.Parallel()
	for l := LevelQuarantined; l <= LevelHigh; l++ {
		b, err := l.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var r Level
		if err := r.UnmarshalText(b); err != nil || r != l {
			t.Errorf("%v: round trip gave %v, %v", l, r, err)
		}
	}
	if Level(7).String() != "level(7)" {
		t.Errorf("unknown level prints %q", Level(7).String())
	}
	if _, err := Level(-1).MarshalText(); err == nil {
		t.Error("invalid level marshalled")
	}
	if l, err := ParseLevel("High"); err != nil || l != LevelHigh {
		t.Errorf("ParseLevel(High) = %v, %v", l, err)
	}
	if _, err := ParseLevel("5"); err == nil {
		t.Error("ParseLevel accepted a number")
	}
}
