package sanitize

import (
	"cmp"
	"slices"
)

// minSepHexPairs is the shortest run of separated hex bytes that is joined:
// sixteen bytes, so a MAC address (six) and an IPv6 address written in
// two-digit groups (at most eight) are never read as a key.
const minSepHexPairs = 16

// sepHexRun is a run of hex byte pairs joined by one separator
// (de:ad:be:ef:..., DE-AD-BE-EF-...), in input offsets.
type sepHexRun struct{ s, e int }

// sepHexStride is how far apart findSepHexRuns looks: a run of
// minSepHexPairs pairs or more (47 bytes or more) has a separator that is
// followed by another one within any 38 bytes of it that start two bytes
// after its start, so one look every 32 bytes finds every run.
const sepHexStride = 32

// sepHexByte marks the bytes a run is made of: hex digits, ':', '-' and '.'. Most
// looks stop at the first byte.
var sepHexByte = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdefABCDEF:-.") {
		t[c] = true
	}
	return t
}()

// sepHexKeyReach is how far before a run a key word makes it worth joining.
const sepHexKeyReach = 128

func isHexSep(c byte) bool { return c == ':' || c == '-' || c == '.' }

// findSepHexRuns appends the runs of at least minSepHexPairs hex pairs
// joined by one separator (':', '-' or '.'), with no word character glued
// to either end, in input order.
func findSepHexRuns(d []byte, runs []sepHexRun) []sepHexRun {
	n := len(d)
	for p := 0; p+6 <= n; p += sepHexStride {
		if !sepHexByte[d[p]] || !sepHexByte[d[p+1]] || !sepHexByte[d[p+2]] {
			continue
		}
		q := -1
		for k := max(p, 2); k < p+3 && k+3 < n; k++ {
			if isHexSep(d[k]) && d[k+3] == d[k] && isHex(d[k-2]) && isHex(d[k-1]) && isHex(d[k+1]) && isHex(d[k+2]) {
				q = k
				break
			}
		}
		if q < 0 {
			continue
		}
		sep := d[q]
		s := q - 2
		if s > 0 && isHex(d[s-1]) {
			s = q + 1 // q ends a group of three or more: the run starts after it
		}
		for s >= 3 && d[s-1] == sep && isHex(d[s-2]) && isHex(d[s-3]) && (s == 3 || !isHex(d[s-4])) {
			s -= 3
		}
		pairs, k := 1, s+2
		for k+2 < n && d[k] == sep && isHex(d[k+1]) && isHex(d[k+2]) && (k+3 == n || !isHex(d[k+3])) {
			pairs++
			k += 3
		}
		// A label or a stray group joined by the separator (secret:aa:...,
		// 0:aa:..., ...:aa:0) does not undo the run; a word glued to it does.
		if pairs >= minSepHexPairs && !(s > 0 && isIdent(d[s-1])) && !wordAfter(d, k) {
			runs = append(runs, sepHexRun{s, k})
		}
		p = k - k%sepHexStride // the next look is past the run
	}
	return runs
}

