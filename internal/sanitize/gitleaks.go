package sanitize

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/spf13/viper"
	"github.com/zricethezav/gitleaks/v8/config"
)

// glRule is one gitleaks rule, prepared to run only where it can match.
type glRule struct {
	id          string
	name        string // "gitleaks:" + id, the findings' rule
	cat         Category
	re          *regexp.Regexp
	secretGroup int
	entropy     float64
	allow       []allowList // the rule's, then the global ones
	generic     bool        // generic-api-key and friends: key names are checked too
	semi        bool        // the regex has gitleaks' semi-generic assignment shape
	// path: gitleaks runs the rule only on files whose name matches (.tf,
	// .yaml, .php, nuget.config). A message has no file name; the rule runs
	// on its content anyway, as pasted files are exactly that content.
	path bool

	// Where the rule runs, worked out from its regex (see plan).
	mode     glMode
	anchored *regexp.Regexp // ^(?:regex), for modeLead and modeSemi
	kwRe     *regexp.Regexp // modeSemi, split: ^(?i:KEYWORDS)
	tailRe   *regexp.Regexp // modeSemi, split: ^(?i)(?:the part after the operator)
	minValue int            // modeSemi, split: the value group's shortest match, when it holds no delimiter
	wordB    bool           // modeLead: the regex starts with \b
	leadCase []string       // modeLead: the exact-case lead strings, when few; a hit must start with one
	short    int            // first window for the anchored regex: within the backtracker's reach
	long     bool           // a match can be longer than short
	reach    int            // the longest input regexp runs this rule on with its backtracker
	after    int            // bytes a match can reach past its start (modeLead), or past the operator (modeSemi)
	before   int            // modeWindow: bytes a match can reach before a keyword
	required []string       // modeWindow, modeWhole: literals every match contains

	// The prefixSets of anchored, kwRe and tailRe: where a match cannot
	// start, the regex is not run.
	anchoredPre, kwPre, tailPre []byteSet
	// anchoredReach and tailReach bound where anchored and tailRe can end
	// (see runWithin).
	anchoredReach, tailReach *reachNFA
	// anchoredBP, kwBP and tailBP run anchored, kwRe and tailRe on ASCII
	// text (nil: regexp runs them).
	anchoredBP, kwBP, tailBP *byteProg
	// modeWindow, modeWhole: a required literal that every match's lead holds
	// at one of anchorOffs; then the anchored regex runs at its occurrences
	// instead of the regex scanning the whole window.
	anchorLit  string
	anchorOffs []int
}

// glMode is how a gitleaks rule is run. gitleaks itself runs every rule whose
// keyword occurs anywhere over the whole fragment; here a rule runs only
// where a match can be, which gives the same findings when every match
// contains a keyword (true of all but six default rules; those keep
// gitleaks' whole-input behaviour).
type glMode uint8

const (
	// modeLead: every match starts with a short literal holding a keyword
	// (ghp_, AKIA, ey...): the anchored regex runs at each keyword hit.
	modeLead glMode = iota
	// modeSemi: gitleaks' semi-generic shape, KEY<keyword>... = VALUE: only
	// when an assignment operator follows the keyword, the keyword part and
	// the value part run as two small anchored regexes (splitSemi), or the
	// whole regex anchored at the key's start.
	modeSemi
	// modeWindow: the keyword is somewhere inside the match: the regex runs
	// on merged windows around the hits.
	modeWindow
	// modeWhole: a match need not contain the keyword: whole input.
	modeWhole
)

// semiGeneric is the assignment part that gitleaks' generator writes after the
// keyword of every "semi-generic" rule.
const semiGeneric = `(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)`

// windowCap bounds the window of a rule whose matches are unbounded.
const windowCap = 4096

// DefaultRulesTOML is the gitleaks default configuration embedded in the
// gitleaks module this build links (v8.30.1: 222 rules). Updating the module
// updates the rules.
func DefaultRulesTOML() string { return config.DefaultConfig }

