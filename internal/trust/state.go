package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// RecentCap is how many recent pieces of evidence a State keeps for display.
const RecentCap = 16

// maxDetail bounds Evidence.Detail as stored, so the state file stays small whatever
// a layer puts there.
const maxDetail = 256

// maxWeight bounds the magnitude of one piece of evidence.
const maxWeight = 1000

// Evidence is one observation about a peer.
type Evidence struct {
	Kind   Kind      `json:"kind"`
	Weight float64   `json:"weight,omitempty"` // zero: Config.Weight(Kind); stored resolved
	Detail string    `json:"detail,omitempty"` // short and safe to show an operator; truncated to 256 bytes
	At     time.Time `json:"at"`               // zero in State.Observe: the state's last update (no decay)
}

// LevelChange reports a change of a peer's level and the evidence that caused it.
// The zero value means no change.
type LevelChange struct {
	From, To Level
	Cause    Evidence // Kind is KindDecay or KindOperator when no observation caused it
}

// Changed reports whether c describes a change.
func (c LevelChange) Changed() bool { return c.From != c.To }

// ErrFloorAboveCeiling is returned when an operator floor would exceed the ceiling.
var ErrFloorAboveCeiling = errors.New("trust: floor above ceiling")

// State is one peer's trust state. It is a value: methods never modify the receiver
// and return the new State, so the core is pure and trivially testable. The zero
// State is a peer with no evidence (score = prior). A State is not safe for
// concurrent mutation by itself; Book provides that.
type State struct {
	good, bad   float64   // evidence above the prior, as of updated
	updated     time.Time // when good and bad were last decayed
	natural     Level     // level by score with hysteresis; meaningful when init
	init        bool      // natural has been evaluated at least once
	floor       Level
	hasFloor    bool
	ceiling     Level
	hasCeiling  bool
	quarantined bool
	cause       Evidence // what quarantined the peer, when quarantined
	recent      [RecentCap]Evidence
	head, n     int // ring: recent[(head+i)%RecentCap] for i < n, oldest first
}

// model is the numeric part of a Config with defaults applied, so the internals take
// one small pointer instead of copying a Config (and a State) per step: reads of
// trust sit on every call's path.
type model struct {
	prior, weight float64
	halfLife      float64 // nanoseconds
	t             Thresholds
}

func (c Config) model() model {
	return model{prior: c.prior(), weight: c.priorWeight(), halfLife: float64(c.halfLife()), t: c.levels()}
}

// decayed returns good and bad decayed to now. Time never runs backwards for a
// State: a now before updated means no decay.
func (s *State) decayed(m *model, now time.Time) (good, bad float64) {
	if s.updated.IsZero() || !now.After(s.updated) {
		return s.good, s.bad
	}
	f := math.Exp2(-float64(now.Sub(s.updated)) / m.halfLife)
	return s.good * f, s.bad * f
}

func (m *model) score(good, bad float64) float64 {
	return (m.prior*m.weight + good) / (m.weight + good + bad)
}

// Score returns the peer's score in (0,1) at now.
func (s State) Score(cfg Config, now time.Time) float64 {
	m := cfg.model()
	return m.score(s.decayed(&m, now))
}

// Counts returns the good and bad evidence counts above the prior at now.
func (s State) Counts(cfg Config, now time.Time) (good, bad float64) {
	m := cfg.model()
	return s.decayed(&m, now)
}

// plainLevel maps a score to a level without hysteresis: used for a peer's first
// evaluation, when there is no previous level to be sticky about.
func plainLevel(t Thresholds, sc float64) Level {
	switch {
	case sc >= t.High:
		return LevelHigh
	case sc >= t.Trusted:
		return LevelTrusted
	case sc >= t.Provisional:
		return LevelProvisional
	}
	return LevelUntrusted
}

// hysteresis moves cur to the level the score supports, entering a level only at
// threshold+margin and leaving it only below threshold-margin.
func hysteresis(t Thresholds, cur Level, sc float64) Level {
	if cur < LevelUntrusted {
		cur = LevelUntrusted
	}
	for cur < LevelHigh && sc >= t.threshold(cur+1)+t.Hysteresis {
		cur++
	}
	for cur > LevelUntrusted && sc < t.threshold(cur)-t.Hysteresis {
		cur--
	}
	return cur
}

// baseNatural is the natural level as last evaluated.
func (s *State) baseNatural(m *model) Level {
	if s.init {
		return s.natural
	}
	return plainLevel(m.t, m.score(s.good, s.bad))
}

// effective applies quarantine, floor and ceiling to a natural level.
func (s *State) effective(natural Level) Level {
	if s.quarantined {
		return LevelQuarantined
	}
	l := natural
	if s.hasFloor && l < s.floor {
		l = s.floor
	}
	if s.hasCeiling && l > s.ceiling {
		l = s.ceiling
	}
	return l
}

// current is the effective level as last evaluated, without decay to any time.
func (s *State) current(m *model) Level { return s.effective(s.baseNatural(m)) }

