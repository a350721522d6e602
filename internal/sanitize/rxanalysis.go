package sanitize

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
)

// Static analysis of gitleaks' regular expressions, used to decide where a
// rule can match relative to its keywords so that it runs only there.

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

// finite returns the lowercase strings re can match when that language is
// small (at most limit strings of at most 64 bytes), or nil.
func finite(re *syntax.Regexp, limit int) []string {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpWordBoundary, syntax.OpBeginText, syntax.OpBeginLine,
		syntax.OpEndText, syntax.OpEndLine, syntax.OpNoWordBoundary:
		return []string{""}
	case syntax.OpLiteral:
		return []string{strings.ToLower(string(re.Rune))}
	case syntax.OpCharClass:
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				l := strings.ToLower(string(r))
				if !slices.Contains(out, l) {
					out = append(out, l)
				}
				if len(out) > limit {
					return nil
				}
			}
		}
		return out
	case syntax.OpCapture:
		return finite(re.Sub[0], limit)
	case syntax.OpQuest:
		sub := finite(re.Sub[0], limit)
		if sub == nil || len(sub)+1 > limit {
			return nil
		}
		return append([]string{""}, sub...)
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			sub := finite(s, limit)
			if sub == nil {
				return nil
			}
			for _, x := range sub {
				if !slices.Contains(out, x) {
					out = append(out, x)
				}
			}
			if len(out) > limit {
				return nil
			}
		}
		return out
	case syntax.OpConcat:
		out := []string{""}
		for _, s := range re.Sub {
			sub := finite(s, limit)
			if sub == nil {
				return nil
			}
			out = cross(out, sub, limit)
			if out == nil {
				return nil
			}
		}
		return out
	}
	return nil
}

func cross(a, b []string, limit int) []string {
	if len(a)*len(b) > limit {
		return nil
	}
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			if len(x)+len(y) > 64 {
				return nil
			}
			if z := x + y; !slices.Contains(out, z) {
				out = append(out, z)
			}
		}
	}
	return out
}

// mustContain reports whether every match of re contains one of kws
// (lowercase). It errs on the side of false.
func mustContain(re *syntax.Regexp, kws []string) bool {
	return containsAfter(re, kws, []string{""})
}

// containsAfter reports whether every string p+m, for p in prefix and m a
// match of re, contains one of kws. Carrying the prefix lets a keyword that
// the parser split across a factored alternation (A(?:KIA|SIA)) be seen.
func containsAfter(re *syntax.Regexp, kws []string, prefix []string) bool {
	const limit = 64
	all := func(set []string) bool {
		if len(set) == 0 {
			return false
		}
		for _, s := range set {
			ok := false
			for _, k := range kws {
				if strings.Contains(s, k) {
					ok = true
					break
				}
			}
			if !ok {
				return false
			}
		}
		return true
	}
	if set := finite(re, limit); set != nil {
		if c := cross(prefix, set, limit); c != nil {
			return all(c)
		}
		return all(set)
	}
	switch re.Op {
	case syntax.OpCapture:
		return containsAfter(re.Sub[0], kws, prefix)
	case syntax.OpPlus:
		return containsAfter(re.Sub[0], kws, prefix)
	case syntax.OpRepeat:
		return re.Min >= 1 && containsAfter(re.Sub[0], kws, prefix)
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !containsAfter(s, kws, prefix) {
				return false
			}
		}
		return len(re.Sub) > 0
	case syntax.OpConcat:
		run := prefix
		for _, s := range re.Sub {
			if containsAfter(s, kws, run) {
				return true
			}
			sub := finite(s, limit)
			if sub == nil {
				run = []string{""}
				continue
			}
			if next := cross(run, sub, limit); next != nil {
				run = next
			} else {
				run = sub
			}
			if all(run) {
				return true
			}
		}
	}
	return false
}