// loadGitleaks parses a gitleaks TOML configuration with a private viper
// instance (gitleaks' own loader uses the global one).
func loadGitleaks(toml string) (rules []glRule, keywords map[string][]glHook, err error) {
	defer func() {
		// config.Translate compiles with MustCompile; a bad custom rule panics.
		if r := recover(); r != nil {
			err = fmt.Errorf("sanitize: gitleaks rules: %v", r)
		}
	}()
	v := viper.New()
	v.SetConfigType("toml")
	if err := v.ReadConfig(strings.NewReader(toml)); err != nil {
		return nil, nil, fmt.Errorf("sanitize: gitleaks rules: %w", err)
	}
	var vc config.ViperConfig
	if err := v.Unmarshal(&vc); err != nil {
		return nil, nil, fmt.Errorf("sanitize: gitleaks rules: %w", err)
	}
	if vc.Extend.Path != "" || vc.Extend.URL != "" || vc.Extend.UseDefault {
		return nil, nil, fmt.Errorf("sanitize: gitleaks rules: [extend] is not supported; inline the rules")
	}
	cfg, err := vc.Translate()
	if err != nil {
		return nil, nil, fmt.Errorf("sanitize: gitleaks rules: %w", err)
	}
	keywords = make(map[string][]glHook)
	var global []allowList
	for _, a := range cfg.Allowlists {
		if a != nil {
			global = append(global, newAllowList(a))
		}
	}
	for _, id := range cfg.OrderedRules {
		r := cfg.Rules[id]
		if r.Regex == nil || r.SkipReport || len(r.RequiredRules) > 0 {
			// Path-only rules need a file name; composite rules are not in the
			// default set. Neither applies to a message.
			continue
		}
		if len(r.Keywords) == 0 {
			continue // no default rule lacks keywords; a prefilter needs them
		}
		g := glRule{
			id:          r.RuleID,
			name:        "gitleaks:" + r.RuleID,
			cat:         GitleaksCategory(r.RuleID),
			re:          r.Regex,
			secretGroup: r.SecretGroup,
			entropy:     r.Entropy,
			generic:     strings.Contains(r.RuleID, "generic"),
			semi:        strings.Contains(r.Regex.String(), semiGeneric),
			path:        r.Path != nil,
		}
		for _, a := range r.Allowlists {
			if a != nil {
				g.allow = append(g.allow, newAllowList(a))
			}
		}
		g.allow = append(g.allow, global...) // shared, read-only
		offs := g.plan(r.Regex.String(), r.Keywords)
		idx := len(rules)
		rules = append(rules, g)
		for i, k := range r.Keywords {
			k = strings.ToLower(k)
			if !slices.ContainsFunc(keywords[k], func(h glHook) bool { return h.rule == idx }) {
				keywords[k] = append(keywords[k], glHook{rule: idx, offs: offs[i]})
			}
		}
	}
	return rules, keywords, nil
}

// glHook is a rule to try at a keyword's occurrence; for modeLead, offs are
// the keyword's possible offsets from the start of a match.
type glHook struct {
	rule int
	offs []int
}

// plan chooses the rule's mode and returns, per keyword, its offsets into
// the lead strings (modeLead only).
func (g *glRule) plan(expr string, keywords []string) [][]int {
	offs := make([][]int, len(keywords))
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		g.mode = modeWhole
		return offs
	}
	re = re.Simplify()
	lower := make([]string, len(keywords))
	for i, k := range keywords {
		lower[i] = strings.ToLower(k)
	}
	longest := maxLen(re)
	if longest < 0 || longest > windowCap {
		longest = windowCap
	}
	g.required = required(re)
	anchored := func() bool {
		a, err := regexp.Compile(`^(?:` + expr + `)`)
		if err != nil {
			return false
		}
		g.anchored = a
		g.anchoredPre = prefixSets(`^(?:` + expr + `)`)
		g.anchoredReach = newReachNFA(`^(?:` + expr + `)`)
		g.anchoredBP = newByteProg(a)
		// regexp uses its backtracker (much faster than its NFA) only while
		// the input fits 256 Kib of (instruction, position) visit bits.
		g.short = 256
		if prog, err := syntax.Compile(re); err == nil {
			g.reach = 256 * 1024 / len(prog.Inst)
			if reach := g.reach - 2; reach < g.short {
				g.short = max(reach, 32)
			}
		}
		g.long = longest > g.short
		return true
	}
	if g.semi {
		if g.splitSemi(expr) {
			g.mode = modeSemi
			return offs
		}
		tail := expr[strings.Index(expr, semiGeneric)+len(semiGeneric):]
		g.after = windowCap
		if t, err := syntax.Parse(tail, syntax.Perl); err == nil {
			if m := maxLen(t.Simplify()); m >= 0 && m < windowCap {
				g.after = m
			}
		}
		if g.after > 512 {
			g.after = 512 // a longer value is still flagged, cut at 512 bytes
		}
		if anchored() {
			g.mode = modeSemi
			return offs
		}
	}
	if !mustContain(re, lower) {
		g.mode = modeWhole
		g.planAnchor(re, longest, anchored)
		return offs
	}
	if lead, wordB, ok := leadInfo(re); ok {
		all := true
		for i, k := range lower {
			offs[i] = keywordOffsets(lead, lower, k)
			if offs[i] == nil {
				all = false
			}
		}
		if all && anchored() {
			g.mode, g.wordB, g.after = modeLead, wordB, longest
			g.leadCase = exactLead(re)
			return offs
		}
	}
	g.mode, g.before, g.after = modeWindow, longest+1, longest+1
	g.planAnchor(re, longest, anchored)
	return offs
}