// scanSepHex joins every long run of separated hex pairs (the way tools print
// keys and fingerprints) and scans the text around it again with the run
// joined. A
// finding that touches a joined run marks the whole run: the separators do
// not hide a key that a rule finds in its joined form. A run that no rule
// finds when joined (a certificate fingerprint, a serial number) stays.
func (sc *scanner) scanSepHex() {
	d := sc.data
	var buf [8]sepHexRun
	runs := findSepHexRuns(d, buf[:0])
	if len(runs) == 0 {
		return
	}
	// A finding that already covers part of a run (key e3:e8:..., where
	// "key e3" read as the key) covers all of it: the run is one value.
	for _, h := range sc.hits {
		r, _ := slices.BinarySearchFunc(runs, h.End, func(r sepHexRun, end int) int { return cmp.Compare(r.s, end) })
		if r > 0 && runs[r-1].e > h.Start && (h.Start > runs[r-1].s || h.End < runs[r-1].e) {
			run := runs[r-1]
			sc.add(min(h.Start, run.s), max(h.End, run.e), h.Category, h.Rule)
		}
	}
	// Rescan only for what a joined run could be: hex of text (decoded and
	// scanned then), a value after a key word (an Aho-Corasick hit shortly
	// before or inside it), or one of the node's own secrets. A bare
	// fingerprint in a listing costs no second scan.
	near := make([]bool, len(runs))
	for _, h := range sc.ac {
		st := int(h.start)
		// The first run that ends after the hit starts.
		r, _ := slices.BinarySearchFunc(runs, st, func(run sepHexRun, st int) int { return cmp.Compare(run.e, st+1) })
		if r < len(runs) && runs[r].s-sepHexKeyReach <= st {
			near[r] = true
		}
	}
	keep := runs[:0]
	for r, run := range runs {
		if sc.s.canaries != nil || near[r] || sepHexText(d[run.s:run.e]) {
			keep = append(keep, run)
		}
	}
	if runs = keep; len(runs) == 0 {
		return
	}
	// Each cluster of runs is joined in a window around it: the key words
	// before a run and a little after, not the whole input again.
	for c := 0; c < len(runs); {
		ws, we := widen(d, max(0, runs[c].s-2*sepHexKeyReach), min(len(d), runs[c].e+sepHexAfter))
		e := c + 1
		for e < len(runs) && runs[e].s-2*sepHexKeyReach <= we {
			_, we = widen(d, we, min(len(d), runs[e].e+sepHexAfter))
			e++
		}
		sc.joinSepHex(ws, we, runs[c:e])
		if sc.halted() {
			return
		}
		c = e
	}
}

// sepHexAfter is how far after a run its joined window reaches.
const sepHexAfter = 64

// joinSepHex scans d[ws:we] with the runs in it joined and reports the
// findings that touch a run, each widened to the whole run.
func (sc *scanner) joinSepHex(ws, we int, runs []sepHexRun) {
	d := sc.data
	view := make([]byte, 0, we-ws)
	at := make([]int32, 0, we-ws+1)
	vruns := make([]sepHexRun, len(runs)) // the runs in view offsets
	p := ws
	for r, run := range runs {
		view = append(view, d[p:run.s]...)
		at = appendOffsets(at, p, run.s)
		vruns[r].s = len(view)
		for k := run.s; k < run.e; k += 3 {
			view = append(view, d[k], d[k+1])
			at = append(at, int32(k), int32(k+1))
		}
		vruns[r].e = len(view)
		p = run.e
	}
	view = append(view, d[p:we]...)
	at = appendOffsets(at, p, we)
	at = append(at, int32(we))
	// A dash left at either end of a joined run (key-aa-bb-..., ...-ff-0)
	// would glue it to its neighbour as one dashed token, which the hex
	// decoder reads as a UUID and skips: in the view it is a space.
	for _, v := range vruns {
		if v.s > 0 && view[v.s-1] == '-' {
			view[v.s-1] = ' '
		}
		if v.e < len(view) && view[v.e] == '-' {
			view[v.e] = ' '
		}
	}
	inner, err := sc.s.scan(sc.ctx, view, sc.depth+1)
	if err != nil {
		sc.stop = err
		return
	}
	for _, f := range inner {
		// The runs it touches: from the first that ends after its start.
		r, _ := slices.BinarySearchFunc(vruns, f.Start, func(v sepHexRun, st int) int { return cmp.Compare(v.e, st+1) })
		for ; r < len(vruns) && vruns[r].s < f.End; r++ {
			sc.add(min(int(at[f.Start]), runs[r].s), max(int(at[f.End]), runs[r].e), f.Category, f.Rule)
		}
	}
}

// sepHexText reports whether a run decodes to text.
func sepHexText(run []byte) bool {
	var buf [256]byte
	b := buf[:0]
	for k := 0; k+1 < len(run) && len(b) < len(buf); k += 3 {
		b = append(b, unhex(run[k])<<4|unhex(run[k+1]))
	}
	return textLike(b)
}