// leadInfo describes how a match starts: after optional \b and captures, a
// run of elements with a small finite language (the lead strings). ok is
// false when the regex starts with anything else.
func leadInfo(re *syntax.Regexp) (lead []string, wordB bool, ok bool) {
	const limit = 64 // per element; runs may grow to 4*limit
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	var subs []*syntax.Regexp
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	} else {
		subs = []*syntax.Regexp{re}
	}
	run := []string{""}
	for i, s := range subs {
		for s.Op == syntax.OpCapture {
			s = s.Sub[0]
		}
		if s.Op == syntax.OpWordBoundary && i == 0 {
			wordB = true
			continue
		}
		if f := finite(s, limit); f != nil {
			c := cross(run, f, 4*limit)
			if c == nil {
				break
			}
			run = c
			continue
		}
		if s.Op == syntax.OpAlternate {
			// (?:hvs\.…|s\.…): the union of the branches' leads.
			var union []string
			for _, b := range s.Sub {
				l, _, ok2 := leadInfo(b)
				if !ok2 {
					union = nil
					break
				}
				for _, x := range l {
					if !slices.Contains(union, x) {
						union = append(union, x)
					}
				}
			}
			if union != nil {
				if c := cross(run, union, 4*limit); c != nil {
					run = c
				}
			}
			break
		}
		if s.Op == syntax.OpConcat {
			// A capture around the start: (ey[a-z]...) — descend into it.
			l, wb, ok2 := leadInfo(s)
			if wb {
				wordB = true
			}
			if !ok2 {
				break
			}
			if c := cross(run, l, 4*limit); c != nil {
				run = c
			}
			break
		}
		break
	}
	if len(run) == 1 && run[0] == "" {
		return nil, wordB, false
	}
	return run, wordB, true
}

// keywordOffsets returns, for keyword kw, every offset at which it occurs in
// the lead strings, or nil when some lead string lacks every keyword (then a
// match cannot be located from a keyword hit alone).
func keywordOffsets(lead []string, kws []string, kw string) []int {
	var offs []int
	for _, l := range lead {
		found := false
		for _, k := range kws {
			if strings.Contains(l, k) {
				found = true
			}
		}
		if !found {
			return nil
		}
		for i := 0; i+len(kw) <= len(l); i++ {
			if l[i:i+len(kw)] == kw && !slices.Contains(offs, i) {
				offs = append(offs, i)
			}
		}
	}
	slices.Sort(offs)
	return offs
}

// required lists lowercase literals (3 bytes or more) that every match
// contains, for a cheap substring test before running the regex.
func required(re *syntax.Regexp) []string {
	const limit = 16
	switch re.Op {
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
		return nil
	case syntax.OpAlternate:
		var out []string
		for i, s := range re.Sub {
			r := required(s)
			if i == 0 {
				out = r
				continue
			}
			var keep []string
			for _, x := range out {
				if slices.Contains(r, x) {
					keep = append(keep, x)
				}
			}
			out = keep
		}
		return out
	case syntax.OpConcat:
		var out []string
		run := []string{""}
		flush := func() {
			if len(run) == 1 && len(run[0]) >= 3 && !slices.Contains(out, run[0]) {
				out = append(out, run[0])
			}
			run = []string{""}
		}
		for _, s := range re.Sub {
			f := finite(s, limit)
			if f != nil && len(f) == 1 {
				if c := cross(run, f, limit); c != nil {
					run = c
					continue
				}
			}
			flush()
			for _, x := range required(s) {
				if !slices.Contains(out, x) {
					out = append(out, x)
				}
			}
		}
		flush()
		return out
	}
	if f := finite(re, 1); len(f) == 1 && len(f[0]) >= 3 {
		return f
	}
	return nil
}

// minLen is the shortest match of re in bytes.
func minLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		return len(string(re.Rune))
	case syntax.OpCharClass, syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		return 1
	case syntax.OpCapture, syntax.OpPlus:
		return minLen(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min * minLen(re.Sub[0])
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			n += minLen(s)
		}
		return n
	case syntax.OpAlternate:
		n := -1
		for _, s := range re.Sub {
			if m := minLen(s); n < 0 || m < n {
				n = m
			}
		}
		return max(n, 0)
	}
	return 0
}

// firstCapture returns the first capture group of re, or nil.
func firstCapture(re *syntax.Regexp) *syntax.Regexp {
	if re.Op == syntax.OpCapture {
		return re
	}
	for _, s := range re.Sub {
		if c := firstCapture(s); c != nil {
			return c
		}
	}
	return nil
}