// planAnchor picks, for a window or whole-input rule, a required literal that
// sits in every lead string (like "sk-" for OpenAI keys, "hooks" for Slack
// webhooks), so the rule can run anchored at that literal's occurrences.
func (g *glRule) planAnchor(re *syntax.Regexp, longest int, anchored func() bool) {
	lead, wordB, ok := leadInfo(re)
	if !ok {
		return
	}
	for _, lit := range g.required {
		if offs := keywordOffsets(lead, []string{lit}, lit); offs != nil && anchored() {
			g.anchorLit, g.anchorOffs, g.wordB = lit, offs, wordB
			g.leadCase = exactLead(re)
			g.after = longest + 1
			return
		}
	}
}

// semiPrefix opens every semi-generic rule of the default set.
const semiPrefix = `(?i)[\w.-]{0,50}?`

// splitSemi prepares a semi-generic rule `(?i)[\w.-]{0,50}?KW` + semiGeneric +
// TAIL to run as: KW anchored at the keyword hit, the assignment operator
// found by hand (semiOps), TAIL anchored after it. Each piece is small enough
// for regexp's backtracker, where the whole needs its much slower NFA. Rules
// with capture groups before the operator keep the whole regex.
func (g *glRule) splitSemi(expr string) bool {
	i := strings.Index(expr, semiGeneric)
	if i < 0 || !strings.HasPrefix(expr, semiPrefix) {
		return false
	}
	kw, tail := expr[len(semiPrefix):i], expr[i+len(semiGeneric):]
	t, err := syntax.Parse(kw, syntax.Perl)
	if err != nil || t.MaxCap() > 0 {
		return false
	}
	kwRe, err1 := regexp.Compile(`^(?i:` + kw + `)`)
	tailRe, err2 := regexp.Compile(`^(?i)(?:` + tail + `)`)
	if err1 != nil || err2 != nil {
		return false
	}
	g.kwRe, g.tailRe = kwRe, tailRe
	g.kwPre, g.tailPre = prefixSets(`^(?i:`+kw+`)`), prefixSets(`^(?i)(?:`+tail+`)`)
	g.tailReach = newReachNFA(`^(?i)(?:` + tail + `)`)
	g.kwBP, g.tailBP = newByteProg(kwRe), newByteProg(tailRe)
	if tt, err := syntax.Parse(tail, syntax.Perl); err == nil {
		if c := firstCapture(tt.Simplify()); c != nil && !matchesDelim(c) {
			g.minValue = minLen(c)
		}
	}
	g.short = 256
	if tt, err := syntax.Parse(`(?i)(?:`+tail+`)`, syntax.Perl); err == nil {
		if prog, err := syntax.Compile(tt.Simplify()); err == nil {
			if reach := 256*1024/len(prog.Inst) - 2; reach < g.short {
				g.short = max(reach, 32)
			}
		}
	}
	return true
}

// semiOps lists where the operator of a semi-generic rule can end, in the
// order the rule's alternation (=|>|:{1,3}=|\|\||:|=>|\?=|,) prefers them,
// given that it starts at k.
func semiOps(d []byte, k int, out []int) []int {
	at := func(i int, c byte) bool { return i < len(d) && d[i] == c }
	switch d[k] {
	case '=':
		out = append(out, k+1)
		if at(k+1, '>') {
			out = append(out, k+2)
		}
	case '>':
		out = append(out, k+1)
	case ':':
		for n := 1; n <= 3; n++ {
			if at(k+n, '=') {
				out = append(out, k+n+1)
				break
			}
			if !at(k+n, ':') {
				break
			}
		}
		out = append(out, k+1)
	case '|':
		if at(k+1, '|') {
			out = append(out, k+2)
		}
	case '?':
		if at(k+1, '=') {
			out = append(out, k+2)
		}
	case ',':
		out = append(out, k+1)
	}
	return out
}

// valueRun reports whether, after at most five of [`'"\s=], a run of at
// least min bytes without whitespace, quotes, backticks, ';' or ',' follows o:
// the least a semi-generic rule's value needs.
func valueRun(d []byte, o, min int) bool {
	k := o
	for j := 0; j < 5 && k < len(d) && (isSpace(d[k]) || d[k] == '`' || d[k] == '\'' || d[k] == '"' || d[k] == '='); j++ {
		k++
	}
	n := 0
	for k+n < len(d) && n < min {
		switch d[k+n] {
		case ' ', '\t', '\n', '\r', '"', '\'', '`', ';', ',':
			return false
		}
		n++
	}
	return n >= min
}

