package screen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// Action is the outcome of screening ("pass", "mark", "block"), and in a Policy also the
// treatment of hostile content ("block", "mark", "allow").
type Action string

const (
	ActionPass  Action = "pass"  // Verdict: deliver as is
	ActionMark  Action = "mark"  // Verdict and Policy: deliver wrapped by Mark
	ActionBlock Action = "block" // Verdict and Policy: do not deliver
	ActionAllow Action = "allow" // Policy only: hostile content is delivered unwrapped (the verdict is still recorded)
)

// Defaults for Policy fields left zero.
const (
	DefaultMarkThreshold = 0.5
)

// Policy says what to do with content from one peer (or one capability of it).
//
// A score at or above MarkThreshold is hostile. Action decides what a hostile verdict
// becomes: "mark" (the default) delivers it wrapped by Mark, "block" refuses it, "allow"
// passes it. BlockThreshold, when set, escalates a "mark" policy: a score at or above it
// is blocked even though the policy marks. An unknown Action fails closed (block).
type Policy struct {
	Action         Action  `yaml:"action" json:"action"`                   // "": mark
	MarkThreshold  float64 `yaml:"mark_threshold" json:"mark_threshold"`   // 0: 0.5; allowed (0, 1]
	BlockThreshold float64 `yaml:"block_threshold" json:"block_threshold"` // 0: never escalate; allowed [MarkThreshold, 1]
}

// DefaultPolicy marks content scoring 0.5 or more and never blocks on its own.
func DefaultPolicy() Policy {
	return Policy{Action: ActionMark, MarkThreshold: DefaultMarkThreshold}
}

// ErrInvalidPolicy is wrapped by every error of Policy.Validate.
var ErrInvalidPolicy = errors.New("screen: invalid policy")

// ErrInvalidConfig is wrapped by every error of New about its Config.
var ErrInvalidConfig = errors.New("screen: invalid config")

// Validate reports the first bad field, naming it, the value and the allowed values.
func (p Policy) Validate() error {
	switch p.Action {
	case "", ActionMark, ActionBlock, ActionAllow:
	default:
		return fmt.Errorf("%w: Policy.Action %q, allowed \"block\", \"mark\", \"allow\"", ErrInvalidPolicy, p.Action)
	}
	if m := p.MarkThreshold; math.IsNaN(m) || m < 0 || m > 1 {
		return fmt.Errorf("%w: Policy.MarkThreshold %v outside [0, 1] (0 means %v)", ErrInvalidPolicy, m, DefaultMarkThreshold)
	}
	mark := p.markThreshold()
	if b := p.BlockThreshold; math.IsNaN(b) || (b != 0 && (b < mark || b > 1)) {
		return fmt.Errorf("%w: Policy.BlockThreshold %v outside [MarkThreshold %v, 1] (0 means never)", ErrInvalidPolicy, b, mark)
	}
	return nil
}

func (p Policy) markThreshold() float64 {
	if p.MarkThreshold <= 0 || math.IsNaN(p.MarkThreshold) || p.MarkThreshold > 1 {
		return DefaultMarkThreshold
	}
	return p.MarkThreshold
}

// decide maps a score to an Action under p. It never returns ActionAllow.
func (p Policy) decide(score float64) Action {
	if score < p.markThreshold() {
		return ActionPass
	}
	switch p.Action {
	case ActionAllow:
		return ActionPass
	case "", ActionMark:
		if b := p.BlockThreshold; b > 0 && b <= 1 && score >= b {
			return ActionBlock
		}
		return ActionMark
	default: // ActionBlock, and fail closed on anything unknown
		return ActionBlock
	}
}

// Verdict is the result of screening one payload. Reasons are short stable codes, some
// with a detail after a colon ("override-instruction", "hidden-unicode:tag-chars",
// "encoded:base64"), strongest first; they never quote the content. Reasons is never nil,
// so it marshals as [] rather than null.
type Verdict struct {
	Action  Action   `json:"action"`
	Score   float64  `json:"score"`
	Reasons []string `json:"reasons"`
}

