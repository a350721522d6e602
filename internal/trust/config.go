package trust

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind names what a piece of evidence is about. The set is closed: Config.Validate
// rejects unknown kinds so a typo in treaty.yaml cannot silently weigh nothing.
type Kind string

// Kinds of evidence the layers report.
const (
	KindSuccess      Kind = "success"           // a call served or completed successfully
	KindFailure      Kind = "failure"           // a call failed on the peer's side
	KindTimeout      Kind = "timeout"           // a call to the peer timed out
	KindDenied       Kind = "denied"            // the peer tried a capability it was not granted
	KindBudget       Kind = "budget"            // the peer exceeded a budget
	KindSanitizer    Kind = "sanitizer_finding" // the sanitizer found secrets or PII in what the peer sent
	KindScreenMark   Kind = "screen_mark"       // inbound screening marked the peer's content
	KindScreenBlock  Kind = "screen_block"      // inbound screening blocked the peer's content
	KindBadSignature Kind = "bad_signature"     // a forged or broken signature
	KindReplay       Kind = "replay"            // a replayed or stale request
	KindMalformed    Kind = "malformed"         // an unsigned or malformed request on an authenticated connection
	KindAuditFork    Kind = "audit_fork"        // the peer's audit log forked
	KindEquivocation Kind = "equivocation"      // the peer said two things in one consensus round

	// Kinds the package itself uses as the Cause of a LevelChange; they carry no
	// weight and cannot be observed.
	KindDecay    Kind = "decay"    // the level changed because the score decayed with time
	KindOperator Kind = "operator" // an operator set a floor or ceiling, or lifted quarantine
)

// Kinds lists the kinds that can be observed, in a stable order.
func Kinds() []Kind {
	return []Kind{KindSuccess, KindFailure, KindTimeout, KindDenied, KindBudget, KindSanitizer,
		KindScreenMark, KindScreenBlock, KindBadSignature, KindReplay, KindMalformed, KindAuditFork, KindEquivocation}
}

// Observable reports whether k is one of Kinds().
func (k Kind) Observable() bool { return slices.Contains(Kinds(), k) }

// Weights gives the weight of each kind: positive is good evidence, negative is bad,
// zero is ignored. A kind missing from the map takes its DefaultWeights value.
type Weights map[Kind]float64

// DefaultWeights returns the weights used for kinds missing from Config.Weights.
// Bad evidence weighs more than good: trust is lost faster than it is earned.
func DefaultWeights() Weights {
	return Weights{
		KindSuccess:      1,
		KindFailure:      -1,
		KindTimeout:      -0.5,
		KindDenied:       -2,
		KindBudget:       -1,
		KindSanitizer:    -1,
		KindScreenMark:   -1,
		KindScreenBlock:  -3,
		KindBadSignature: -10,
		KindReplay:       -5,
		KindMalformed:    -2,
		KindAuditFork:    -10,
		KindEquivocation: -10,
	}
}

func defaultWeight(k Kind) float64 {
	switch k {
	case KindSuccess:
		return 1
	case KindFailure, KindBudget, KindSanitizer, KindScreenMark:
		return -1
	case KindTimeout:
		return -0.5
	case KindDenied, KindMalformed:
		return -2
	case KindScreenBlock:
		return -3
	case KindReplay:
		return -5
	case KindBadSignature, KindAuditFork, KindEquivocation:
		return -10
	}
	return 0
}

// Severe marks the kinds that quarantine a peer at once. A kind missing from the map
// takes its DefaultSevere value, so `equivocation: false` turns one default off.
type Severe map[Kind]bool

// DefaultSevere returns the kinds that quarantine unless Config.Severe says otherwise.
func DefaultSevere() Severe {
	return Severe{KindBadSignature: true, KindAuditFork: true, KindEquivocation: true}
}

func defaultSevere(k Kind) bool {
	return k == KindBadSignature || k == KindAuditFork || k == KindEquivocation
}

// Level is a coarse trust class. The numeric values are stable and ordered, so a
// policy may compare them. The zero value is LevelQuarantined: an uninitialised
// Level fails closed.
type Level int

