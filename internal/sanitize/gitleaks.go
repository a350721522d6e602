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

// glRule is one gitleaks rule prepared for windowed matching.
type glRule struct {
	id          string
	cat         Category
	re          *regexp.Regexp
	secretGroup int
	entropy     float64
	allow       []*config.Allowlist // the rule's, then the global ones
	generic     bool                // generic-api-key and friends: key names are checked too
	// Where a match can lie relative to a keyword occurrence. When every
	// match contains a keyword (anchored), the regex runs on a window of
	// before/after bytes around each occurrence; otherwise on the whole input
	// whenever a keyword occurs, as gitleaks does.
	anchored      bool
	before, after int
	// semi: the rule has gitleaks' semi-generic shape
	// `<keyword>[ \t\w.-]{0,20}[\s'"]{0,3}(=|>|:=|...)`; an occurrence not
	// followed by an assignment operator cannot start a match.
	semi bool
}

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
func loadGitleaks(toml string) (rules []glRule, keywords map[string][]int, err error) {
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
	keywords = make(map[string][]int)
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
			cat:         GitleaksCategory(r.RuleID),
			re:          r.Regex,
			secretGroup: r.SecretGroup,
			entropy:     r.Entropy,
			generic:     strings.Contains(r.RuleID, "generic"),
			semi:        strings.Contains(r.Regex.String(), semiGeneric),
		}
		for _, a := range r.Allowlists {
			if a != nil {
				g.allow = append(g.allow, a)
			}
		}
		for _, a := range cfg.Allowlists {
			if a != nil {
				g.allow = append(g.allow, a)
			}
		}
		g.anchored, g.before, g.after = window(r.Regex.String(), r.Keywords)
		idx := len(rules)
		rules = append(rules, g)
		for _, k := range r.Keywords {
			k = strings.ToLower(k)
			if !slices.Contains(keywords[k], idx) {
				keywords[k] = append(keywords[k], idx)
			}
		}
	}
	return rules, keywords, nil
}

// window works out from the regex's syntax whether every match contains one
// of the keywords, and how far a match can reach on each side of one.
func window(expr string, keywords []string) (anchored bool, before, after int) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return false, 0, 0
	}
	re = re.Simplify()
	max := maxLen(re)
	if max < 0 || max > windowCap {
		max = windowCap
	}
	lower := make([]string, len(keywords))
	for i, k := range keywords {
		lower[i] = strings.ToLower(k)
	}
	if !mustContain(re, lower) {
		return false, 0, 0
	}
	// A rule that starts with its keyword needs only one byte of look-behind
	// (for \b); otherwise a match may start up to max bytes before it.
	if lit := leadingLiteral(re); lit != "" {
		for _, k := range lower {
			if strings.HasPrefix(lit, k) {
				return true, 1, max + 1
			}
		}
	}
	return true, max + 1, max + 1
}

// maxLen is the longest match of re in bytes, or -1 when unbounded.
func maxLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += len(string(r))
		}
		return n
	case syntax.OpCharClass, syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		return 4 // one rune, up to four bytes in UTF-8
	case syntax.OpCapture:
		return maxLen(re.Sub[0])
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			m := maxLen(s)
			if m < 0 {
				return -1
			}
			n += m
		}
		return n
	case syntax.OpAlternate:
		n := 0
		for _, s := range re.Sub {
			m := maxLen(s)
			if m < 0 {
				return -1
			}
			if m > n {
				n = m
			}
		}
		return n
	case syntax.OpStar, syntax.OpPlus:
		return -1
	case syntax.OpQuest:
		return maxLen(re.Sub[0])
	case syntax.OpRepeat:
		if re.Max < 0 {
			return -1
		}
		m := maxLen(re.Sub[0])
		if m < 0 {
			return -1
		}
		return m * re.Max
	}
	return 0 // empty-width assertions
}

// litOf returns the lowercase literal text a node always matches, if it is a
// literal or a one-letter case class like [Mm].
func litOf(re *syntax.Regexp) (string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		return strings.ToLower(string(re.Rune)), true
	case syntax.OpCharClass:
		// [Xx]: a case-insensitive single letter.
		if len(re.Rune) == 4 && re.Rune[0] == re.Rune[1] && re.Rune[2] == re.Rune[3] &&
			strings.EqualFold(string(re.Rune[0]), string(re.Rune[2])) {
			return strings.ToLower(string(re.Rune[0])), true
		}
		if len(re.Rune) == 2 && re.Rune[0] == re.Rune[1] {
			return strings.ToLower(string(re.Rune[0])), true
		}
	case syntax.OpCapture:
		return litOf(re.Sub[0])
	}
	return "", false
}

// mustContain reports whether every match of re contains one of kws
// (lowercase). It errs on the side of false.
func mustContain(re *syntax.Regexp, kws []string) bool {
	hit := func(s string) bool {
		for _, k := range kws {
			if strings.Contains(s, k) {
				return true
			}
		}
		return false
	}
	switch re.Op {
	case syntax.OpLiteral, syntax.OpCharClass:
		s, ok := litOf(re)
		return ok && hit(s)
	case syntax.OpCapture:
		return mustContain(re.Sub[0], kws)
	case syntax.OpPlus:
		return mustContain(re.Sub[0], kws)
	case syntax.OpRepeat:
		return re.Min >= 1 && mustContain(re.Sub[0], kws)
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !mustContain(s, kws) {
				return false
			}
		}
		return len(re.Sub) > 0
	case syntax.OpConcat:
		var run strings.Builder
		for _, s := range re.Sub {
			if mustContain(s, kws) {
				return true
			}
			if l, ok := litOf(s); ok {
				run.WriteString(l)
				if hit(run.String()) {
					return true
				}
				continue
			}
			if s.Op == syntax.OpWordBoundary || s.Op == syntax.OpBeginText || s.Op == syntax.OpBeginLine {
				continue
			}
			run.Reset()
		}
	}
	return false
}

