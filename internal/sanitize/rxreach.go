package sanitize

import (
	"regexp/syntax"
)

// reachNFA bounds where a regex run anchored at the start of its input can
// end, by simulating its program over bytes without captures and with every
// empty-width assertion (\b, ^, $) taken to hold. The simulation
// over-approximates the matches, so "no match" is exact and the bound is
// safe: regexp then runs on a window just past the bound (its fast
// backtracker on a small visit bitmap), or not at all, instead of on a
// window sized for the longest possible match, where a failing attempt on a
// long token costs tens of microseconds.
type reachNFA struct {
	insts []reachInst
	start []uint32 // the rune-consuming instructions reachable at the start
	acc0  bool     // the empty match is possible
}

type reachInst struct {
	set  byteSet  // the ASCII bytes it consumes
	wide bool     // it can consume a rune from 0x80 up (or an invalid byte)
	next []uint32 // the rune-consuming instructions reachable after it
	acc  bool     // a match is reachable after it
}

// reachScratch is one scan's working memory for reachNFA.maxEnd.
type reachScratch struct {
	cur, next []uint32
	mark      []uint32
	stamp     uint32
}

// newReachNFA compiles expr as regexp does; nil when it does not compile.
func newReachNFA(expr string) *reachNFA {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil
	}
	n := &reachNFA{insts: make([]reachInst, len(prog.Inst))}
	n.acc0 = runeClosure(prog, uint32(prog.Start), make([]bool, len(prog.Inst)), &n.start)
	for pc := range prog.Inst {
		in := &prog.Inst[pc]
		switch in.Op {
		case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
		default:
			continue
		}
		ri := &n.insts[pc]
		for b := 0; b < 0x80; b++ {
			if in.MatchRune(rune(b)) {
				ri.set.add(byte(b))
			}
		}
		ri.wide = runeAboveASCII(in)
		ri.acc = runeClosure(prog, in.Out, make([]bool, len(prog.Inst)), &ri.next)
	}
	return n
}

// maxEnd returns the largest end of a match of the regex in in (run
// anchored at its start), or -1 when there is none. ok is false when the
// simulation cannot tell: a byte from 0x80 where a live instruction takes
// non-ASCII runes (their bytes would need decoding).
func (n *reachNFA) maxEnd(in []byte, s *reachScratch) (end int, ok bool) {
	if len(s.mark) < len(n.insts) {
		s.mark = make([]uint32, len(n.insts))
		s.stamp = 0
	}
	end = -1
	if n.acc0 {
		end = 0
	}
	cur := append(s.cur[:0], n.start...)
	next := s.next[:0]
	defer func() { s.cur, s.next = cur[:0], next[:0] }()
	for i := 0; i < len(in) && len(cur) > 0; i++ {
		b := in[i]
		s.stamp++
		if s.stamp == 0 { // wrapped: old marks could collide
			clear(s.mark)
			s.stamp = 1
		}
		next = next[:0]
		for _, pc := range cur {
			ri := &n.insts[pc]
			if b >= 0x80 {
				if ri.wide {
					return 0, false
				}
				continue
			}
			if !ri.set.has(b) {
				continue
			}
			if ri.acc {
				end = i + 1
			}
			for _, q := range ri.next {
				if s.mark[q] != s.stamp {
					s.mark[q] = s.stamp
					next = append(next, q)
				}
			}
		}
		cur, next = next, cur
	}
	return end, true
}

// noneFrom reports that no run of the regex anchored at any start in
// [from, injEnd) of d, on a window ending at or before simEnd, can match:
// one simulation with the start states added at every such position (the
// union of all those runs). Bytes from 0x80 are taken as any rune's: a live
// instruction that takes non-ASCII runes both stays (more of the rune's
// bytes) and completes. The simulation over-approximates, so true is exact;
// it costs one pass over [from, simEnd) where a run per start would cost
// one window per start.
func (n *reachNFA) noneFrom(d []byte, from, injEnd, simEnd int, s *reachScratch) bool {
	if n.acc0 {
		return false
	}
	if len(s.mark) < len(n.insts) {
		s.mark = make([]uint32, len(n.insts))
		s.stamp = 0
	}
	cur, next := s.cur[:0], s.next[:0]
	defer func() { s.cur, s.next = cur[:0], next[:0] }()
	for i := from; i < simEnd; i++ {
		s.stamp++
		if s.stamp == 0 {
			clear(s.mark)
			s.stamp = 1
		}
		// Mark what is live at i so the injected starts are not duplicated.
		for _, pc := range cur {
			s.mark[pc] = s.stamp
		}
		if i < injEnd {
			for _, pc := range n.start {
				if s.mark[pc] != s.stamp {
					s.mark[pc] = s.stamp
					cur = append(cur, pc)
				}
			}
		} else if len(cur) == 0 {
			return true
		}
		s.stamp++
		if s.stamp == 0 {
			clear(s.mark)
			s.stamp = 1
		}
		b := d[i]
		next = next[:0]
		for _, pc := range cur {
			ri := &n.insts[pc]
			if b >= 0x80 {
				if !ri.wide {
					continue
				}
				if s.mark[pc] != s.stamp {
					s.mark[pc] = s.stamp
					next = append(next, pc)
				}
			} else if !ri.set.has(b) {
				continue
			}
			if ri.acc {
				return false
			}
			for _, q := range ri.next {
				if s.mark[q] != s.stamp {
					s.mark[q] = s.stamp
					next = append(next, q)
				}
			}
		}
		cur, next = next, cur
	}
	return true
}