// at returns the score, the natural level and the effective level at now, as
// Advance would set them, without changing s.
func (s *State) at(m *model, now time.Time) (sc float64, natural, eff Level) {
	sc = m.score(s.decayed(m, now))
	natural = hysteresis(m.t, s.baseNatural(m), sc)
	return sc, natural, s.effective(natural)
}

// Level returns the peer's effective level at now, as Advance would set it.
func (s State) Level(cfg Config, now time.Time) Level {
	m := cfg.model()
	_, _, l := s.at(&m, now)
	return l
}

// Quarantined reports whether severe evidence quarantined the peer and no operator
// has lifted it since; QuarantineCause is that evidence.
func (s State) Quarantined() bool         { return s.quarantined }
func (s State) QuarantineCause() Evidence { return s.cause }

// Floor and Ceiling return the operator's bounds, or nil when unset.
func (s State) Floor() *Level {
	if !s.hasFloor {
		return nil
	}
	l := s.floor
	return &l
}

func (s State) Ceiling() *Level {
	if !s.hasCeiling {
		return nil
	}
	l := s.ceiling
	return &l
}

// Updated is the time of the latest evidence or evaluation folded into s.
func (s State) Updated() time.Time { return s.updated }

// Recent returns up to RecentCap pieces of evidence, oldest first.
func (s State) Recent() []Evidence {
	out := make([]Evidence, s.n)
	for i := range s.n {
		out[i] = s.recent[(s.head+i)%RecentCap]
	}
	return out
}

// Advance decays s to now and re-evaluates its level. A returned change has
// Cause.Kind KindDecay.
func (s State) Advance(cfg Config, now time.Time) (State, LevelChange) {
	m := cfg.model()
	c := s.advance(&m, now)
	return s, c
}

// advance is Advance in place.
func (s *State) advance(m *model, now time.Time) LevelChange {
	from := s.current(m)
	base := s.baseNatural(m)
	s.good, s.bad = s.decayed(m, now)
	if now.After(s.updated) {
		s.updated = now
	}
	s.natural = hysteresis(m.t, base, m.score(s.good, s.bad))
	s.init = true
	if to := s.current(m); to != from {
		return LevelChange{From: from, To: to, Cause: Evidence{Kind: KindDecay, Detail: "score decayed toward the prior", At: now}}
	}
	return LevelChange{}
}

// Observe folds e into s: it decays s to e.At, adds e's weight to the good (w > 0)
// or bad (w < 0) count, quarantines on severe evidence and re-evaluates the level.
// The returned change, if any, compares the level before (as last evaluated) with the
// level after and names e as its cause; call Advance(cfg, e.At) first to attribute a
// change that decay alone causes to decay. A non-finite weight counts as zero.
func (s State) Observe(cfg Config, e Evidence) (State, LevelChange) {
	m := cfg.model()
	from := s.current(&m)
	at := e.At
	if at.IsZero() {
		at = s.updated
	}
	w := e.Weight
	if w == 0 {
		w = cfg.Weight(e.Kind)
	}
	if math.IsNaN(w) || math.IsInf(w, 0) {
		w = 0
	}
	w = max(-maxWeight, min(maxWeight, w))
	e.Weight = w
	e.At = at
	e.Detail = truncate(e.Detail, maxDetail)

	n := &s
	n.advance(&m, at)
	base := n.natural
	if w > 0 {
		n.good += w
	} else {
		n.bad -= w
	}
	n.natural = hysteresis(m.t, base, m.score(n.good, n.bad))
	if cfg.IsSevere(e.Kind) && !n.quarantined {
		n.quarantined = true
		n.cause = e
	}
	n.push(e)
	to := n.current(&m)
	if to == from {
		return s, LevelChange{}
	}
	return s, LevelChange{From: from, To: to, Cause: e}
}

func (s *State) push(e Evidence) {
	if s.n < RecentCap {
		s.recent[(s.head+s.n)%RecentCap] = e
		s.n++
		return
	}
	s.recent[s.head] = e
	s.head = (s.head + 1) % RecentCap
}

// SetFloor sets (or with nil clears) the operator's lowest level for the peer. A
// floor does not apply while the peer is quarantined.
func (s State) SetFloor(cfg Config, l *Level, now time.Time) (State, LevelChange, error) {
	if l != nil {
		if !l.Valid() {
			return s, LevelChange{}, fmt.Errorf("trust: floor %v is not a level", *l)
		}
		if s.hasCeiling && *l > s.ceiling {
			return s, LevelChange{}, fmt.Errorf("%w: floor %v, ceiling %v", ErrFloorAboveCeiling, *l, s.ceiling)
		}
	}
	return s.operator(cfg, now, "floor", l, func(n *State) {
		n.hasFloor = l != nil
		if l != nil {
			n.floor = *l
		}
	})
}