// Hostile reports whether the verdict is not a pass.
func (v Verdict) Hostile() bool { return v.Action != ActionPass }

// Config configures a Screener. A zero field takes the default noted on it.
type Config struct {
	MaxInputBytes  int // 0: 8 MiB; allowed [1 KiB, 1 GiB]. Bytes beyond it are not screened and add reason "oversize"
	MaxDecodeDepth int // 0: 3; allowed [1, 8]. Levels of nested base64/hex/url/html/tag-char decoding screened
}

const (
	defaultMaxInputBytes  = 8 << 20
	defaultMaxDecodeDepth = 3
)

// Screener screens payloads. It is immutable after New and safe for concurrent use.
type Screener struct {
	maxInput int
	maxDepth int
	rules    *ruleSet
	concepts *conceptSet
	foldPool sync.Pool // of *foldScratch
	jsonPool sync.Pool // of *jsonScratch
}

// maxPooledTokens and maxPooledText keep one huge input from pinning its memory in
// the pool.
const (
	maxPooledTokens = 1 << 16
	maxPooledText   = 1 << 20
)

// New compiles the detectors. Its only errors are about cfg and wrap ErrInvalidConfig.
func New(cfg Config) (*Screener, error) {
	if cfg.MaxInputBytes == 0 {
		cfg.MaxInputBytes = defaultMaxInputBytes
	}
	if cfg.MaxDecodeDepth == 0 {
		cfg.MaxDecodeDepth = defaultMaxDecodeDepth
	}
	if n := cfg.MaxInputBytes; n < 1<<10 || n > 1<<30 {
		return nil, fmt.Errorf("%w: Config.MaxInputBytes %d outside [1024, 1073741824]", ErrInvalidConfig, n)
	}
	if d := cfg.MaxDecodeDepth; d < 1 || d > 8 {
		return nil, fmt.Errorf("%w: Config.MaxDecodeDepth %d outside [1, 8]", ErrInvalidConfig, d)
	}
	rs, err := compileRules()
	if err != nil {
		// A broken built-in rule table is a bug in this package, not in cfg.
		return nil, fmt.Errorf("screen: compiling built-in rules: %w", err)
	}
	s := &Screener{maxInput: cfg.MaxInputBytes, maxDepth: cfg.MaxDecodeDepth, rules: rs, concepts: compileConcepts()}
	s.foldPool.New = func() any { return &foldScratch{toks: make([]token, 0, 512)} }
	s.jsonPool.New = func() any { return new(jsonScratch) }
	return s, nil
}

// Screen scores data and decides under pol. JSON input (an object, array or string that
// parses) is screened through its keys and string values, including JSON nested inside
// strings; anything else is screened as text. Invalid UTF-8 is screened with the bad
// bytes replaced. An invalid pol is read field by field: zero and out-of-range
// thresholds take their defaults, and an unknown Action blocks.
func (s *Screener) Screen(pol Policy, data []byte) Verdict {
	v, _ := s.ScreenContext(context.Background(), pol, data)
	return v
}

// ErrDeadline is returned when ctx ends before the content is screened: the
// caller's deadline bounds the work.
var ErrDeadline = errors.New("screen: content too large to scan before the deadline")

// ScreenContext is Screen bounded by ctx (the call's deadline). When ctx ends
// first it returns a block verdict (reason "deadline") and an error wrapping
// ErrDeadline and ctx's error: content that was not screened is not delivered.
func (s *Screener) ScreenContext(ctx context.Context, pol Policy, data []byte) (Verdict, error) {
	sc := s.score(ctx, data)
	if sc.err != nil {
		return Verdict{Action: ActionBlock, Score: 1, Reasons: []string{"deadline"}}, sc.err
	}
	return Verdict{Action: pol.decide(sc.score), Score: sc.score, Reasons: sc.reasons}, nil
}

// Score is Screen without a policy: the score in [0, 1] and the reasons.
func (s *Screener) Score(data []byte) (float64, []string) {
	sc := s.score(context.Background(), data)
	return sc.score, sc.reasons
}

type scored struct {
	score   float64
	reasons []string
	err     error // the deadline passed before the screening finished
}