// matchesDelim reports whether re can match whitespace, a quote, a backtick,
// ';' or ',' anywhere.
func matchesDelim(re *syntax.Regexp) bool {
	const delims = " \t\n\r\"'`;,"
	switch re.Op {
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpLiteral:
		return strings.ContainsAny(string(re.Rune), delims)
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for _, c := range delims {
				if re.Rune[i] <= c && c <= re.Rune[i+1] {
					return true
				}
			}
		}
		return false
	}
	for _, s := range re.Sub {
		if matchesDelim(s) {
			return true
		}
	}
	return false
}

// exactLead returns the exact-case strings every match starts with (after a
// leading \b), or nil when they are many or unknown. Case-folded literals
// expand to their variants, so (?i) leads usually give nil.
func exactLead(re *syntax.Regexp) []string {
	const limit = 16
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	run := []string{""}
	for _, s := range subs {
		for s.Op == syntax.OpCapture {
			s = s.Sub[0]
		}
		if s.Op == syntax.OpWordBoundary || s.Op == syntax.OpBeginText {
			continue
		}
		if s.Op == syntax.OpConcat {
			if l := exactLead(s); l != nil {
				if c := cross(run, l, limit); c != nil {
					run = c
				}
			}
			break
		}
		f := exactFinite(s, limit)
		if f == nil {
			break
		}
		c := cross(run, f, limit)
		if c == nil {
			break
		}
		run = c
	}
	if len(run) == 1 && run[0] == "" {
		return nil
	}
	return run
}

// exactFinite is finite without lowercasing: the exact strings re matches.
func exactFinite(re *syntax.Regexp, limit int) []string {
	switch re.Op {
	case syntax.OpLiteral:
		out := []string{""}
		for _, r := range re.Rune {
			alts := []string{string(r)}
			if re.Flags&syntax.FoldCase != 0 {
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					alts = append(alts, string(f))
				}
			}
			out = cross(out, alts, limit)
			if out == nil {
				return nil
			}
		}
		return out
	case syntax.OpCharClass:
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				out = append(out, string(r))
				if len(out) > limit {
					return nil
				}
			}
		}
		return out
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			sub := exactFinite(s, limit)
			if sub == nil {
				return nil
			}
			out = append(out, sub...)
			if len(out) > limit {
				return nil
			}
		}
		return out
	case syntax.OpConcat:
		out := []string{""}
		for _, s := range re.Sub {
			sub := exactFinite(s, limit)
			if sub == nil {
				return nil
			}
			if out = cross(out, sub, limit); out == nil {
				return nil
			}
		}
		return out
	case syntax.OpCapture:
		return exactFinite(re.Sub[0], limit)
	}
	return nil
}

// byteSet is a set of bytes.
type byteSet [4]uint64

func (s *byteSet) add(b byte)      { s[b>>6] |= 1 << (b & 63) }
func (s *byteSet) has(b byte) bool { return s[b>>6]&(1<<(b&63)) != 0 }
func (s *byteSet) addRange(lo, hi byte) {
	for b := int(lo); b <= int(hi); b++ {
		s.add(byte(b))
	}
}

// maxPrefix bounds the sets prefixSets returns: a few bytes already turn
// away almost every start that cannot match.
const maxPrefix = 8