// Levels, lowest first.
const (
	LevelQuarantined Level = iota // severe evidence; only an operator's Lift ends it
	LevelUntrusted
	LevelProvisional
	LevelTrusted
	LevelHigh
)

var levelNames = [...]string{"quarantined", "untrusted", "provisional", "trusted", "high"}

// String returns the level's name, or "level(N)" for an unknown value.
func (l Level) String() string {
	if l.Valid() {
		return levelNames[l]
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// Valid reports whether l is one of the defined levels.
func (l Level) Valid() bool { return l >= LevelQuarantined && l <= LevelHigh }

// ParseLevel parses a level name as printed by String, ignoring case.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if strings.EqualFold(s, n) {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("trust: unknown level %q (want one of quarantined, untrusted, provisional, trusted, high)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (l Level) MarshalText() ([]byte, error) {
	if !l.Valid() {
		return nil, fmt.Errorf("trust: cannot marshal invalid %v", l)
	}
	return []byte(l.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Thresholds are the lowest scores of each level above LevelUntrusted, and the
// hysteresis margin around each. A zero Thresholds takes DefaultThresholds; a
// partly set one takes the default for each zero field.
type Thresholds struct {
	Provisional float64 `yaml:"provisional,omitempty" json:"provisional"` // zero: 0.35
	Trusted     float64 `yaml:"trusted,omitempty" json:"trusted"`         // zero: 0.65
	High        float64 `yaml:"high,omitempty" json:"high"`               // zero: 0.85
	Hysteresis  float64 `yaml:"hysteresis,omitempty" json:"hysteresis"`   // zero: 0.03; allowed [0, 0.2]
}

// DefaultThresholds: a new peer (score = prior 0.5) starts provisional; three denied
// attempts make it untrusted; about 6 successes make it trusted and about 32 high.
func DefaultThresholds() Thresholds {
	return Thresholds{Provisional: 0.35, Trusted: 0.65, High: 0.85, Hysteresis: 0.03}
}

// threshold returns the lowest score of level l (l >= LevelProvisional).
func (t Thresholds) threshold(l Level) float64 {
	switch l {
	case LevelProvisional:
		return t.Provisional
	case LevelTrusted:
		return t.Trusted
	default:
		return t.High
	}
}

// Config configures the trust model and the Book. The zero Config is valid and
// takes the default noted on each field.
type Config struct {
	Prior       float64       `yaml:"prior,omitempty" json:"prior"`               // zero: 0.5; allowed (0, 1)
	PriorWeight float64       `yaml:"prior_weight,omitempty" json:"prior_weight"` // zero: 10; allowed (0, 1e6]: evidence the prior is worth
	HalfLife    time.Duration `yaml:"half_life,omitempty" json:"half_life"`       // zero: 24h; allowed [1s, 8760h]
	Weights     Weights       `yaml:"weights,omitempty" json:"weights"`           // nil or missing kind: DefaultWeights; each finite, |w| <= 1000
	Severe      Severe        `yaml:"severe,omitempty" json:"severe"`             // nil or missing kind: DefaultSevere
	Levels      Thresholds    `yaml:"levels,omitempty" json:"levels"`             // zero fields: DefaultThresholds
	// FlushEvery bounds how long ordinary evidence may sit in memory before the Book
	// writes it. Level changes, quarantine and operator changes are written at once.
	FlushEvery time.Duration `yaml:"flush_every,omitempty" json:"flush_every"` // zero: 1s; allowed [10ms, 1m]

	Logger *slog.Logger     `yaml:"-" json:"-"` // nil: slog.Default(); background write errors go here
	Now    func() time.Time `yaml:"-" json:"-"` // nil: time.Now; used only by Book when Evidence.At is zero
}

// IsZero reports whether c sets nothing, so that treaty.yaml omits it.
func (c Config) IsZero() bool {
	return c.Prior == 0 && c.PriorWeight == 0 && c.HalfLife == 0 && len(c.Weights) == 0 &&
		len(c.Severe) == 0 && c.Levels == (Thresholds{}) && c.FlushEvery == 0 && c.Logger == nil && c.Now == nil
}

// Defaults used for zero Config fields.
const (
	DefaultPrior       = 0.5
	DefaultPriorWeight = 10.0
	DefaultHalfLife    = 24 * time.Hour
	DefaultFlushEvery  = time.Second
)

func (c Config) prior() float64 {
	if c.Prior == 0 {
		return DefaultPrior
	}
	return c.Prior
}

func (c Config) priorWeight() float64 {
	if c.PriorWeight == 0 {
		return DefaultPriorWeight
	}
	return c.PriorWeight
}

func (c Config) halfLife() time.Duration {
	if c.HalfLife == 0 {
		return DefaultHalfLife
	}
	return c.HalfLife
}

func (c Config) flushEvery() time.Duration {
	if c.FlushEvery == 0 {
		return DefaultFlushEvery
	}
	return c.FlushEvery
}

func (c Config) levels() Thresholds {
	t, d := c.Levels, DefaultThresholds()
	if t.Provisional == 0 {
		t.Provisional = d.Provisional
	}
	if t.Trusted == 0 {
		t.Trusted = d.Trusted
	}
	if t.High == 0 {
		t.High = d.High
	}
	if t.Hysteresis == 0 {
		t.Hysteresis = d.Hysteresis
	}
	return t
}

// Weight returns the configured weight of k.
func (c Config) Weight(k Kind) float64 {
	if w, ok := c.Weights[k]; ok {
		return w
	}
	return defaultWeight(k)
}

// IsSevere reports whether evidence of kind k quarantines.
func (c Config) IsSevere(k Kind) bool {
	if v, ok := c.Severe[k]; ok {
		return v
	}
	return defaultSevere(k)
}

// Validate checks every field after defaults are applied; the error names the field,
// the value and the allowed range.
func (c Config) Validate() error {
	if p := c.prior(); !(p > 0 && p < 1) {
		return fmt.Errorf("trust: Config.Prior %v outside (0, 1)", c.Prior)
	}
	if w := c.priorWeight(); !(w > 0 && w <= 1e6) {
		return fmt.Errorf("trust: Config.PriorWeight %v outside (0, 1e6]", c.PriorWeight)
	}
	if h := c.halfLife(); h < time.Second || h > 8760*time.Hour {
		return fmt.Errorf("trust: Config.HalfLife %v outside [1s, 8760h]", c.HalfLife)
	}
	if f := c.flushEvery(); f < 10*time.Millisecond || f > time.Minute {
		return fmt.Errorf("trust: Config.FlushEvery %v outside [10ms, 1m]", c.FlushEvery)
	}
	for k, w := range c.Weights {
		if !k.Observable() {
			return fmt.Errorf("trust: Config.Weights has unknown kind %q (want one of %v)", k, Kinds())
		}
		if math.IsNaN(w) || math.Abs(w) > 1000 {
			return fmt.Errorf("trust: Config.Weights[%s] %v outside [-1000, 1000]", k, w)
		}
	}
	for k := range c.Severe {
		if !k.Observable() {
			return fmt.Errorf("trust: Config.Severe has unknown kind %q (want one of %v)", k, Kinds())
		}
	}
	t := c.levels()
	h := t.Hysteresis
	if !(h >= 0 && h <= 0.2) {
		return fmt.Errorf("trust: Config.Levels.Hysteresis %v outside [0, 0.2]", t.Hysteresis)
	}
	// Each band must be wider than the two margins around it, or a level could be
	// both entered and left at one score; High + margin < 1 keeps High reachable.
	if !(t.Provisional-h > 0 && t.Provisional+h < 1) {
		return fmt.Errorf("trust: Config.Levels.Provisional %v outside (%v, %v) for hysteresis %v", t.Provisional, h, 1-h, h)
	}
	if !(t.Trusted-h > t.Provisional+h && t.Trusted+h < 1) {
		return fmt.Errorf("trust: Config.Levels.Trusted %v outside (%v, %v): must exceed Provisional by more than twice the hysteresis", t.Trusted, t.Provisional+2*h, 1-h)
	}
	if !(t.High-h > t.Trusted+h && t.High+h < 1) {
		return fmt.Errorf("trust: Config.Levels.High %v outside (%v, %v): must exceed Trusted by more than twice the hysteresis and stay reachable", t.High, t.Trusted+2*h, 1-h)
	}
	return nil
}