func (s *Screener) score(ctx context.Context, data []byte) scored {
	acc := newAccumulator()
	if len(data) > s.maxInput {
		acc.add(signal{id: "oversize", code: "oversize", weight: 0.5})
		data = data[:s.maxInput]
	}
	js := s.jsonPool.Get().(*jsonScratch)
	ext, isJSON := extractJSONText(data, s.maxDepth, js)
	if !isJSON {
		ext = data
	}
	// A view, not a copy: nothing the call keeps or returns refers to the text
	// (verdicts hold only rule codes), and neither data nor js is written while it runs.
	text := unsafe.String(unsafe.SliceData(ext), len(ext))
	c := call{ctx: ctx, s: s, budget: 4*len(data) + 4096}
	c.screenText(text, 0, acc)
	if isJSON && cap(ext) <= maxPooledText && cap(js.spans) <= maxPooledTokens {
		js.out = ext[:0]
		s.jsonPool.Put(js)
	}
	if c.err != nil {
		return scored{err: fmt.Errorf("%w (%d bytes): %w", ErrDeadline, len(data), c.err)}
	}
	return acc.result()
}

// call is the state of one Screen call.
type call struct {
	ctx    context.Context
	err    error // ctx's error once it ended
	s      *Screener
	budget int // decoded bytes still allowed, so nested decoding stays linear in the input
}

// screenText runs every detector over one text at one decoding depth.
func (c *call) screenText(text string, depth int, acc *accumulator) {
	if c.halted() {
		return
	}
	// One pass answers both questions for the common text: valid, nothing hidden.
	h := hidden{clean: text}
	if need, bad := needsHiddenScan(text); need || bad {
		if bad || !utf8.ValidString(text) {
			text = strings.ToValidUTF8(text, "\uFFFD")
		}
		h = scanHidden(text)
	}
	if h.tags > 0 {
		acc.add(signal{id: "hidden-tags", code: "hidden-unicode:tag-chars", weight: 0.6})
	}
	if h.vsRuns > 0 {
		acc.add(signal{id: "hidden-vs", code: "hidden-unicode:variation-selectors", weight: 0.5})
	}
	if h.zwInWord > 0 {
		acc.add(signal{id: "hidden-zw", code: "hidden-unicode:zero-width", weight: 0.35})
	}
	if h.bidiOverride > 0 {
		acc.add(signal{id: "hidden-bidi-override", code: "hidden-unicode:bidi-override", weight: 0.45})
	}
	if h.bidiOther > 0 && !h.rtl {
		acc.add(signal{id: "hidden-bidi", code: "hidden-unicode:bidi-control", weight: 0.2})
	}
	norm := nfkc(h.clean)
	scratch := c.s.foldPool.Get().(*foldScratch)
	f := fold(norm, scratch)
	if f.mixed > 0 {
		acc.add(signal{id: "homoglyph-mixed", code: "homoglyph:mixed-script", weight: 0.4})
	}
	var (
		meta     int
		concepts []signal
		obf      bool
	)
	if !c.halted() {
		concepts, meta, obf = c.s.concepts.match(&f)
	}
	if !c.halted() {
		c.s.rules.matchPhrases(&f, acc, meta)
	}
	if !c.halted() {
		c.s.rules.matchPatterns(&f, norm, acc, meta)
	}
	addConcepts(acc, concepts)
	deob := ""
	if obf = obf && depth == 0; obf {
		deob, obf = deobfuscate(f.text)
	}
	// f's text and tokens are not read after this.
	if scratch.keep(&f) {
		c.s.foldPool.Put(scratch)
	}

	// Smuggled and encoded payloads are screened as texts of their own; what they add
	// beyond the carrier's own signals counts, with the hiding as one more signal.
	if len(h.tagPayload) > 0 {
		c.screenChild("hidden-unicode:tag-chars", string(h.tagPayload), min(depth+1, c.s.maxDepth), acc, false)
	}
	if obf && c.budget >= len(deob) && !c.halted() {
		c.budget -= len(deob)
		c.screenDeobfuscated(deob, acc)
	}
	if depth >= c.s.maxDepth {
		return
	}
	if len(h.vsPayload) > 0 {
		c.screenChild("hidden-unicode:variation-selectors", string(h.vsPayload), depth+1, acc, false)
	}
	for _, e := range findEncoded(h.clean, &c.budget) {
		if c.halted() {
			return
		}
		c.screenChild("encoded:"+e.kind, e.text, depth+1, acc, true)
	}
}

