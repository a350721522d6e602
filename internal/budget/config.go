package budget

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Dir is the direction of a call relative to this node.
type Dir uint8

const (
	Both Dir = iota // in a Rule: each direction separately; not valid for Acquire
	In              // a peer calls this node
	Out             // this node (a local agent) calls a peer
)

// String returns "both", "in" or "out", or "dir(N)".
func (d Dir) String() string {
	switch d {
	case Both:
		return "both"
	case In:
		return "in"
	case Out:
		return "out"
	}
	return "dir(" + strconv.Itoa(int(d)) + ")"
}

// MarshalText implements encoding.TextMarshaler.
func (d Dir) MarshalText() ([]byte, error) {
	if d > Out {
		return nil, fmt.Errorf("budget: invalid %v", d)
	}
	return []byte(d.String()), nil
}

// UnmarshalText accepts "in", "out", and "both" or "" for Both.
func (d *Dir) UnmarshalText(b []byte) error {
	switch string(b) {
	case "", "both":
		*d = Both
	case "in":
		*d = In
	case "out":
		*d = Out
	default:
		return fmt.Errorf("budget: direction %q is not in, out or both", b)
	}
	return nil
}

// Limit is one set of budgets. Every zero field is unlimited (or takes the default
// noted on it), so the zero Limit limits nothing.
type Limit struct {
	Rate        float64       `yaml:"rate,omitempty" json:"rate,omitempty"`               // calls per second (token bucket); 0: unlimited; allowed [0, 1e6]
	Burst       int           `yaml:"burst,omitempty" json:"burst,omitempty"`             // bucket size; 0: max(1, ceil(Rate)); allowed [0, 1e6]; needs Rate
	Concurrency int           `yaml:"concurrency,omitempty" json:"concurrency,omitempty"` // calls in flight; 0: unlimited; allowed [0, 1e6]
	BytesIn     int64         `yaml:"bytes_in,omitempty" json:"bytes_in,omitempty"`       // bytes received per Window; 0: unlimited; allowed [0, 2^50]
	BytesOut    int64         `yaml:"bytes_out,omitempty" json:"bytes_out,omitempty"`     // bytes sent per Window; 0: unlimited; allowed [0, 2^50]
	Window      time.Duration `yaml:"window,omitempty" json:"window,omitempty"`           // for BytesIn/BytesOut; zero: 1m; allowed [1s, 744h]
	Cost        float64       `yaml:"cost,omitempty" json:"cost,omitempty"`               // backend-reported cost units per CostWindow; 0: unlimited; allowed [0, 1e15]
	CostWindow  time.Duration `yaml:"cost_window,omitempty" json:"cost_window,omitempty"` // zero: 1h; allowed [1s, 744h]
	// FailedCost is charged to Cost for a call that reached the backend and
	// gave no result (it failed, timed out, was cancelled, or its output was
	// refused), when the backend reported less: such a call still used the
	// backend. 0: a failed call costs what it reported; allowed [0, 1e15];
	// needs Cost.
	FailedCost float64 `yaml:"failed_cost,omitempty" json:"failed_cost,omitempty"`
}

// Defaults for zero Limit and Config fields.
const (
	DefaultWindow     = time.Minute
	DefaultCostWindow = time.Hour
	DefaultMaxDepth   = 4
)

const (
	maxRate    = 1e6
	maxCount   = 1_000_000
	maxBytes   = 1 << 50
	maxCost    = 1e15
	maxWindow  = 744 * time.Hour
	maxPeerLen = 512
	maxCapLen  = 256
)

// filled returns l with the defaults applied.
func (l Limit) filled() Limit {
	if l.Burst == 0 && l.Rate > 0 {
		l.Burst = max(1, int(math.Ceil(l.Rate)))
	}
	if l.Window == 0 {
		l.Window = DefaultWindow
	}
	if l.CostWindow == 0 {
		l.CostWindow = DefaultCostWindow
	}
	return l
}

// IsZero reports whether l limits nothing.
func (l Limit) IsZero() bool { return l == Limit{} }