// runSemi runs a split semi-generic rule at a keyword hit p.
func (sc *scanner) runSemi(r int, g *glRule, p int) {
	d := sc.data
	win := d[p:min(len(d), p+64)]
	if !prefixOK(g.kwPre, win) {
		return
	}
	km := sc.find(g.kwRe, g.kwBP, win, 2)
	if km == nil {
		return
	}
	e := p + km[1]
	// (?:[ \t\w.-]{0,20})[\s'"]{0,3} then the operator.
	k := e
	for k < len(d) && k-e < 20 && (isIdent(d[k]) || d[k] == '.' || d[k] == '-' || d[k] == ' ' || d[k] == '\t') {
		k++
	}
	for j := 0; j < 3 && k < len(d) && (isSpace(d[k]) || d[k] == '\'' || d[k] == '"' || d[k] == '\f' || d[k] == '\v'); j++ {
		k++
	}
	if k >= len(d) {
		return
	}
	var buf [4]int
	ops := semiOps(d, k, buf[:0])
	if len(ops) == 0 {
		return
	}
	s := p
	for s > 0 && p-s < 50 && (isIdent(d[s-1]) || d[s-1] == '.' || d[s-1] == '-') {
		s--
	}
	if sc.tried(r, s) {
		return
	}
	if g.generic && !sc.parity && genericKeyDenied(d[s:k]) {
		return // page_token, idempotency_key...: decided before any regex runs
	}
	// The value part runs after the prefilter pass (runSemiTasks), when the
	// detectors triggered by the value itself have reported.
	sc.semi = append(sc.semi, semiTask{rule: int32(r), s: int32(s), op: int32(k)})
}

// semiTask is the value half of a semi-generic rule, deferred: the key
// starts at s and the operator at op.
type semiTask struct {
	rule, s, op int32
}

// runSemiTasks runs the deferred value halves. A value that a detector at
// least as specific already covers whole (up to the next delimiter) is left
// alone: the rule could only report a part of it again.
func (sc *scanner) runSemiTasks() {
	d := sc.data
	for _, t := range sc.semi {
		if sc.halted() {
			return
		}
		g := &sc.s.rules[t.rule]
		s, k := int(t.s), int(t.op)
		var buf [4]int
		for _, o := range semiOps(d, k, buf[:0]) {
			if g.minValue > 0 {
				if !valueRun(d, o, g.minValue) {
					continue
				}
				vs, te := valueToken(d, o)
				if !sc.parity && sc.coveredBy(vs, te, g.cat) {
					break
				}
			}
			if !prefixOK(g.tailPre, d[o:]) {
				continue
			}
			end := min(len(d), o+g.short)
			tm := sc.find(g.tailRe, g.tailBP, d[o:end], -1)
			if tm != nil && o+tm[1] == end && end < len(d) {
				tm = sc.runWithin(g.tailRe, g.tailBP, g.tailReach, d[o:min(len(d), o+windowCap)])
			}
			if tm == nil {
				continue
			}
			// Express the match as the whole rule's: [s, o+end) with the tail's groups.
			var mb [16]int
			m := mb[:0]
			if len(tm) > len(mb) {
				m = make([]int, 0, len(tm))
			}
			m = append(m, 0, o-s+tm[1])
			for i := 2; i < len(tm); i++ {
				if tm[i] >= 0 {
					m = append(m, o-s+tm[i])
				} else {
					m = append(m, -1)
				}
			}
			sc.glMatch(g, s, d[s:], m)
			break
		}
	}
}

// valueToken skips at most five of [`'"\s=] after o and returns the run of
// bytes up to the next whitespace, quote, backtick, ';' or ','.
func valueToken(d []byte, o int) (int, int) {
	k := o
	for j := 0; j < 5 && k < len(d) && (isSpace(d[k]) || d[k] == '`' || d[k] == '\'' || d[k] == '"' || d[k] == '='); j++ {
		k++
	}
	e := k
	for e < len(d) && e-k < 1024 {
		switch d[e] {
		case ' ', '\t', '\n', '\r', '"', '\'', '`', ';', ',':
			return k, e
		}
		e++
	}
	return k, e
}

// glWin is a window of the input a gitleaks rule must be run on.
type glWin struct {
	rule       int32
	start, end int32
}