// SetCeiling sets (or with nil clears) the operator's highest level for the peer.
// A ceiling of LevelQuarantined holds the peer at that level.
func (s State) SetCeiling(cfg Config, l *Level, now time.Time) (State, LevelChange, error) {
	if l != nil {
		if !l.Valid() {
			return s, LevelChange{}, fmt.Errorf("trust: ceiling %v is not a level", *l)
		}
		if s.hasFloor && *l < s.floor {
			return s, LevelChange{}, fmt.Errorf("%w: floor %v, ceiling %v", ErrFloorAboveCeiling, s.floor, *l)
		}
	}
	return s.operator(cfg, now, "ceiling", l, func(n *State) {
		n.hasCeiling = l != nil
		if l != nil {
			n.ceiling = *l
		}
	})
}

// Lift ends a quarantine. The score is not reset: the peer resumes at the level its
// evidence supports, which after severe evidence is usually low.
func (s State) Lift(cfg Config, now time.Time) (State, LevelChange) {
	n, c, _ := s.operator(cfg, now, "lift", nil, func(n *State) {
		n.quarantined = false
		n.cause = Evidence{}
	})
	return n, c
}

func (s State) operator(cfg Config, now time.Time, what string, l *Level, apply func(*State)) (State, LevelChange, error) {
	m := cfg.model()
	from := s.current(&m)
	n := s
	n.advance(&m, now)
	apply(&n)
	to := n.current(&m)
	detail := what
	if l != nil {
		detail += " " + l.String()
	} else if what != "lift" {
		detail += " cleared"
	}
	n.push(Evidence{Kind: KindOperator, Detail: detail, At: now})
	if to == from {
		return n, LevelChange{}, nil
	}
	return n, LevelChange{From: from, To: to, Cause: Evidence{Kind: KindOperator, Detail: detail, At: now}}, nil
}

// DecayETA returns how long from now, without new evidence, until the score is
// within 0.01 of the prior; zero when it already is.
func (s State) DecayETA(cfg Config, now time.Time) time.Duration {
	m := cfg.model()
	return s.decayETA(&m, now)
}

func (s *State) decayETA(m *model, now time.Time) time.Duration {
	const eps = 0.01
	// score - p = f·c / (W + f·t) with c = (1-p)·good - p·bad and t = good + bad,
	// where f is the decay factor since updated; solve |…| <= eps for f.
	p, w := m.prior, m.weight
	c := math.Abs((1-p)*s.good - p*s.bad)
	t := s.good + s.bad
	if c-eps*t <= 0 {
		return 0
	}
	f := eps * w / (c - eps*t)
	if f >= 1 {
		return 0
	}
	need := time.Duration(math.Log2(1/f) * m.halfLife)
	if s.updated.IsZero() {
		return need
	}
	eta := s.updated.Add(need).Sub(now)
	return max(eta, 0)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// stateJSON is the persisted form of State; field names are part of the file format.
type stateJSON struct {
	Good        float64    `json:"good"`
	Bad         float64    `json:"bad"`
	Updated     time.Time  `json:"updated"`
	Natural     *Level     `json:"natural,omitempty"`
	Floor       *Level     `json:"floor,omitempty"`
	Ceiling     *Level     `json:"ceiling,omitempty"`
	Quarantined bool       `json:"quarantined,omitempty"`
	Cause       *Evidence  `json:"quarantine_cause,omitempty"`
	Recent      []Evidence `json:"recent,omitempty"`
}

// MarshalJSON implements json.Marshaler.
func (s State) MarshalJSON() ([]byte, error) {
	j := stateJSON{Good: s.good, Bad: s.bad, Updated: s.updated, Floor: s.Floor(), Ceiling: s.Ceiling(),
		Quarantined: s.quarantined, Recent: s.Recent()}
	if s.init {
		l := s.natural
		j.Natural = &l
	}
	if s.quarantined {
		c := s.cause
		j.Cause = &c
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler and rejects states the core could not
// have produced (negative or non-finite counts, unknown levels, floor above ceiling).
func (s *State) UnmarshalJSON(b []byte) error {
	var j stateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 }
	if !finite(j.Good) || !finite(j.Bad) {
		return fmt.Errorf("trust: state evidence counts %v, %v must be finite and >= 0", j.Good, j.Bad)
	}
	n := State{good: j.Good, bad: j.Bad, updated: j.Updated, quarantined: j.Quarantined}
	if j.Natural != nil {
		if *j.Natural < LevelUntrusted || *j.Natural > LevelHigh {
			return fmt.Errorf("trust: state natural level %v outside [untrusted, high]", *j.Natural)
		}
		n.natural, n.init = *j.Natural, true
	}
	if j.Floor != nil {
		n.floor, n.hasFloor = *j.Floor, true
	}
	if j.Ceiling != nil {
		n.ceiling, n.hasCeiling = *j.Ceiling, true
	}
	if n.hasFloor && n.hasCeiling && n.floor > n.ceiling {
		return fmt.Errorf("%w: floor %v, ceiling %v", ErrFloorAboveCeiling, n.floor, n.ceiling)
	}
	if j.Cause != nil && n.quarantined {
		n.cause = *j.Cause
	}
	rec := j.Recent
	if len(rec) > RecentCap {
		rec = rec[len(rec)-RecentCap:]
	}
	for _, e := range rec {
		e.Detail = truncate(e.Detail, maxDetail)
		n.push(e)
	}
	*s = n
	return nil
}