// Validate checks l; name prefixes the field names in the error (for example
// "Config.Rules[2]").
func (l Limit) Validate(name string) error {
	if !(l.Rate >= 0 && l.Rate <= maxRate) {
		return fmt.Errorf("budget: %s.Rate %v outside [0, 1e6]", name, l.Rate)
	}
	if l.Burst < 0 || l.Burst > maxCount {
		return fmt.Errorf("budget: %s.Burst %d outside [0, 1000000]", name, l.Burst)
	}
	if l.Burst > 0 && l.Rate == 0 {
		return fmt.Errorf("budget: %s.Burst %d needs a Rate", name, l.Burst)
	}
	if l.Concurrency < 0 || l.Concurrency > maxCount {
		return fmt.Errorf("budget: %s.Concurrency %d outside [0, 1000000]", name, l.Concurrency)
	}
	if l.BytesIn < 0 || l.BytesIn > maxBytes {
		return fmt.Errorf("budget: %s.BytesIn %d outside [0, 2^50]", name, l.BytesIn)
	}
	if l.BytesOut < 0 || l.BytesOut > maxBytes {
		return fmt.Errorf("budget: %s.BytesOut %d outside [0, 2^50]", name, l.BytesOut)
	}
	if w := l.Window; w != 0 && (w < time.Second || w > maxWindow) {
		return fmt.Errorf("budget: %s.Window %v outside [1s, 744h]", name, w)
	}
	if l.Window != 0 && l.BytesIn == 0 && l.BytesOut == 0 {
		return fmt.Errorf("budget: %s.Window %v needs BytesIn or BytesOut", name, l.Window)
	}
	if !(l.Cost >= 0 && l.Cost <= maxCost) {
		return fmt.Errorf("budget: %s.Cost %v outside [0, 1e15]", name, l.Cost)
	}
	if w := l.CostWindow; w != 0 && (w < time.Second || w > maxWindow) {
		return fmt.Errorf("budget: %s.CostWindow %v outside [1s, 744h]", name, w)
	}
	if l.CostWindow != 0 && l.Cost == 0 {
		return fmt.Errorf("budget: %s.CostWindow %v needs a Cost", name, l.CostWindow)
	}
	if !(l.FailedCost >= 0 && l.FailedCost <= maxCost) {
		return fmt.Errorf("budget: %s.FailedCost %v outside [0, 1e15]", name, l.FailedCost)
	}
	if l.FailedCost != 0 && l.Cost == 0 {
		return fmt.Errorf("budget: %s.FailedCost %v needs a Cost", name, l.FailedCost)
	}
	return nil
}

// String describes l, for example "10/s burst 20, concurrency 4, cost 100/1h".
func (l Limit) String() string {
	f := l.filled()
	var parts []string
	if f.Rate > 0 {
		parts = append(parts, f.rateString())
	}
	if f.Concurrency > 0 {
		parts = append(parts, "concurrency "+f.concurrencyString())
	}
	if f.BytesIn > 0 {
		parts = append(parts, "bytes in "+f.bytesString(f.BytesIn))
	}
	if f.BytesOut > 0 {
		parts = append(parts, "bytes out "+f.bytesString(f.BytesOut))
	}
	if f.Cost > 0 {
		c := "cost " + f.costString()
		if f.FailedCost > 0 {
			c += " (a failed call at least " + strconv.FormatFloat(f.FailedCost, 'g', -1, 64) + ")"
		}
		parts = append(parts, c)
	}
	if len(parts) == 0 {
		return "unlimited"
	}
	return strings.Join(parts, ", ")
}

func (l Limit) rateString() string {
	return FormatRate(l.Rate) + " burst " + strconv.Itoa(l.Burst)
}

// The per-budget parts name only the limit; Exceeded's message names the budget.
func (l Limit) concurrencyString() string { return strconv.Itoa(l.Concurrency) }

func (l Limit) bytesString(n int64) string {
	return strconv.FormatInt(n, 10) + "/" + FormatWindow(l.Window)
}

