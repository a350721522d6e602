// Package trust keeps a behavioural trust score per peer: earned by good behaviour,
// lost fast by bad behaviour, and drifting back to neutral when a peer goes quiet.
//
// # Model
//
// The score is a beta reputation. Each peer has two evidence counts, a (good) and
// b (bad), on top of a prior: Config.Prior p with weight Config.PriorWeight W, so
//
//	alpha = p·W + a        beta = (1-p)·W + b        score = alpha / (alpha + beta)
//
// The score is always in (0,1). A peer with no evidence scores exactly p.
// Evidence of Kind k with weight w (Config.Weights[k], or Evidence.Weight when set)
// adds w to a when w > 0 and -w to b when w < 0. Between events both counts decay
// exponentially toward zero with half-life Config.HalfLife, so the score decays
// toward the prior:
//
//	a(t) = a(t0) · 2^(-(t-t0)/HalfLife)      (the same for b)
//
// Consequences, each checked by a property test in prop_test.go:
//   - adding good evidence never lowers the score; bad evidence never raises it;
//   - without evidence |score - prior| never grows as time passes;
//   - a peer reaches every level, up to LevelHigh, by good evidence alone.
//
// # Levels
//
// The score maps to a Level by thresholds (Config.Levels) with hysteresis: a peer is
// promoted into level L only when score >= threshold(L) + Hysteresis and demoted out
// of L only when score < threshold(L) - Hysteresis, so one event near a threshold
// cannot make the level flap. Severe evidence (Config.Severe: by default a bad
// signature, a forked audit log or equivocation) quarantines the peer at once, and
// only an operator's Lift ends it; while quarantined the level is LevelQuarantined
// whatever the score, and an operator floor does not apply. Outside quarantine the
// level is clamped to the operator's floor and ceiling for that peer.
//
// # Pure core, thin wrapper
//
// State and its methods are pure: they take the time as a parameter and do no I/O.
// Book wraps a State per peer for concurrent use and persists them to one JSON file
// (see docs/adr/0005-trust-persistence.md): level changes, quarantine and operator
// changes are written before the call returns; ordinary evidence within
// Config.FlushEvery.
package trust
