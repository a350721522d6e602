package sanitize

import (
	"regexp"
	"regexp/syntax"
)

// byteProg runs a regex anchored at the start of its input the way regexp's
// backtracker does (leftmost-first, each instruction and position visited
// once), on bytes: each rune instruction holds the set of ASCII bytes it
// takes, so a step is one bit test where regexp decodes a rune and searches
// the instruction's ranges. It answers only while the text it reads is
// ASCII; at a byte from 0x80 under a rune instruction it gives up and the
// caller runs regexp. Immutable; safe for concurrent use.
type byteProg struct {
	re    *regexp.Regexp
	inst  []syntax.Inst
	sets  []byteSet
	start uint32
	ncap  int // capture slots FindSubmatchIndex reports
}

// newByteProg compiles expr as regexp does (re is the compiled regexp);
// nil when it cannot be run this way.
func newByteProg(re *regexp.Regexp) *byteProg {
	t, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return nil
	}
	prog, err := syntax.Compile(t.Simplify())
	if err != nil || prog.StartCond()&syntax.EmptyBeginText == 0 {
		return nil // not anchored at the start
	}
	p := &byteProg{re: re, inst: prog.Inst, sets: make([]byteSet, len(prog.Inst)), start: uint32(prog.Start), ncap: prog.NumCap}
	if p.ncap != 2*(re.NumSubexp()+1) {
		return nil
	}
	for pc := range prog.Inst {
		in := &prog.Inst[pc]
		switch in.Op {
		case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
			for b := 0; b < 0x80; b++ {
				if in.MatchRune(rune(b)) { // the any-rune instructions hold their range too
					p.sets[pc].add(byte(b))
				}
			}
		case syntax.InstAltMatch:
			return nil // regexp's shortcut to the end of the input: not mirrored
		}
	}
	return p
}

type btJob struct {
	pc  uint32
	arg bool
	pos int
}

// btScratch is one scan's working memory for byteProg.
type btScratch struct {
	jobs    []btJob
	cap     []int
	visited []uint64 // bit pos*len(inst)+pc, cleared up to the furthest row used
	used    int      // words of visited that may be set
}

// find returns re's FindSubmatchIndex(in) (ncap 2: FindIndex), valid until
// the next call with s.
func (p *byteProg) find(in []byte, ncap int, s *btScratch) []int {
	if (len(in)+1)*len(p.inst) > maxVisitBits {
		return findRegexp(p.re, in, ncap) // where regexp too leaves its backtracker
	}
	m, ok := p.run(in, ncap, s)
	if !ok {
		return findRegexp(p.re, in, ncap)
	}
	return m
}

// maxVisitBits bounds byteProg's visit bitmap as regexp bounds its
// backtracker's (256 Kib), so it runs where regexp's backtracker would.
const maxVisitBits = 256 * 1024

func findRegexp(re *regexp.Regexp, in []byte, ncap int) []int {
	if ncap == 2 {
		return re.FindIndex(in)
	}
	return re.FindSubmatchIndex(in)
}

// run is regexp's tryBacktrack from position 0; ok is false when it read a
// byte it cannot decide on.
func (p *byteProg) run(in []byte, ncap int, s *btScratch) (m []int, ok bool) {
	n := len(p.inst)
	rowBits := n
	words := ((len(in)+1)*rowBits + 63) / 64
	if cap(s.visited) < words {
		s.visited = make([]uint64, words)
		s.used = 0
	}
	clear(s.visited[:s.used])
	s.visited = s.visited[:words]
	maxPos := 0
	defer func() {
		s.used = min(len(s.visited), ((maxPos+1)*rowBits+63)/64)
	}()
	visit := func(pc uint32, pos int) bool {
		k := uint(pos*rowBits + int(pc))
		if s.visited[k/64]&(1<<(k%64)) != 0 {
			return false
		}
		s.visited[k/64] |= 1 << (k % 64)
		if pos > maxPos {
			maxPos = pos
		}
		return true
	}
	if cap(s.cap) < 2*ncap {
		s.cap = make([]int, 2*ncap)
	}
	capv, match := s.cap[:ncap], s.cap[ncap:2*ncap]
	for i := range capv {
		capv[i], match[i] = -1, -1
	}
	if ncap > 0 {
		capv[0] = 0
	}
	jobs := s.jobs[:0]
	defer func() { s.jobs = jobs[:0] }()
	push := func(pc uint32, pos int, arg bool) {
		if p.inst[pc].Op != syntax.InstFail && (arg || visit(pc, pos)) {
			jobs = append(jobs, btJob{pc, arg, pos})
		}
	}
	push(p.start, 0, false)
	for len(jobs) > 0 {
		j := jobs[len(jobs)-1]
		jobs = jobs[:len(jobs)-1]
		pc, pos, arg := j.pc, j.pos, j.arg
		for skip := true; ; skip = false {
			if !skip && !visit(pc, pos) {
				break
			}
			it := &p.inst[pc]
			switch it.Op {
			case syntax.InstAlt:
				if arg {
					arg = false
					pc = it.Arg
					continue
				}
				push(pc, pos, true)
				pc = it.Out
				continue
			case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
				if pos >= len(in) {
					break // end of text: no rune instruction matches
				}
				if b := in[pos]; b >= 0x80 {
					return nil, false
				} else if !p.sets[pc].has(b) {
					break
				}
				pos++
				pc = it.Out
				continue
			case syntax.InstCapture:
				if arg {
					capv[it.Arg] = pos
					break
				}
				if int(it.Arg) < len(capv) {
					push(pc, capv[it.Arg], true)
					capv[it.Arg] = pos
				}
				pc = it.Out
				continue
			case syntax.InstEmptyWidth:
				if syntax.EmptyOp(it.Arg)&^emptyContext(in, pos) != 0 {
					break
				}
				pc = it.Out
				continue
			case syntax.InstNop:
				pc = it.Out
				continue
			case syntax.InstMatch:
				if len(capv) == 0 {
					return match, true
				}
				if len(capv) > 1 {
					capv[1] = pos
				}
				copy(match, capv)
				return match, true
			}
			break
		}
	}
	return nil, true
}

// emptyContext is the empty-width flags at pos, as regexp computes them; a
// byte from 0x80 stands for a rune that is neither a word character nor a
// newline, which is what regexp decodes there.
func emptyContext(in []byte, pos int) syntax.EmptyOp {
	r1, r2 := rune(-1), rune(-1)
	if pos > 0 && pos <= len(in) {
		r1 = asciiRune(in[pos-1])
	}
	if pos < len(in) {
		r2 = asciiRune(in[pos])
	}
	return syntax.EmptyOpContext(r1, r2)
}

func asciiRune(b byte) rune {
	if b >= 0x80 {
		return 0xFFFD
	}
	return rune(b)
}