func (l Limit) costString() string {
	return strconv.FormatFloat(l.Cost, 'g', -1, 64) + "/" + FormatWindow(l.CostWindow)
}

// FormatRate writes r, per second, as the configuration would: in the first
// unit of s, m, h, d that gives a short exact figure (0.5/s, 1/m for a rate of
// 1/60 per second), else in the first unit where it is at least one, to four
// significant digits (3.429/d). A refusal's reason carries it to the peer as a
// token of at most 64 bytes, which a figure such as 0.016666666666666666/s
// overran.
func FormatRate(r float64) string {
	units := []struct {
		name string
		secs float64
	}{{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}}
	for _, u := range units {
		if v := strconv.FormatFloat(r*u.secs, 'f', -1, 64); len(v) <= 7 {
			return v + "/" + u.name
		}
	}
	u := units[0]
	for _, u = range units {
		if r*u.secs >= 1 {
			break
		}
	}
	return strconv.FormatFloat(r*u.secs, 'g', 4, 64) + "/" + u.name
}

// FormatWindow prints a duration without zero units: "1h", "1m30s", "24h".
func FormatWindow(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ErrSyntax is wrapped by ParseRate and ParseCost.
var ErrSyntax = errors.New("budget: bad limit syntax")

// ParseRate parses the CLI's --rate: "N/s", "N/m", "N/h", "N/DURATION" (for
// example "5/10s") or a bare "N" (per second), into calls per second.
func ParseRate(s string) (float64, error) {
	n, per, err := parsePer(s, time.Second)
	if err != nil {
		return 0, err
	}
	r := n / per.Seconds()
	if !(r >= 0 && r <= maxRate) {
		return 0, fmt.Errorf("%w: rate %q is %v/s, outside [0, 1e6]", ErrSyntax, s, r)
	}
	return r, nil
}

// ParseCost parses the CLI's --cost: "N/WINDOW", for example "100/1h", "5000/d",
// "20/24h".
func ParseCost(s string) (cost float64, window time.Duration, err error) {
	if !strings.Contains(s, "/") {
		return 0, 0, fmt.Errorf("%w: cost %q needs a window, as in 100/1h", ErrSyntax, s)
	}
	n, per, err := parsePer(s, 0)
	if err != nil {
		return 0, 0, err
	}
	if n > maxCost {
		return 0, 0, fmt.Errorf("%w: cost %q outside [0, 1e15]", ErrSyntax, s)
	}
	if per < time.Second || per > maxWindow {
		return 0, 0, fmt.Errorf("%w: cost window in %q outside [1s, 744h]", ErrSyntax, s)
	}
	return n, per, nil
}

func parsePer(s string, def time.Duration) (float64, time.Duration, error) {
	num, unit, found := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) || n < 0 {
		return 0, 0, fmt.Errorf("%w: %q does not start with a number >= 0", ErrSyntax, s)
	}
	if !found {
		return n, def, nil
	}
	var per time.Duration
	switch unit {
	case "s", "sec":
		per = time.Second
	case "m", "min":
		per = time.Minute
	case "h":
		per = time.Hour
	case "d":
		per = 24 * time.Hour
	default:
		if days, ok := strings.CutSuffix(unit, "d"); ok {
			k, err := strconv.Atoi(days)
			if err != nil || k <= 0 || k > 31 {
				return 0, 0, fmt.Errorf("%w: window %q in %q", ErrSyntax, unit, s)
			}
			per = time.Duration(k) * 24 * time.Hour
			break
		}
		per, err = time.ParseDuration(unit)
		if err != nil || per <= 0 {
			return 0, 0, fmt.Errorf("%w: window %q in %q", ErrSyntax, unit, s)
		}
	}
	return n, per, nil
}

// Rule sets the limits of one peer (or of every peer, separately, with Peer "*"),
// peer-wide or for one capability, in one direction or both.
type Rule struct {
	Peer       string           `yaml:"peer" json:"peer"`                                 // a did:key, or "*" for each peer separately
	Capability string           `yaml:"capability,omitempty" json:"capability,omitempty"` // "": peer-wide
	Dir        Dir              `yaml:"dir,omitempty" json:"dir,omitempty"`               // Both (omitted): each direction separately
	Limit      `yaml:",inline"` // JSON inlines it too (embedded)
}