// gitleaksHit runs or schedules rule h.rule for a keyword occurrence at [p, e).
func (sc *scanner) gitleaksHit(h glHook, p, e int) {
	r := h.rule
	g := &sc.s.rules[r]
	d := sc.data
	if sc.parity && g.path {
		return // gitleaks' DetectString never runs these (no file name)
	}
	if g.cat == CategoryPrivateKey && g.id == "private-key" && !sc.parity {
		// Subsumed: this package's PEM detector reports exactly the blocks
		// of real key material this rule would (same range, BEGIN to END),
		// and glMatch drops every other match of it. Its lazy body would
		// otherwise make regexp scan kilobytes past each redacted block.
		return
	}
	switch g.mode {
	case modeWhole:
		sc.glWins = append(sc.glWins, glWin{int32(r), 0, int32(len(d))})
	case modeLead:
		sc.runLeads(r, g, p, h.offs)
	case modeSemi:
		if g.tailRe != nil {
			if _, ok := semiOp(d, e); ok {
				sc.runSemi(r, g, p)
			}
			return
		}
		opEnd, ok := semiOp(d, e)
		if !ok {
			return
		}
		s := p
		for s > 0 && p-s < 50 && (isIdent(d[s-1]) || d[s-1] == '.' || d[s-1] == '-') {
			s--
		}
		if sc.tried(r, s) {
			return
		}
		sc.runAnchored(g, s, min(len(d), opEnd+g.after+2))
	case modeWindow:
		s := max(0, p-g.before)
		en := min(len(d), e+g.after)
		// Widen to the surrounding token so a window edge does not cut a value.
		for k := 0; k < 64 && s > 0 && !isSpace(d[s-1]) && d[s-1] != '"' && d[s-1] != '\''; k++ {
			s--
		}
		for k := 0; k < 64 && en < len(d) && !isSpace(d[en]) && d[en] != '"' && d[en] != '\''; k++ {
			en++
		}
		sc.glWins = append(sc.glWins, glWin{int32(r), int32(s), int32(en)})
	}
}

// tried records that rule r was run from position c, and reports whether it
// already had been (several keywords can lead to the same start).
func (sc *scanner) tried(r, c int) bool {
	if sc.glTried == nil {
		sc.glTried = make([]int32, len(sc.s.rules))
		for i := range sc.glTried {
			sc.glTried[i] = -1
		}
	}
	if sc.glTried[r] == int32(c) {
		return true
	}
	sc.glTried[r] = int32(c)
	return false
}

func startsWithAny(b []byte, prefixes []string) bool {
	for _, p := range prefixes {
		if len(b) >= len(p) && string(b[:len(p)]) == p {
			return true
		}
	}
	return false
}

// isWordRE is regexp's \w for the \b test.
func isWordRE(b byte) bool { return isIdent(b) }

// runAnchored runs g's anchored regex at c on a short window first (most
// attempts fail within a few bytes, and a short window keeps the backtracker's
// state small), then on the full reach if the match ran into the window's end.
func (sc *scanner) runAnchored(g *glRule, c, end int) {
	d := sc.data
	if !prefixOK(g.anchoredPre, d[c:]) {
		return
	}
	short := min(end, c+g.short)
	m := sc.find(g.anchored, g.anchoredBP, d[c:short], -1)
	if short < end && (m == nil && g.long || m != nil && c+m[1] == short) {
		// A match may need more than the short window (a PEM block), or ran
		// into its end. The retry window reaches past the backtracker's
		// limit on purpose: when runWithin cannot bound the match, regexp
		// then uses its NFA, which for an anchored regex stops as soon as
		// the text stops matching, where the backtracker would first clear
		// a visit bitmap the window's size.
		full := min(len(d), max(end, c+g.reach+1))
		m = sc.runWithin(g.anchored, g.anchoredBP, g.anchoredReach, d[c:full])
	}
	if m != nil {
		sc.glMatch(g, c, d[c:], m)
	}
}

// runWithin is re's match on in (re is anchored at the start), computed on
// a shorter window when rn shows that gives the same answer: when every
// match in in ends at or before e, re's match on in[:e+1] is its match on
// in, unless it ends at e+1 (an assertion such as $ held only because the
// window ended there). The prefix holds the same matches, and only its end
// can add one. On a long failing token this replaces regexp's NFA on the
// whole window (kilobytes for an unbounded rule) with one byte loop and,
// when a match is possible, the backtracker on the prefix.
func (sc *scanner) runWithin(re *regexp.Regexp, bp *byteProg, rn *reachNFA, in []byte) []int {
	if rn != nil {
		if e, ok := rn.maxEnd(in, &sc.reach); ok {
			if e < 0 {
				return nil // no match
			}
			if y := e + 1; y < len(in) {
				if m := sc.find(re, bp, in[:y], -1); m == nil || m[1] < y {
					return m
				}
			}
		}
	}
	return sc.find(re, bp, in, -1)
}

// find is re's FindSubmatchIndex(in) (ncap -1) or FindIndex(in) (ncap 2),
// run by bp where it can. The result is valid until the next call.
func (sc *scanner) find(re *regexp.Regexp, bp *byteProg, in []byte, ncap int) []int {
	if bp == nil {
		return findRegexp(re, in, ncap)
	}
	if ncap < 0 {
		ncap = bp.ncap
	}
	return bp.find(in, ncap, &sc.bt)
}