// leadingLiteral is the lowercase literal every match starts with.
func leadingLiteral(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral, syntax.OpCharClass:
		s, _ := litOf(re)
		return s
	case syntax.OpCapture:
		return leadingLiteral(re.Sub[0])
	case syntax.OpConcat:
		var b strings.Builder
		for _, s := range re.Sub {
			if s.Op == syntax.OpWordBoundary || s.Op == syntax.OpBeginText {
				if b.Len() == 0 {
					continue
				}
				break
			}
			l, ok := litOf(s)
			if !ok {
				if b.Len() == 0 {
					return leadingLiteral(s)
				}
				break
			}
			b.WriteString(l)
		}
		return b.String()
	}
	return ""
}

// glWin is a window of the input a gitleaks rule must be run on.
type glWin struct {
	rule       int32
	start, end int32
}

// gitleaksHit records the window for rule r around a keyword occurrence at
// [p, e).
func (sc *scanner) gitleaksHit(r int, p, e int) {
	g := &sc.s.rules[r]
	d := sc.data
	if !g.anchored {
		sc.glWins = append(sc.glWins, glWin{int32(r), 0, int32(len(d))})
		return
	}
	if g.semi && !semiFollows(d, e) {
		return
	}
	s := p - g.before
	if g.semi {
		// The match starts inside the identifier that holds the keyword.
		s = p
		for s > 0 && p-s < 100 && (isIdent(d[s-1]) || d[s-1] == '.' || d[s-1] == '-') {
			s--
		}
	}
	en := e + g.after
	if s < 0 {
		s = 0
	}
	if en > len(d) {
		en = len(d)
	}
	// Widen to the surrounding token so a window edge does not cut a value.
	for k := 0; k < 64 && s > 0 && !isSpace(d[s-1]) && d[s-1] != '"' && d[s-1] != '\''; k++ {
		s--
	}
	for k := 0; k < 64 && en < len(d) && !isSpace(d[en]) && d[en] != '"' && d[en] != '\''; k++ {
		en++
	}
	sc.glWins = append(sc.glWins, glWin{int32(r), int32(s), int32(en)})
}

// semiFollows reports whether an assignment operator follows the keyword that
// ends at e, within the reach of semiGeneric.
func semiFollows(d []byte, e int) bool {
	k := e
	for k < len(d) && k-e < 120 && (isIdent(d[k]) || d[k] == '.' || d[k] == '-' || d[k] == ' ' || d[k] == '\t') {
		k++
	}
	for j := 0; j < 3 && k < len(d) && (isSpace(d[k]) || d[k] == '\'' || d[k] == '"' || d[k] == '\f' || d[k] == '\v'); j++ {
		k++
	}
	if k >= len(d) {
		return false
	}
	switch d[k] {
	case '=', '>', ':', '|', '?', ',':
		return true
	}
	return false
}

// runGitleaks runs every rule on its merged windows.
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
		w := ws[i]
		j := i + 1
		for j < len(ws) && ws[j].rule == w.rule && ws[j].start <= w.end {
			if ws[j].end > w.end {
				w.end = ws[j].end
			}
			j++
		}
		sc.runRule(int(w.rule), int(w.start), int(w.end))
		i = j
	}
}

func (sc *scanner) runRule(r, ws, we int) {
	g := &sc.s.rules[r]
	d := sc.data
	win := d[ws:we]
	for _, m := range g.re.FindAllSubmatchIndex(win, -1) {
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
			continue
		}
		if se > me {
			se = me
		}
		secret := win[ss:se]
		if g.entropy != 0 && shannon(secret) <= g.entropy {
			continue
		}
		if sc.glAllowed(g, ws+ms, ws+me, secret) {
			continue
		}
		if placeholder(secret) {
			continue
		}
		if g.generic && genericKeyDenied(win[ms:ss]) {
			continue
		}
		if g.cat == CategoryPrivateKey {
			// gitleaks' lazy body can run past a redacted block into the next
			// one; only a block that parses as real key material counts.
			if _, ok := pemBlock(d, ws+ss); !ok {
				continue
			}
		}
		sc.add(ws+ss, ws+se, g.cat, "gitleaks:"+g.id)
	}
}

// glAllowed applies gitleaks' allowlists (regexes on the secret, the match or
// the line; stop words). Commit and path conditions never hold for a message.
// The inline "gitleaks:allow" marker is deliberately not honoured: a message
// must not be able to switch off its own sanitizing.
func (sc *scanner) glAllowed(g *glRule, ms, me int, secret []byte) bool {
	for _, a := range g.allow {
		var target string
		switch a.RegexTarget {
		case "match":
			target = string(sc.data[ms:me])
		case "line":
			ls, _ := lineBounds(sc.data, ms)
			_, le := lineBounds(sc.data, me)
			target = string(sc.data[ls:le])
		default:
			target = string(secret)
		}
		regexOK := a.RegexAllowed(target)
		stop, _ := a.ContainsStopWord(string(secret))
		if a.MatchCondition == config.AllowlistMatchAnd {
			if len(a.Commits) > 0 || len(a.Paths) > 0 {
				continue
			}
			ok := true
			if len(a.Regexes) > 0 {
				ok = ok && regexOK
			}
			if len(a.StopWords) > 0 {
				ok = ok && stop
			}
			if ok && (len(a.Regexes) > 0 || len(a.StopWords) > 0) {
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
	var buf [160]byte
	var words [16][]byte
	for _, w := range keyWords(prefix[s:e], buf[:0], words[:0]) {
		if denyWords[string(w)] {
			return true
		}
	}
	return false
}
