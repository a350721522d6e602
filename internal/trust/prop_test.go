package trust

import (
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// Property tests for the claims in the package doc. Each draws a model Config and a
// random history of evidence, then checks one claim.

const tol = 1e-12

var (
	goodKinds   = []Kind{KindSuccess}
	mildBad     = []Kind{KindFailure, KindTimeout, KindDenied, KindBudget, KindSanitizer, KindScreenMark, KindScreenBlock, KindReplay}
	severeKinds = []Kind{KindBadSignature, KindAuditFork, KindEquivocation}
)

func genConfig(t *rapid.T) Config {
	return Config{
		Prior:       rapid.Float64Range(0.1, 0.9).Draw(t, "prior"),
		PriorWeight: rapid.Float64Range(5, 50).Draw(t, "priorWeight"),
		HalfLife:    time.Duration(rapid.Int64Range(int64(time.Minute), int64(48*time.Hour)).Draw(t, "halfLife")),
	}
}

// genEvidence draws evidence at or after at; explicit weights have the kind's sign.
func genEvidence(t *rapid.T, cfg Config, at time.Time, kinds []Kind) Evidence {
	at = at.Add(time.Duration(rapid.Int64Range(0, int64(2*cfg.halfLife())).Draw(t, "gap")))
	k := rapid.SampledFrom(kinds).Draw(t, "kind")
	e := Evidence{Kind: k, At: at}
	if rapid.Bool().Draw(t, "explicit") {
		w := rapid.Float64Range(0.01, 10).Draw(t, "weight")
		if cfg.Weight(k) < 0 {
			w = -w
		}
		e.Weight = w
	}
	return e
}

func genHistory(t *rapid.T, cfg Config, kinds []Kind, label string) []Evidence {
	n := rapid.IntRange(0, 40).Draw(t, label+"Len")
	out := make([]Evidence, 0, n)
	at := t0
	for range n {
		e := genEvidence(t, cfg, at, kinds)
		out = append(out, e)
		at = e.At
	}
	return out
}

func allKinds() []Kind {
	return append(append(append([]Kind{}, goodKinds...), mildBad...), severeKinds...)
}

func nonSevere() []Kind { return append(append([]Kind{}, goodKinds...), mildBad...) }

// run folds a history the way Book does: decay first, then the evidence.
func run(cfg Config, s State, h []Evidence) State {
	for _, e := range h {
		s, _ = s.Advance(cfg, e.At)
		s, _ = s.Observe(cfg, e)
	}
	return s
}

func last(h []Evidence) time.Time {
	if len(h) == 0 {
		return t0
	}
	return h[len(h)-1].At
}

// Inserting one piece of good evidence anywhere in a history never lowers the score
// or the level at the end, nor at any step after it; bad evidence never raises them.
func TestPropMonotone(t *testing.T) {
	t.Parallel()
	for _, good := range []bool{true, false} {
		name := map[bool]string{true: "good", false: "bad"}[good]
		t.Run(name, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				cfg := genConfig(t)
				h := genHistory(t, cfg, allKinds(), "h")
				i := rapid.IntRange(0, len(h)).Draw(t, "insertAt")
				var at time.Time
				switch {
				case i < len(h):
					at = h[i].At
				case len(h) > 0:
					at = h[len(h)-1].At
				default:
					at = t0
				}
				kinds := goodKinds
				if !good {
					kinds = append(append([]Kind{}, mildBad...), severeKinds...)
				}
				e := Evidence{Kind: rapid.SampledFrom(kinds).Draw(t, "insertKind"), At: at}
				h2 := append(append(append([]Evidence{}, h[:i]...), e), h[i:]...)

				a, b := State{}, State{}
				for j := range h2 {
					b, _ = b.Advance(cfg, h2[j].At)
					b, _ = b.Observe(cfg, h2[j])
					if j == i {
						continue // the inserted one
					}
					a, _ = a.Advance(cfg, h2[j].At)
					a, _ = a.Observe(cfg, h2[j])
					if j < i {
						continue
					}
					checkOrder(t, cfg, good, a, b, h2[j].At)
				}
				if i == len(h) {
					// Inserted last: compare with a decayed to the same time.
					a, _ = a.Advance(cfg, e.At)
				}
				end := last(h2).Add(time.Duration(rapid.Int64Range(0, int64(3*cfg.halfLife())).Draw(t, "after")))
				checkOrder(t, cfg, good, a, b, end)
			})
		})
	}
}