// runLeads tries g anchored at hit p for each offset the hit can have in a
// match's lead, leftmost start first, and stops at the first match (the one
// gitleaks' leftmost-first search reports).
func (sc *scanner) runLeads(r int, g *glRule, p int, offs []int) {
	d := sc.data
	n := len(sc.hits)
	for i := len(offs) - 1; i >= 0; i-- {
		c := p - offs[i]
		if c < 0 || sc.tried(r, c) {
			continue
		}
		if g.wordB && c > 0 && isWordRE(d[c-1]) == isWordRE(d[c]) {
			continue
		}
		if g.leadCase != nil && !startsWithAny(d[c:], g.leadCase) {
			continue // "task" is no twilio SK…
		}
		if sc.leadRuns >= leadClearAfter && sc.leadClear(r, g, c) {
			continue
		}
		sc.leadRuns++
		sc.runAnchored(g, c, min(len(d), c+g.after))
		if len(sc.hits) > n {
			return
		}
	}
}

// leadClearAfter is how many anchored runs a scan makes before leadClear
// screens the rest: ordinary text runs a few, and the screen's simulation
// cost more than they do (a fifth of a 1 KiB Apply); text that repeats a
// keyword runs thousands.
const leadClearAfter = 32

// leadBlock is a span of starts [from, to) of one lead rule, and whether
// its regex is known to match from none of them.
type leadBlock struct {
	from, to int32
	clear    bool
}

// leadClear reports that g's anchored regex cannot match from c. Repeated
// keywords (64 KiB of "curl ") would otherwise each run the regex on a
// window kilobytes long; one simulation per block of starts tells them all
// apart from the few that need the regex.
func (sc *scanner) leadClear(r int, g *glRule, c int) bool {
	rn := g.anchoredReach
	if rn == nil {
		return false
	}
	if sc.glClear == nil {
		sc.glClear = make([]leadBlock, len(sc.s.rules))
	}
	b := &sc.glClear[r]
	if int32(c) >= b.from && int32(c) < b.to {
		return b.clear
	}
	// runAnchored reads at most w bytes from a start (its end and retry);
	// a block of 4w starts keeps the simulation's tail a quarter of it.
	// A block that may hold a match is halved down to minLeadBlock starts,
	// so the real match's neighbours still skip their runs.
	d := sc.data
	w := max(g.after, g.reach+1)
	for n := 4 * w; ; n /= 2 {
		to := min(len(d), c+n)
		if rn.noneFrom(d, c, to, min(len(d), to+w), &sc.reach) {
			*b = leadBlock{from: int32(c), to: int32(to), clear: true}
			return true
		}
		if n <= minLeadBlock || to-c < minLeadBlock {
			*b = leadBlock{from: int32(c), to: int32(to)}
			return false
		}
	}
}

// minLeadBlock is the fewest starts leadClear decides on at once.
const minLeadBlock = 64

// semiOp finds the assignment operator that semi-generic rules require after
// the keyword ending at e, and returns the offset just past it.
func semiOp(d []byte, e int) (int, bool) {
	k := e
	for k < len(d) && k-e < 64 && (isIdent(d[k]) || d[k] == '.' || d[k] == '-' || d[k] == ' ' || d[k] == '\t') {
		k++
	}
	for j := 0; j < 3 && k < len(d) && (isSpace(d[k]) || d[k] == '\'' || d[k] == '"' || d[k] == '\f' || d[k] == '\v'); j++ {
		k++
	}
	if k >= len(d) {
		return 0, false
	}
	switch d[k] {
	case '=', '>', ':', '|', '?', ',':
		// The longest operator is ":::=" (":{1,3}="), then "=>" and "||".
		return min(len(d), k+4), true
	}
	return 0, false
}

// maxMergedWin bounds the merging of one rule's windows in runGitleaks.
const maxMergedWin = 8 << 10

