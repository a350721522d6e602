package screen

import (
	"bytes"
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A phrase rule matches a sequence of token slots. Its pattern is written as
// space-separated slots, each a set of alternatives joined by "|":
//
//	"^ignore|disregard ~3 previous|prior ~2 instruction*"
//
// "word" matches the token exactly, "word*" any token with that prefix (at least three
// bytes), "*word" any token with that suffix (not in the first slot of a longer rule),
// "!a|b" a token that is none of these, or the end of the sentence. "~N" before a slot
// lets up to N other tokens come between it and the previous slot; gaps never cross a
// sentence break. A leading "^" anchors the first slot at the start of a sentence.
type phraseRule struct {
	anchor bool // the first slot must start a sentence
	id     string
	code   string
	weight float64
	opts   ruleOpts
	slots  []slot
	// qualifiable: an English override whose last word is the object ("... previous
	// instructions"); a qualifying noun before it weakens the match.
	qualifiable bool
}

type ruleOpts uint8

const (
	optNeg   ruleOpts = 1 << iota // a negation just before it ("do not ignore ...") weakens it
	optHedge                      // a condition in the same sentence ("if", "unless") weakens it
	optQuote                      // quoted inside text that discusses attacks weakens it
)

type slot struct {
	gap      int
	neg      bool // "!a|b": the next token, if any in the sentence, is none of these; consumes it
	words    map[string]bool
	sigs     [1024 / 64]uint64 // wordSig mod 1024 of words: most misses skip the map
	prefixes []string
	suffixes []string
}

func (s *slot) matches(t string) bool {
	if len(t) > 0 {
		if k := wordSig(t) % 1024; s.sigs[k/64]&(1<<(k%64)) != 0 && s.words[t] {
			return true
		}
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	for _, p := range s.suffixes {
		if strings.HasSuffix(t, p) && len(t) > len(p) {
			return true
		}
	}
	return false
}

// A pattern rule is a regular expression over the folded, lowercased text (or, with
// original set, over the NFKC text with its case), run only when one of its literals
// occurs, so clean text costs a few substring searches.
type patternRule struct {
	id       string
	code     string
	weight   float64
	lits     []string
	re       *regexp.Regexp
	original bool
	notAfter []string // the match does not count right after one of these (negations)
	minCount int      // matches needed; 0 means 1
	cjk      bool     // run only on text with Han, kana or hangul
}

type ruleSet struct {
	phrases   []phraseRule
	first     map[string][]int     // first-slot word -> phrase rules
	firstPre  map[uint32][]int     // first three bytes of a first-slot prefix (key3) -> phrase rules
	suffixed  []int                // single-slot rules with suffix alternatives
	suffixes  []string             // all their suffixes
	sufLast   [256 / 64]uint64     // the last bytes of the suffixes: most words end otherwise
	prePairs  [1 << 10 / 64]uint64 // prePair of first-slot prefixes
	firstSigs [1 << 13 / 64]uint64 // firstSig of first-slot words
	patterns  []patternRule
	lits      litFilter
	cues      map[string]bool // words that suggest discussion of attacks
	// overrideObject are the words that may stand right before the object of an
	// override ("all previous instructions", "your rules"); any other word there
	// qualifies the object ("the old VPN instructions").
	overrideObject map[string]bool
	negs           map[string]bool
	hedges         map[string]bool
}

func compilePhrase(id, code string, weight float64, opts ruleOpts, pat string) (phraseRule, bool, error) {
	r := phraseRule{id: id, code: code, weight: weight, opts: opts}
	switch id {
	case "ovr-prev-strong", "ovr-prev-medium", "ovr-det-strong", "ovr-bare-strong":
		r.qualifiable = true
	}
	anchored := false
	gap := 0
	for i, f := range strings.Fields(pat) {
		if i == 0 && strings.HasPrefix(f, "^") {
			anchored = true
			f = f[1:]
		}
		if strings.HasPrefix(f, "~") {
			n, err := strconv.Atoi(f[1:])
			if err != nil || n < 0 || n > 8 {
				return r, false, fmt.Errorf("rule %s: bad gap %q", id, f)
			}
			gap = n
			continue
		}
		s := slot{gap: gap, words: map[string]bool{}}
		gap = 0
		if strings.HasPrefix(f, "!") {
			if len(r.slots) == 0 || s.gap != 0 {
				return r, false, fmt.Errorf("rule %s: negative slot %q first or after a gap", id, f)
			}
			s.neg = true
			f = f[1:]
		}
		for _, alt := range strings.Split(f, "|") {
			switch {
			case alt == "":
				return r, false, fmt.Errorf("rule %s: empty alternative in %q", id, f)
			case strings.HasSuffix(alt, "*"):
				if len(alt) < 4 {
					return r, false, fmt.Errorf("rule %s: prefix %q shorter than three bytes", id, alt)
				}
				s.prefixes = append(s.prefixes, alt[:len(alt)-1])
			case strings.HasPrefix(alt, "*"):
				s.suffixes = append(s.suffixes, alt[1:])
			default:
				s.words[alt] = true
				k := wordSig(alt) % 1024
				s.sigs[k/64] |= 1 << (k % 64)
			}
		}
		r.slots = append(r.slots, s)
	}
	if len(r.slots) == 0 {
		return r, false, fmt.Errorf("rule %s: empty pattern", id)
	}
	if len(r.slots[0].suffixes) > 0 && len(r.slots) > 1 {
		return r, false, fmt.Errorf("rule %s: suffix alternatives in the first slot of a multi-slot rule", id)
	}
	if r.slots[0].neg {
		return r, false, fmt.Errorf("rule %s: negative first slot", id)
	}
	if r.slots[0].gap != 0 {
		return r, false, fmt.Errorf("rule %s: gap before the first slot", id)
	}
	r.anchor = anchored
	return r, anchored, nil
}

// wordSig is a 16-bit signature of a non-empty word (its length, first, middle and
// last bytes): a bit test on it keeps most words that start no phrase out of the map.
func wordSig(w string) uint16 {
	k := uint32(w[0]) | uint32(w[len(w)/2])<<8 | uint32(w[len(w)-1])<<16 | uint32(len(w))<<24
	return uint16((k * 2654435761) >> 16)
}

// firstSig and prePair index the bitmaps in front of the first-slot maps: 1 KiB and
// 128 bytes, so the phrase scan touches few cache lines. A shared bit only costs a
// map lookup that misses.
func firstSig(w string) uint16 { return wordSig(w) % (1 << 13) }

func prePair(c0, c1 byte) uint16 { return uint16(c0&31)<<5 | uint16(c1&31) }

// key3 packs the first three bytes of s (len(s) >= 3) into a map key.
func key3(s string) uint32 { return uint32(s[0])<<16 | uint32(s[1])<<8 | uint32(s[2]) }

func (rs *ruleSet) addPhrase(r phraseRule, anchored bool) {
	idx := len(rs.phrases)
	rs.phrases = append(rs.phrases, r)
	s := r.slots[0]
	for w := range s.words {
		rs.first[w] = append(rs.first[w], idx)
		k := firstSig(w)
		rs.firstSigs[k/64] |= 1 << (k % 64)
	}
	for _, p := range s.prefixes {
		rs.firstPre[key3(p)] = append(rs.firstPre[key3(p)], idx)
		k := prePair(p[0], p[1])
		rs.prePairs[k/64] |= 1 << (k % 64)
	}
	if len(s.suffixes) > 0 {
		rs.suffixed = append(rs.suffixed, idx)
		rs.suffixes = append(rs.suffixes, s.suffixes...)
		for _, suf := range s.suffixes {
			if suf == "" {
				rs.sufLast = [4]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
				continue
			}
			c := suf[len(suf)-1]
			rs.sufLast[c/64] |= 1 << (c % 64)
		}
	}
}

// match reports whether rule r matches with its first slot at token i, and the index
// of the last matched token.
func (r *phraseRule) match(toks *tokens, i int) (int, bool) {
	return matchFrom(r.slots, toks, 1, i)
}

func matchFrom(slots []slot, toks *tokens, k, prev int) (int, bool) {
	if k == len(slots) {
		return prev, true
	}
	s := &slots[k]
	if s.neg {
		j := prev + 1
		if j >= len(toks.t) || toks.t[j].brk {
			return matchFrom(slots, toks, k+1, prev)
		}
		if s.matches(toks.word(j)) {
			return 0, false
		}
		return matchFrom(slots, toks, k+1, j)
	}
	for j := prev + 1; j <= prev+1+s.gap && j < len(toks.t); j++ {
		if toks.t[j].brk {
			return 0, false
		}
		if s.matches(toks.word(j)) {
			if end, ok := matchFrom(slots, toks, k+1, j); ok {
				return end, true
			}
		}
	}
	return 0, false
}

// matchPhrases adds a signal for every phrase rule that matches f.
// meta is the number of distinct meta cues in the text (see concepts.go): text that
// discusses attacks, quotes prompts or is code.
func (rs *ruleSet) matchPhrases(f *folded, acc *accumulator, meta int) {
	m := phraseMatcher{rs: rs, toks: f.toks, acc: acc, discussion: -1, meta: meta, found: new(phraseHits)}
	for i := range f.toks.t {
		t := f.toks.word(i)
		if len(t) == 0 {
			continue
		}
		if k := firstSig(t); rs.firstSigs[k/64]&(1<<(k%64)) != 0 {
			for _, idx := range rs.first[t] {
				m.try(idx, i, true)
			}
		}
		// The bitmap first, then the length: few words pass the bitmap, while
		// short and long words alternate unpredictably.
		if k := prePair(t[0], t[min(1, len(t)-1)]); rs.prePairs[k/64]&(1<<(k%64)) != 0 && len(t) >= 3 {
			for _, idx := range rs.firstPre[key3(t)] {
				m.try(idx, i, false)
			}
		}
		if c := t[len(t)-1]; rs.sufLast[c/64]&(1<<(c%64)) == 0 {
			continue
		}
		for _, suf := range rs.suffixes {
			if strings.HasSuffix(t, suf) {
				for _, idx := range rs.suffixed {
					m.try(idx, i, false)
				}
				break
			}
		}
	}
	m.flush()
}

// phraseHits are the rules matched so far, one hit per rule.
type phraseHits struct {
	hits   []hit
	byRule map[int]int // rule index -> its hit in hits
}

type phraseMatcher struct {
	rs         *ruleSet
	toks       tokens // a copy of the header, so the folded text need not move to the heap
	acc        *accumulator
	discussion int         // -1 until computed, then 0 or 1
	meta       int         // distinct meta cues in the text
	found      *phraseHits // behind a pointer: growing it in place would move m and acc to the heap
}

func (m *phraseMatcher) try(idx, i int, firstMatched bool) {
	rs, toks := m.rs, &m.toks
	r := &rs.phrases[idx]
	if r.anchor && !toks.t[i].brk {
		return
	}
	if !firstMatched && !r.slots[0].matches(toks.word(i)) {
		return
	}
	end, ok := r.match(toks, i)
	if !ok {
		return
	}
	w := r.weight
	if r.opts&optNeg != 0 && rs.negated(toks, i) {
		w *= 0.3
	}
	if r.opts&optHedge != 0 && rs.hedged(toks, i, end) {
		w *= 0.5
	}
	quoted := allQuoted(toks, i, end)
	if r.opts&optQuote != 0 && quoted && m.discusses() {
		w *= 0.5
	}
	w *= metaFactor(m.meta, quoted)
	if r.qualifiable && end > i && !rs.overrideObject[toks.word(end-1)] {
		// "ignore the old VPN instructions", "forget the setup steps": a noun qualifies
		// the instructions, so they are instructions about something, not the reader's.
		w *= 0.2
	}
	h := hit{rule: r, start: i, end: end, weight: w}
	for j := i; j <= end; j++ {
		if toks.t[j].folded {
			h.folded = true
			break
		}
	}
	// A rule counts once, so one hit per rule is enough: the strongest, else the first.
	// That also keeps flush quadratic in the number of rules, not of matches.
	fh := m.found
	if k, ok := fh.byRule[idx]; ok {
		if w > fh.hits[k].weight {
			fh.hits[k] = h
		}
		return
	}
	if fh.byRule == nil {
		fh.byRule = make(map[int]int)
	}
	fh.byRule[idx] = len(fh.hits)
	fh.hits = append(fh.hits, h)
}

// discusses reports whether the text has words of a discussion about attacks, so a
// quoted attack phrase in it is more likely an example than an attack.
func (m *phraseMatcher) discusses() bool {
	if m.discussion < 0 {
		m.discussion = 0
		for i := range m.toks.t {
			if m.rs.cues[m.toks.word(i)] {
				m.discussion = 1
				break
			}
		}
	}
	return m.discussion == 1
}

// negated reports a negation within the two tokens before i in the same sentence, or
// right after it as German places it ("vergiss nicht").
func (rs *ruleSet) negated(toks *tokens, i int) bool {
	if i+1 < len(toks.t) && !toks.t[i+1].brk {
		switch toks.word(i + 1) {
		case "nicht", "nie", "niemals", "keinesfalls":
			return true
		}
	}
	for j := i - 1; j >= 0 && j >= i-2; j-- {
		if rs.negs[toks.word(j)] {
			return true
		}
		if toks.t[j].brk {
			break
		}
	}
	return false
}

// hedgeWindow bounds how far hedged looks, so a text without sentence breaks stays linear.
const hedgeWindow = 16

// hedged reports a conditional word in the sentence around toks[i..end], within
// hedgeWindow tokens.
func (rs *ruleSet) hedged(toks *tokens, i, end int) bool {
	for j := i; j >= 0 && j >= i-hedgeWindow; j-- {
		if rs.hedges[toks.word(j)] {
			return true
		}
		if toks.t[j].brk {
			break
		}
	}
	for j := end + 1; j < len(toks.t) && j <= end+hedgeWindow && !toks.t[j].brk; j++ {
		if rs.hedges[toks.word(j)] {
			return true
		}
	}
	return false
}

func allQuoted(toks *tokens, i, end int) bool {
	for j := i; j <= end; j++ {
		if !toks.t[j].quoted {
			return false
		}
	}
	return true
}

// litFilter finds, in one pass, which pattern rules have one of their literals in a
// text: a bitmap of two-byte prefixes rejects most positions with one load. Its tables
// are small (2 KiB of bitmap, the entries in one array) so that the scan stays in the
// L1 cache beside the other detectors'.
type litFilter struct {
	pairSet   [1 << 14 / 64]uint64 // pairKey of the literals' first two bytes
	pair      [1 << 14]uint8       // pairKey -> 1 + index into lists and spans, 0 for none
	lists     [][]litEntry         // the entries of each key, while adding
	ents      []litEntry           // lists, flattened
	spans     []uint16             // per key: start<<8 | count in ents
	triSet    [1 << 12 / 64]uint64 // triKey of the first three bytes of the longer literals
	shortLead []byte               // first bytes of the two-byte literals, each once
	single    [256]uint64          // one-byte literals: the rules they gate
	hasSingle bool                 // some literal is one byte long
}

type litEntry struct {
	head  uint64 // the literal's first eight bytes (fewer for a shorter one), little-endian,
	mask  uint64 // and the bits of head that count
	lit   string
	rules uint64 // bit i: pattern rule i
}

// loadUpTo8 reads up to eight bytes of s as a little-endian word.
func loadUpTo8(s string) uint64 {
	if len(s) >= 8 {
		return load8(s)
	}
	var w uint64
	for k := len(s) - 1; k >= 0; k-- {
		w = w<<8 | uint64(s[k])
	}
	return w
}

func newLitEntry(lit string, rules uint64) litEntry {
	n := min(len(lit), 8)
	return litEntry{head: loadUpTo8(lit[:n]), mask: ^uint64(0) >> (64 - 8*n), lit: lit, rules: rules}
}

// at reports whether the literal occurs at the start of s, whose first eight bytes
// (or fewer) are w.
func (e *litEntry) at(s string, w uint64) bool {
	if w&e.mask != e.head || len(s) < len(e.lit) {
		return false
	}
	return len(e.lit) <= 8 || s[8:len(e.lit)] == e.lit[8:]
}

// pairKey folds two bytes to 14 bits. Distinct ASCII pairs keep distinct keys; a key
// shared with non-ASCII bytes only costs a prefix comparison that fails.
func pairKey(c0, c1 byte) uint16 { return uint16(c0&0x7f)<<7 | uint16(c1&0x7f) }

// triKey hashes three bytes, packed as w's low 24 bits (the first two folded as in
// pairKey), to 12 bits: a pair that starts a literal is common in prose ("in", "st"),
// its next byte rarely fits. The packing lets scan roll w one byte at a time.
func triKey(w uint32) uint32 { return (w & 0x7f7fff) * 0x9E3779B1 >> 20 }

func (lf *litFilter) add(lit string, rule int) error {
	if rule >= 64 {
		return fmt.Errorf("more than 64 gated pattern rules")
	}
	if len(lit) == 1 {
		lf.single[lit[0]] |= 1 << rule
		lf.hasSingle = true
		return nil
	}
	k := pairKey(lit[0], lit[1])
	if lf.pair[k] == 0 {
		if len(lf.lists) == 255 {
			return fmt.Errorf("more than 255 literal prefixes")
		}
		lf.lists = append(lf.lists, nil)
		lf.pair[k] = uint8(len(lf.lists))
		lf.pairSet[k/64] |= 1 << (k % 64)
	}
	es := &lf.lists[lf.pair[k]-1]
	found := false
	for i := range *es {
		if (*es)[i].lit == lit {
			(*es)[i].rules |= 1 << rule
			found = true
		}
	}
	if !found {
		*es = append(*es, newLitEntry(lit, 1<<rule))
	}
	if len(lit) == 2 {
		if bytes.IndexByte(lf.shortLead, lit[0]) < 0 {
			lf.shortLead = append(lf.shortLead, lit[0])
		}
	} else {
		t := triKey(uint32(lit[0])<<16 | uint32(lit[1])<<8 | uint32(lit[2]))
		lf.triSet[t/64] |= 1 << (t % 64)
	}
	lf.ents, lf.spans = lf.ents[:0], lf.spans[:0]
	for _, l := range lf.lists {
		if len(lf.ents) > 255 || len(l) > 255 {
			return fmt.Errorf("more than 255 literals")
		}
		lf.spans = append(lf.spans, uint16(len(lf.ents))<<8|uint16(len(l)))
		lf.ents = append(lf.ents, l...)
	}
	return nil
}

// from adds to found the rules of the literals that start s.
func (lf *litFilter) from(s string, found uint64) uint64 {
	k := pairKey(s[0], s[1])
	if lf.pairSet[(k>>6)&(1<<14/64-1)]&(1<<(k%64)) == 0 {
		return found
	}
	sp := lf.spans[lf.pair[k&(1<<14-1)]-1]
	w := loadUpTo8(s)
	for j := range lf.ents[sp>>8 : sp>>8+sp&0xFF] {
		e := &lf.ents[int(sp>>8)+j]
		if found&e.rules != e.rules && e.at(s, w) {
			found |= e.rules
		}
	}
	return found
}

// scan returns the set of rules gated by literals found in text.
func (lf *litFilter) scan(text string) uint64 {
	var found uint64
	if lf.hasSingle {
		for i := 0; i < len(text); i++ {
			found |= lf.single[text[i]]
		}
	}
	if len(text) < 2 {
		return found
	}
	// A literal of three bytes or more starting at i-2 has its first three bytes in
	// triSet, which is rare in prose (the pair bitmap's test passed at about one byte
	// in six); keeping the call to from out of the inner loop keeps its state in
	// registers. Two-byte literals start with a few bytes of punctuation, found by
	// IndexByte's vector search. A position looked at twice only repeats a union.
	w := uint32(text[0])<<8 | uint32(text[1]) // the last three bytes read, low byte last
	for i := 2; i < len(text); i++ {
		for ; i < len(text); i++ {
			w = w<<8 | uint32(text[i])
			if t := triKey(w); lf.triSet[t/64&(1<<12/64-1)]&(1<<(t%64)) != 0 {
				break
			}
		}
		if i == len(text) {
			break
		}
		found = lf.from(text[i-2:], found)
	}
	for _, c := range lf.shortLead {
		for i := 0; i < len(text)-1; i++ {
			k := strings.IndexByte(text[i:len(text)-1], c)
			if k < 0 {
				break
			}
			i += k
			found = lf.from(text[i:], found)
		}
	}
	return found
}

// matchPatterns adds a signal for every pattern rule that matches.
func (rs *ruleSet) matchPatterns(f *folded, original string, acc *accumulator, meta int) {
	gated := rs.lits.scan(f.text)
	for i := range rs.patterns {
		p := &rs.patterns[i]
		if acc.has(p.id) && p.minCount == 0 {
			continue
		}
		if p.cjk && !f.hasCJK {
			continue
		}
		text := f.text
		if p.original {
			text = original
		}
		if len(p.lits) > 0 {
			if p.original {
				if !containsAny(text, p.lits) {
					continue
				}
			} else if gated&(1<<i) == 0 {
				continue
			}
		}
		need := max(p.minCount, 1)
		n := 0
		for _, loc := range p.re.FindAllStringIndex(text, need+8) {
			if notAfter(text[:loc[0]], p.notAfter) {
				continue
			}
			n++
			if n >= need {
				acc.add(signal{id: p.id, code: p.code, weight: p.weight * metaFactor(meta, false)})
				break
			}
		}
	}
}

func containsAny(s string, lits []string) bool {
	for _, l := range lits {
		if strings.Contains(s, l) {
			return true
		}
	}
	return false
}

func notAfter(before string, negs []string) bool {
	if len(negs) == 0 {
		return false
	}
	if len(before) > 12 {
		before = before[len(before)-12:]
	}
	for _, n := range negs {
		if strings.HasSuffix(before, n) {
			return true
		}
	}
	return false
}

// hit is one phrase match before overlaps are resolved.
type hit struct {
	rule       *phraseRule
	start, end int // token span, inclusive
	weight     float64
	folded     bool
}

// flush adds the matches as signals. Matches of the same code whose spans overlap are
// one piece of evidence said once, so only the strongest of them counts.
func (m *phraseMatcher) flush() {
	hits := m.found.hits
	slices.SortStableFunc(hits, func(a, b hit) int { return cmp.Compare(b.weight, a.weight) })
	var kept []hit
	for _, h := range hits {
		dup := false
		for _, k := range kept {
			if k.rule.code == h.rule.code && h.start <= k.end && k.start <= h.end {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		kept = append(kept, h)
		m.acc.add(signal{id: h.rule.id, code: h.rule.code, weight: h.weight})
		if h.folded {
			m.acc.add(signal{id: "homoglyph-lookalike", code: "homoglyph:lookalike", weight: 0.4})
		}
	}
}

// metaFactor weakens a match in text that discusses attacks, quotes prompts or is
// code: a quoted match there counts a fifth, others half (two or more meta cues) or
// four fifths (one).
func metaFactor(meta int, quoted bool) float64 {
	switch {
	case meta >= 1 && quoted:
		return 0.2
	case meta >= 2:
		return 0.5
	case meta == 1:
		return 0.8
	}
	return 1
}