func checkOrder(t *rapid.T, cfg Config, good bool, without, with State, at time.Time) {
	sa, sb := without.Score(cfg, at), with.Score(cfg, at)
	la, lb := without.Level(cfg, at), with.Level(cfg, at)
	if good && (sb < sa-tol || lb < la) {
		t.Fatalf("good evidence lowered score %v -> %v or level %v -> %v at %v", sa, sb, la, lb, at)
	}
	if !good && (sb > sa+tol || lb > la) {
		t.Fatalf("bad evidence raised score %v -> %v or level %v -> %v at %v", sa, sb, la, lb, at)
	}
}

// Without evidence, |score - prior| never grows, and after 60 half-lives it is gone.
func TestPropDecayTowardPrior(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig(t)
		s := run(cfg, State{}, genHistory(t, cfg, allKinds(), "h"))
		at := s.Updated()
		if at.IsZero() {
			at = t0
		}
		p := cfg.prior()
		prev := math.Abs(s.Score(cfg, at) - p)
		for range rapid.IntRange(1, 20).Draw(t, "steps") {
			at = at.Add(time.Duration(rapid.Int64Range(0, int64(cfg.halfLife())).Draw(t, "dt")))
			d := math.Abs(s.Score(cfg, at) - p)
			if d > prev+tol {
				t.Fatalf("|score-prior| grew %v -> %v at %v", prev, d, at)
			}
			prev = d
		}
		if d := math.Abs(s.Score(cfg, at.Add(60*cfg.halfLife())) - p); d > 1e-9 {
			t.Fatalf("after 60 half-lives |score-prior| = %v", d)
		}
	})
}

// A level is entered only at threshold+margin and left only below threshold-margin,
// so between a promotion and the next demotion (or the reverse) the score moved by
// more than twice the margin: one event near a threshold cannot flip the level back
// and forth.
func TestPropHysteresis(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig(t)
		cfg.PriorWeight = rapid.Float64Range(2, 200).Draw(t, "priorWeight2")
		th := cfg.levels()
		h := genHistory(t, cfg, nonSevere(), "h")
		type mark struct {
			up    bool
			score float64
		}
		var prev *mark
		s := State{}
		check := func(c LevelChange, sc float64) {
			if !c.Changed() {
				return
			}
			up := c.To > c.From
			if up && sc < th.threshold(c.To)+th.Hysteresis-tol {
				t.Fatalf("promoted to %v at score %v < threshold+margin", c.To, sc)
			}
			if !up && sc >= th.threshold(c.From)-th.Hysteresis {
				t.Fatalf("demoted from %v at score %v >= threshold-margin", c.From, sc)
			}
			if prev != nil && prev.up != up && math.Abs(prev.score-sc) <= 2*th.Hysteresis-tol {
				t.Fatalf("level flapped: scores %v then %v differ by <= 2*%v", prev.score, sc, th.Hysteresis)
			}
			prev = &mark{up, sc}
		}
		for _, e := range h {
			var c LevelChange
			s, c = s.Advance(cfg, e.At)
			check(c, s.Score(cfg, e.At))
			s, c = s.Observe(cfg, e)
			check(c, s.Score(cfg, e.At))
		}
	})
}

// Severe evidence quarantines at once, and nothing but Lift ends it: not good
// evidence, not time, not a floor.
func TestPropQuarantineUntilLift(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig(t)
		s := run(cfg, State{}, genHistory(t, cfg, nonSevere(), "before"))
		at := last(nil)
		if !s.Updated().IsZero() {
			at = s.Updated()
		}
		sev := Evidence{Kind: rapid.SampledFrom(severeKinds).Draw(t, "severe"), At: at}
		s, c := s.Advance(cfg, at)
		if c.Changed() && c.Cause.Kind != KindDecay {
			t.Fatalf("advance change with cause %v", c.Cause.Kind)
		}
		s, c = s.Observe(cfg, sev)
		if s.Level(cfg, at) != LevelQuarantined || !s.Quarantined() {
			t.Fatalf("severe %v did not quarantine (change %+v)", sev.Kind, c)
		}
		for range rapid.IntRange(0, 30).Draw(t, "after") {
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0:
				e := genEvidence(t, cfg, at, allKinds())
				s, _ = s.Observe(cfg, e)
				at = e.At
			case 1:
				s, _, _ = s.SetFloor(cfg, lvl(rapid.SampledFrom([]Level{LevelUntrusted, LevelTrusted, LevelHigh}).Draw(t, "floor")), at)
			case 2:
				at = at.Add(time.Duration(rapid.Int64Range(0, int64(100*cfg.halfLife())).Draw(t, "wait")))
			}
			if l := s.Level(cfg, at); l != LevelQuarantined {
				t.Fatalf("quarantine ended without Lift: level %v", l)
			}
		}
		s, c = s.Lift(cfg, at)
		if s.Quarantined() || s.Level(cfg, at) == LevelQuarantined || c.From != LevelQuarantined {
			t.Fatalf("Lift did not end quarantine: %+v", c)
		}
	})
}