// prefixSets returns, for the first bytes of every match of expr (a regex
// that is run anchored at the start of its input), the set of bytes that
// can stand at that position; every match is at least as long as the list.
// A start whose bytes are not in the sets, or which has fewer bytes left,
// cannot match, so the regex need not run there. The sets over-approximate:
// empty-width assertions (\b, ^, $) are assumed to hold, a position that a
// non-ASCII rune can take admits every byte from 0x80 and ends the list,
// and the list ends where a match can end. Nil when nothing is known.
func prefixSets(expr string) []byteSet {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil
	}
	var cur []uint32
	if runeClosure(prog, uint32(prog.Start), make([]bool, len(prog.Inst)), &cur) {
		return nil
	}
	var sets []byteSet
	for len(sets) < maxPrefix && len(cur) > 0 {
		var set byteSet
		var next []uint32
		seen := make([]bool, len(prog.Inst))
		matchable, wide := false, false
		for _, pc := range cur {
			in := &prog.Inst[pc]
			took := false
			for b := 0; b < 0x80; b++ {
				if in.MatchRune(rune(b)) {
					set.add(byte(b))
					took = true
				}
			}
			if runeAboveASCII(in) {
				set.addRange(0x80, 0xff)
				wide = true
			}
			if took && runeClosure(prog, in.Out, seen, &next) {
				matchable = true
			}
		}
		sets = append(sets, set)
		if matchable || wide {
			break
		}
		cur = next
	}
	return sets
}

// runeClosure appends to out the rune-consuming instructions of prog
// reachable from pc without consuming input (skipping those already in
// seen), and reports whether a match is.
func runeClosure(prog *syntax.Prog, pc uint32, seen []bool, out *[]uint32) bool {
	if seen[pc] {
		return false
	}
	seen[pc] = true
	in := &prog.Inst[pc]
	switch in.Op {
	case syntax.InstMatch:
		return true
	case syntax.InstFail:
		return false
	case syntax.InstAlt, syntax.InstAltMatch:
		m := runeClosure(prog, in.Out, seen, out)
		return runeClosure(prog, in.Arg, seen, out) || m
	case syntax.InstCapture, syntax.InstNop, syntax.InstEmptyWidth:
		return runeClosure(prog, in.Out, seen, out)
	default: // InstRune, InstRune1, InstRuneAny, InstRuneAnyNotNL
		*out = append(*out, pc)
		return false
	}
}

// runeAboveASCII reports whether a rune instruction can match a rune from
// 0x80 up (or an invalid byte, read as U+FFFD). ASCII k and s fold to
// non-ASCII runes (U+212A, U+017F).
func runeAboveASCII(in *syntax.Inst) bool {
	switch in.Op {
	case syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
		return true
	}
	for _, r := range in.Rune {
		if r >= 0x80 {
			return true
		}
	}
	if syntax.Flags(in.Arg)&syntax.FoldCase != 0 {
		for _, r := range "kKsS" {
			if in.MatchRune(r) {
				return true
			}
		}
	}
	return false
}

// prefixOK reports whether d can start a match given sets (prefixSets).
func prefixOK(sets []byteSet, d []byte) bool {
	if len(d) < len(sets) {
		return false
	}
	for i := range sets {
		if !sets[i].has(d[i]) {
			return false
		}
	}
	return true
}

// startPrefix is prefixSets of a regex that is searched for (not run
// anchored), when every match of it starts at the start of the input (it
// opens with ^ or \A); nil otherwise.
func startPrefix(expr string) []byteSet {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil || prog.StartCond()&syntax.EmptyBeginText == 0 {
		return nil
	}
	return prefixSets(expr)
}

// wholeAlphabet returns, for a regex whose every match spans the whole
// input (it opens with ^ or \A and closes with $ or \z, not in multi-line
// mode), the bytes its rune instructions can consume: an input holding any
// other byte cannot match. Nil for other regexes.
func wholeAlphabet(expr string) *byteSet {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 || re.Sub[0].Op != syntax.OpBeginText || re.Sub[len(re.Sub)-1].Op != syntax.OpEndText {
		return nil
	}
	prog, err := syntax.Compile(re)
	if err != nil {
		return nil
	}
	var set byteSet
	for i := range prog.Inst {
		in := &prog.Inst[i]
		switch in.Op {
		case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
		default:
			continue
		}
		for b := 0; b < 0x80; b++ {
			if in.MatchRune(rune(b)) {
				set.add(byte(b))
			}
		}
		if runeAboveASCII(in) {
			set.addRange(0x80, 0xff)
		}
	}
	return &set
}

// within reports whether every byte of d is in set; a nil set holds all.
func within(set *byteSet, d []byte) bool {
	if set == nil {
		return true
	}
	for _, b := range d {
		if !set.has(b) {
			return false
		}
	}
	return true
}