// runGitleaks runs the window and whole-input rules on their merged windows.
func (sc *scanner) runGitleaks() {
	if len(sc.glWins) == 0 {
		return
	}
	slices.SortFunc(sc.glWins, func(a, b glWin) int {
		if a.rule != b.rule {
			return int(a.rule - b.rule)
		}
		return int(a.start - b.start)
	})
	ws := sc.glWins
	for i := 0; i < len(ws); {
		if sc.halted() {
			return
		}
		w := ws[i]
		j := i + 1
		// Windows merge up to maxMergedWin: beyond it, a new window starts
		// (overlapping the last), so dense hits never make one regex run
		// over megabytes, where regexp falls back to its slower matcher.
		// A rule whose own window is that long merges up to four of them,
		// or each of its hits would rescan its whole window.
		limit := max(maxMergedWin, 4*(w.end-w.start))
		for j < len(ws) && ws[j].rule == w.rule && ws[j].start <= w.end && (w.end-w.start < limit || ws[j].end <= w.end) {
			// A window inside w is run with it: a whole-input rule adds the
			// whole input at each of its keyword's hits, which without this
			// ran its regex over all of it once per hit.
			if ws[j].end > w.end {
				w.end = ws[j].end
			}
			j++
		}
		g := &sc.s.rules[w.rule]
		win := sc.data[w.start:w.end]
		ok := true
		for _, lit := range g.required {
			if !containsFold(win, lit) {
				ok = false
				break
			}
		}
		switch {
		case !ok:
		case g.anchorLit != "":
			sc.runAnchorLit(int(w.rule), g, int(w.start), int(w.end))
		default:
			for _, m := range g.re.FindAllSubmatchIndex(win, -1) {
				sc.glMatch(g, int(w.start), win, m)
			}
		}
		i = j
	}
}

// runAnchorLit runs g anchored at every occurrence of its anchor literal in
// [ws, we), at each offset the literal can have in a match's lead.
func (sc *scanner) runAnchorLit(r int, g *glRule, ws, we int) {
	it := newFoldIter(sc.data[ws:we], g.anchorLit)
	for k := it.next(); k >= 0; k = it.next() {
		sc.runLeads(r, g, ws+k, g.anchorOffs)
	}
}

// glMatch turns one regex match (submatch indexes m into win, which starts
// at base in the input) into a finding, applying the rule's secret group,
// entropy threshold and allowlists as gitleaks does.
func (sc *scanner) glMatch(g *glRule, base int, win []byte, m []int) {
	d := sc.data
	ms, me := m[0], m[1]
	// gitleaks trims newlines off the match.
	for me > ms && win[me-1] == '\n' {
		me--
	}
	ss, se := ms, me
	if g.secretGroup > 0 && 2*g.secretGroup+1 < len(m) {
		ss, se = m[2*g.secretGroup], m[2*g.secretGroup+1]
	} else if g.secretGroup == 0 {
		for k := 2; k+1 < len(m); k += 2 {
			if m[k] >= 0 && m[k+1] > m[k] {
				ss, se = m[k], m[k+1]
				break
			}
		}
	}
	if ss < 0 || se <= ss {
		return
	}
	if se > me {
		se = me
	}
	if !sc.parity && se-ss >= 2 && (win[ss] == '"' || win[ss] == '\'') && win[se-1] == win[ss] {
		ss, se = ss+1, se-1 // a rule that captures the quotes: the value is inside
	}
	secret := win[ss:se]
	if g.entropy != 0 && shannon(secret) <= g.entropy {
		return
	}
	if !sc.parity {
		// This package's own filters, on top of gitleaks' (off for the
		// parity test, which checks the rule runner against gitleaks).
		if placeholder(secret) {
			return
		}
		if g.generic && genericKeyDenied(win[ms:ss]) {
			return
		}
		if sc.coveredBy(base+ss, base+se, g.cat) {
			return // a detector as specific already holds this range
		}
		if g.cat == CategoryPrivateKey {
			// gitleaks' lazy body can run past a redacted block into the next
			// one; only a block that parses as real key material counts.
			if _, ok := pemBlock(d, base+ss); !ok {
				return
			}
		}
	}
	if sc.glAllowed(g, base+ms, base+me, secret) {
		return
	}
	sc.add(base+ss, base+se, g.cat, g.name)
}

// allowList is a gitleaks allowlist prepared for messages: each regex keeps
// the literals every match of it contains, so most are skipped by a substring
// test. Commit and path conditions never hold for a message.
type allowList struct {
	target string // "" (the secret), "match" or "line"
	and    bool   // every condition must hold
	never  bool   // an AND list with commit or path conditions
	res    []allowRe
	stop   *config.Allowlist // for its stop words, when it has any
	// stopAC finds the stop words in an ASCII secret without the string
	// copies of gitleaks' lowercasing; nil when a stop word could match
	// there only through it.
	stopAC *acMatcher
}

type allowRe struct {
	re  *regexp.Regexp
	req []string
	pre []byteSet // the prefixSets of a regex anchored at the target's start
	abc *byteSet  // the wholeAlphabet of a regex anchored at both ends
}

func newAllowList(a *config.Allowlist) allowList {
	l := allowList{target: a.RegexTarget, and: a.MatchCondition == config.AllowlistMatchAnd}
	l.never = l.and && (len(a.Commits) > 0 || len(a.Paths) > 0)
	for _, re := range a.Regexes {
		l.res = append(l.res, splitAllow(re)...)
	}
	if len(a.StopWords) > 0 {
		l.stop = a
		l.stopAC = asciiStopWords(a.StopWords)
	}
	return l
}