// Key names one set of counters: a peer-wide one (Capability "") or a capability's.
type Key struct {
	Peer       string `json:"peer"`
	Capability string `json:"capability,omitempty"`
	Dir        Dir    `json:"dir"`
}

// BreakerConfig configures the per-peer circuit breaker for outbound calls. The
// zero value takes the default noted on each field.
type BreakerConfig struct {
	Window       time.Duration `yaml:"window,omitempty" json:"window,omitempty"`               // failures are counted over this rolling window; zero: 30s; allowed [100ms, 1h]
	MinCalls     int           `yaml:"min_calls,omitempty" json:"min_calls,omitempty"`         // calls in the window before it may open; zero: 5; allowed [1, 1000000]
	FailureRatio float64       `yaml:"failure_ratio,omitempty" json:"failure_ratio,omitempty"` // opens at failures/calls >= this; zero: 0.5; allowed (0, 1]
	Cooldown     time.Duration `yaml:"cooldown,omitempty" json:"cooldown,omitempty"`           // open this long before probing; zero: 10s; allowed [10ms, 1h]
	Probes       int           `yaml:"probes,omitempty" json:"probes,omitempty"`               // successful probes that close it; zero: 1; allowed [1, 100]
	Disabled     bool          `yaml:"disabled,omitempty" json:"disabled,omitempty"`           // never open
}

func (c BreakerConfig) filled() BreakerConfig {
	if c.Window == 0 {
		c.Window = 30 * time.Second
	}
	if c.MinCalls == 0 {
		c.MinCalls = 5
	}
	if c.FailureRatio == 0 {
		c.FailureRatio = 0.5
	}
	if c.Cooldown == 0 {
		c.Cooldown = 10 * time.Second
	}
	if c.Probes == 0 {
		c.Probes = 1
	}
	return c
}

func (c BreakerConfig) validate() error {
	f := c.filled()
	if f.Window < 100*time.Millisecond || f.Window > time.Hour {
		return fmt.Errorf("budget: Config.Breaker.Window %v outside [100ms, 1h]", c.Window)
	}
	if f.MinCalls < 1 || f.MinCalls > maxCount {
		return fmt.Errorf("budget: Config.Breaker.MinCalls %d outside [1, 1000000]", c.MinCalls)
	}
	if !(f.FailureRatio > 0 && f.FailureRatio <= 1) {
		return fmt.Errorf("budget: Config.Breaker.FailureRatio %v outside (0, 1]", c.FailureRatio)
	}
	if f.Cooldown < 10*time.Millisecond || f.Cooldown > time.Hour {
		return fmt.Errorf("budget: Config.Breaker.Cooldown %v outside [10ms, 1h]", c.Cooldown)
	}
	if f.Probes < 1 || f.Probes > 100 {
		return fmt.Errorf("budget: Config.Breaker.Probes %d outside [1, 100]", c.Probes)
	}
	return nil
}

// String describes when the breaker opens, for refusals and `treaty peer ls`.
func (c BreakerConfig) String() string {
	f := c.filled()
	return fmt.Sprintf("opens at %s%% failures of >= %d calls in %s, cooldown %s",
		strconv.FormatFloat(f.FailureRatio*100, 'g', -1, 64), f.MinCalls, FormatWindow(f.Window), FormatWindow(f.Cooldown))
}