// screenDeobfuscated runs the phrase rules and the concept detector (not the decoders
// or the hidden-character checks, which saw the original) over the text with
// leetspeak and split letters undone. What it adds beyond the original's signals
// counts, and when that is evidence of its own, so does the obfuscation.
func (c *call) screenDeobfuscated(text string, acc *accumulator) {
	scratch := c.s.foldPool.Get().(*foldScratch)
	f := fold(text, scratch)
	child := newAccumulator()
	concepts, meta, _ := c.s.concepts.match(&f)
	c.s.rules.matchPhrases(&f, child, meta)
	addConcepts(child, concepts)
	if scratch.keep(&f) {
		c.s.foldPool.Put(scratch)
	}
	rest := 1.0
	for id, sg := range child.sig {
		if acc.has(id) || strings.HasPrefix(sg.code, "homoglyph") {
			continue
		}
		acc.add(sg)
		rest *= 1 - sg.weight
	}
	if 1-rest >= 0.3 {
		acc.add(signal{id: "obfuscated-leetspeak", code: "obfuscated:leetspeak", weight: 0.35})
	}
}

// halted reports whether the call's context has ended, remembering why.
func (c *call) halted() bool {
	if c.err == nil && c.ctx != nil {
		c.err = c.ctx.Err()
	}
	return c.err != nil
}

// screenChild screens a decoded payload and merges the signals it adds. With flag set,
// a payload that adds hostile evidence also adds the code of its hiding.
func (c *call) screenChild(code, text string, depth int, acc *accumulator, flag bool) {
	child := newAccumulator()
	c.screenText(text, depth, child)
	rest := 1.0
	for id, sg := range child.sig {
		if acc.has(id) {
			continue
		}
		acc.add(sg)
		rest *= 1 - sg.weight
	}
	if flag && 1-rest >= 0.3 {
		acc.add(signal{id: "hide-" + code, code: code, weight: 0.35})
	}
}

// signal is one piece of evidence. Signals with the same id count once (the strongest);
// distinct ids combine as independent evidence.
type signal struct {
	id     string  // rule identity, for de-duplication
	code   string  // reason code as reported, e.g. "override-instruction" or "encoded:base64"
	weight float64 // in (0, 1): how hostile this evidence alone makes the content
}

type accumulator struct {
	sig map[string]signal // nil until the first signal: most content has none
}

func newAccumulator() *accumulator { return &accumulator{} }

func (a *accumulator) add(s signal) {
	if a.sig == nil {
		a.sig = make(map[string]signal)
	}
	if old, ok := a.sig[s.id]; !ok || s.weight > old.weight {
		a.sig[s.id] = s
	}
}

func (a *accumulator) has(id string) bool { _, ok := a.sig[id]; return ok }

// result combines the signals as a noisy-OR: score = 1 - Π(1 - w). Several weak signals
// make a strong score together; one weak keyword never does. Each code is reported once
// with its strongest weight.
func (a *accumulator) result() scored {
	rest := 1.0
	best := make(map[string]float64)
	for _, s := range a.sig {
		rest *= 1 - s.weight
		if s.weight > best[s.code] {
			best[s.code] = s.weight
		}
	}
	score := math.Round((1-rest)*1000) / 1000
	reasons := make([]string, 0, len(best))
	for c := range best {
		reasons = append(reasons, c)
	}
	slices.SortFunc(reasons, func(x, y string) int {
		if best[x] != best[y] {
			if best[x] > best[y] {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	})
	if len(reasons) > maxReasons {
		reasons = reasons[:maxReasons]
	}
	return scored{score: score, reasons: reasons}
}

const maxReasons = 12