// asciiStopWords compiles the stop words that can occur in the lowercased
// form of an ASCII secret (ASCII, no capitals: gitleaks compares with the
// lowercased secret), matched ignoring case, so it answers as
// ContainsStopWord does for ASCII secrets. It returns nil when a stop word
// is empty (it matches every secret; the matcher skips empty patterns).
func asciiStopWords(words []string) *acMatcher {
	var keep []string
	for _, w := range words {
		if w == "" {
			return nil
		}
		ok := true
		for i := 0; i < len(w); i++ {
			if w[i] >= 0x80 || ('A' <= w[i] && w[i] <= 'Z') {
				ok = false
				break
			}
		}
		if ok {
			keep = append(keep, w)
		}
	}
	return newACMatcher(keep)
}

// containsStopWord is a.stop.ContainsStopWord(string(secret)).
func (a *allowList) containsStopWord(secret []byte) bool {
	if a.stopAC != nil {
		ascii := true
		for _, c := range secret {
			if c >= 0x80 {
				ascii = false
				break
			}
		}
		if ascii {
			return a.stopAC.any(secret)
		}
	}
	stop, _ := a.stop.ContainsStopWord(string(secret))
	return stop
}

// splitAllow splits a regex whose top level is an alternation into one regex
// per branch, each with its required literals: gitleaks' generic allowlist is
// one (?i) alternation of dozens of key names, far cheaper tested branch by
// branch behind a substring check than as one NFA.
func splitAllow(re *regexp.Regexp) []allowRe {
	t, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return []allowRe{{re: re, pre: startPrefix(re.String()), abc: wholeAlphabet(re.String())}}
	}
	t = t.Simplify()
	for t.Op == syntax.OpCapture {
		t = t.Sub[0]
	}
	if t.Op != syntax.OpAlternate {
		return []allowRe{{re: re, req: required(t), pre: startPrefix(re.String()), abc: wholeAlphabet(re.String())}}
	}
	var out []allowRe
	for _, b := range t.Sub {
		bre, err := regexp.Compile(b.String())
		if err != nil {
			return []allowRe{{re: re, req: required(t), pre: startPrefix(re.String()), abc: wholeAlphabet(re.String())}}
		}
		out = append(out, allowRe{re: bre, req: required(b), pre: startPrefix(bre.String()), abc: wholeAlphabet(bre.String())})
	}
	return out
}

func (l *allowList) regexAllowed(target []byte) bool {
	for i := range l.res {
		ar := &l.res[i]
		ok := true
		for _, lit := range ar.req {
			if !containsFold(target, lit) {
				ok = false
				break
			}
		}
		if ok && prefixOK(ar.pre, target) && within(ar.abc, target) && ar.re.Match(target) {
			return true
		}
	}
	return false
}

// glAllowed applies gitleaks' allowlists: regexes on the secret, the match or
// the line, and stop words on the secret. The inline "gitleaks:allow" marker
// is deliberately not honoured: a message must not be able to switch off its
// own sanitizing.
func (sc *scanner) glAllowed(g *glRule, ms, me int, secret []byte) bool {
	for i := range g.allow {
		a := &g.allow[i]
		if a.never {
			continue
		}
		var target []byte
		switch a.target {
		case "match":
			target = sc.data[ms:me]
		case "line":
			ls, _ := lineBounds(sc.data, ms)
			_, le := lineBounds(sc.data, me)
			target = sc.data[ls:le]
		default:
			target = secret
		}
		regexOK := len(a.res) > 0 && a.regexAllowed(target)
		stop := false
		if a.stop != nil {
			stop = a.containsStopWord(secret)
		}
		if a.and {
			ok := len(a.res) > 0 || a.stop != nil
			if len(a.res) > 0 {
				ok = ok && regexOK
			}
			if a.stop != nil {
				ok = ok && stop
			}
			if ok {
				return true
			}
			continue
		}
		if regexOK || stop {
			return true
		}
	}
	return false
}

// genericKeyDenied reports whether the key in a generic rule's match (the
// text before the secret) names a non-secret: page_token, idempotency_key,
// public_key, max_tokens.
func genericKeyDenied(prefix []byte) bool {
	e := len(prefix)
	for e > 0 && !isIdent(prefix[e-1]) {
		e--
	}
	s := e
	for s > 0 && (isIdent(prefix[s-1]) || prefix[s-1] == '.' || prefix[s-1] == '-') {
		s--
	}
	var kt keyText
	kt.add(prefix[s:e])
	for i := 0; i < kt.nw; i++ {
		if denyWords[string(kt.word(i))] {
			return true
		}
	}
	return false
}