// Config is every budget of a node. The zero Config limits nothing except delegation
// depth (DefaultMaxDepth) and has an enabled breaker with default settings.
//
// For a call by peer P to capability C in direction D, two limits apply, and a call
// must fit both: the peer-wide limit and the capability limit. Each is the most
// specific matching rule, taken whole (fields are not merged across rules):
//
//	peer-wide:  Rule{P, "", D} > Rule{P, "", Both} > Rule{"*", "", D} > Rule{"*", "", Both} > Default
//	capability: Rule{P, C, D}  > Rule{P, C, Both}  > Rule{"*", C, D}  > Rule{"*", C, Both}  > none
//
// A "*" rule gives every peer its own counters; one peer exhausting its bucket never
// affects another.
type Config struct {
	Default  Limit         `yaml:"default,omitempty" json:"default,omitempty"`     // peer-wide limit of every peer without a rule of its own
	Rules    []Rule        `yaml:"rules,omitempty" json:"rules,omitempty"`         // no two with the same Peer, Capability and Dir
	Breaker  BreakerConfig `yaml:"breaker,omitempty" json:"breaker,omitempty"`     // per-peer breaker for outbound calls
	MaxDepth int           `yaml:"max_depth,omitempty" json:"max_depth,omitempty"` // delegation depth for CheckChain; zero: 4; allowed [1, 64]
}

// Depth returns MaxDepth with its default applied.
func (c Config) Depth() int {
	if c.MaxDepth == 0 {
		return DefaultMaxDepth
	}
	return c.MaxDepth
}

// Validate checks every field; the error names the field, the value and the range.
func (c Config) Validate() error {
	if err := c.Default.Validate("Config.Default"); err != nil {
		return err
	}
	seen := make(map[Key]int, len(c.Rules))
	for i, r := range c.Rules {
		name := fmt.Sprintf("Config.Rules[%d]", i)
		if r.Peer == "" || len(r.Peer) > maxPeerLen {
			return fmt.Errorf("budget: %s.Peer %q: want a did:key or \"*\" of at most %d bytes", name, r.Peer, maxPeerLen)
		}
		if len(r.Capability) > maxCapLen {
			return fmt.Errorf("budget: %s.Capability is %d bytes, at most %d", name, len(r.Capability), maxCapLen)
		}
		if r.Dir > Out {
			return fmt.Errorf("budget: %s.Dir %v is not in, out or both", name, r.Dir)
		}
		if err := r.Limit.Validate(name); err != nil {
			return err
		}
		k := Key{r.Peer, r.Capability, r.Dir}
		if j, dup := seen[k]; dup {
			return fmt.Errorf("budget: %s repeats Config.Rules[%d] (peer %s, capability %q, dir %v)", name, j, r.Peer, r.Capability, r.Dir)
		}
		seen[k] = i
	}
	if err := c.Breaker.validate(); err != nil {
		return err
	}
	if d := c.Depth(); d < 1 || d > 64 {
		return fmt.Errorf("budget: Config.MaxDepth %d outside [1, 64]", c.MaxDepth)
	}
	return nil
}

// Rule returns the rule for exactly (peer, capability, dir), if there is one.
func (c Config) Rule(peer, capability string, dir Dir) (Rule, bool) {
	for _, r := range c.Rules {
		if r.Peer == peer && r.Capability == capability && r.Dir == dir {
			return r, true
		}
	}
	return Rule{}, false
}

// WithRule returns a copy of c with r replacing the rule of the same Peer,
// Capability and Dir, or appended. For `treaty limit set`: read the Rule, change
// the flags given, write it back.
func (c Config) WithRule(r Rule) Config {
	rules := make([]Rule, 0, len(c.Rules)+1)
	replaced := false
	for _, x := range c.Rules {
		if x.Peer == r.Peer && x.Capability == r.Capability && x.Dir == r.Dir {
			rules = append(rules, r)
			replaced = true
			continue
		}
		rules = append(rules, x)
	}
	if !replaced {
		rules = append(rules, r)
	}
	c.Rules = rules
	return c
}

// WithoutRule returns a copy of c without the rule for (peer, capability, dir).
func (c Config) WithoutRule(peer, capability string, dir Dir) Config {
	rules := make([]Rule, 0, len(c.Rules))
	for _, x := range c.Rules {
		if x.Peer != peer || x.Capability != capability || x.Dir != dir {
			rules = append(rules, x)
		}
	}
	c.Rules = rules
	return c
}