// From any state, good behaviour alone climbs through every level to LevelHigh,
// never stepping down on the way.
func TestPropReachableByGoodBehaviour(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig(t)
		s := run(cfg, State{}, genHistory(t, cfg, allKinds(), "h"))
		at := s.Updated()
		if s.Quarantined() {
			s, _ = s.Lift(cfg, at)
		}
		s, _ = s.Advance(cfg, at)
		cur := s.Level(cfg, at)
		startLevel := cur
		seen := map[Level]bool{cur: true}
		for i := 0; cur != LevelHigh; i++ {
			if i > 1_000_000 {
				t.Fatalf("not high after %d successes: score %v", i, s.Score(cfg, at))
			}
			s, _ = s.Observe(cfg, Evidence{Kind: KindSuccess, At: at})
			l := s.Level(cfg, at)
			if l < cur {
				t.Fatalf("success lowered level %v -> %v", cur, l)
			}
			cur = l
			seen[l] = true
		}
		for l := startLevel; l <= LevelHigh; l++ {
			if !seen[l] {
				t.Fatalf("skipped level %v on the way up from %v (seen %v)", l, startLevel, seen)
			}
		}
	})
}

// With successes spread out in time (decay running), a peer still reaches LevelHigh.
func TestPropReachableWithDecay(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig(t)
		s := run(cfg, State{}, genHistory(t, cfg, nonSevere(), "h"))
		at := s.Updated()
		if at.IsZero() {
			at = t0
		}
		gap := cfg.halfLife() / time.Duration(rapid.IntRange(1000, 10000).Draw(t, "perHalfLife"))
		for i := 0; s.Level(cfg, at) != LevelHigh; i++ {
			if i > 1_000_000 {
				t.Fatalf("not high after %d spaced successes: score %v", i, s.Score(cfg, at))
			}
			at = at.Add(gap)
			s, _ = s.Advance(cfg, at)
			s, _ = s.Observe(cfg, Evidence{Kind: KindSuccess, At: at})
		}
	})
}

// Outside quarantine the level always lies within the operator's floor and ceiling.
func TestPropFloorCeiling(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig(t)
		floor := Level(rapid.IntRange(int(LevelUntrusted), int(LevelHigh)).Draw(t, "floor"))
		ceiling := Level(rapid.IntRange(int(floor), int(LevelHigh)).Draw(t, "ceiling"))
		s := run(cfg, State{}, genHistory(t, cfg, nonSevere(), "before"))
		at := s.Updated()
		var err error
		if s, _, err = s.SetFloor(cfg, &floor, at); err != nil {
			t.Fatal(err)
		}
		if s, _, err = s.SetCeiling(cfg, &ceiling, at); err != nil {
			t.Fatal(err)
		}
		for range rapid.IntRange(0, 40).Draw(t, "n") {
			e := genEvidence(t, cfg, at, allKinds())
			s, _ = s.Advance(cfg, e.At)
			s, _ = s.Observe(cfg, e)
			at = e.At
			l := s.Level(cfg, at)
			if s.Quarantined() {
				if l != LevelQuarantined {
					t.Fatalf("quarantined but level %v", l)
				}
				s, _ = s.Lift(cfg, at)
				l = s.Level(cfg, at)
			}
			if l < floor || l > ceiling {
				t.Fatalf("level %v outside [%v, %v]", l, floor, ceiling)
			}
		}
	})
}
