package sanitize

import (
	"bytes"
	"slices"
	"strings"
)

// A value that a wrapping tool broke across lines of one string (a key in a
// fixed-width log, a card number folded in an email, a JSON string with \n
// inside a token) is still that value. The breaks that may split a value are
// joined in a view of the text around them and the view is scanned; a finding
// counts when it spans a join.

// joinReach is how far around a break the joined view reaches: far enough
// for a value and the key or label before it, near enough that the views
// of all breaks together stay linear in the input.
const joinReach = 128

// tokenReach bounds the walk over the pieces either side of a break.
const tokenReach = 64

type lineBreak struct{ s, e int } // the newline, its escape or \r\n, and the indentation after

// breakAt reads a line break at i: a newline (after an optional \r) or a
// JSON \n escape (after an optional \r escape), with the spaces and tabs
// that indent the continuation.
func breakAt(d []byte, i int) (lineBreak, bool) {
	var b lineBreak
	switch {
	case d[i] == '\n':
		b = lineBreak{i, i + 1}
		if i > 0 && d[i-1] == '\r' {
			b.s = i - 1
		}
	case d[i] == '\\' && i+1 < len(d) && d[i+1] == 'n' && !escapedAt(d, i):
		b = lineBreak{i, i + 2}
		if i >= 2 && d[i-2] == '\\' && d[i-1] == 'r' && !escapedAt(d, i-2) {
			b.s = i - 2
		}
	default:
		return b, false
	}
	for b.e < len(d) && (d[b.e] == ' ' || d[b.e] == '\t') {
		b.e++
	}
	return b, true
}

func tokenByte(c byte) bool {
	return isAlnum(c) || c == '@' || c == '.' || c == '+' || c == '/' || c == '_' || c == '-'
}

// valuePiece reports whether a piece of a split token looks like part of a
// value rather than a word of prose: it has a digit or an @, or is long.
func valuePiece(p []byte) bool {
	for _, c := range p {
		if isDigit(c) || c == '@' {
			return true
		}
	}
	return len(p) >= 8
}

// joinEdge reports whether c may sit next to a break inside a split value:
// a letter or digit, or a separator values hold (acme-prod-\n7f3e, a_\nb).
func joinEdge(c byte) bool {
	return isAlnum(c) || c == '-' || c == '_' || c == '+' || c == '/'
}

// joinable reports whether a break splits a token: a letter, digit or
// value separator on both sides, and both pieces look like parts of a value.
func joinable(d []byte, b lineBreak) bool {
	if b.s == 0 || b.e >= len(d) || !joinEdge(d[b.s-1]) || !joinEdge(d[b.e]) || escapedAt(d, b.s-1) {
		return false
	}
	ps := b.s
	for ps > 0 && b.s-ps < tokenReach && tokenByte(d[ps-1]) && !escapedAt(d, ps-1) {
		ps--
	}
	pe := b.e
	for pe < len(d) && pe-b.e < tokenReach && tokenByte(d[pe]) {
		pe++
	}
	// The next line starting with a key (IMAGE_TAG: x, id=7), a field
	// (1001,Ann) or a timestamp begins a record of its own.
	if pe < len(d) && strings.IndexByte(":=,;|\t", d[pe]) >= 0 || pe-b.e >= 10 && isDate(d[b.e:]) {
		return false
	}
	return valuePiece(d[ps:b.s]) && valuePiece(d[b.e:pe])
}

// isDate reports whether p starts with yyyy-mm-dd.
func isDate(p []byte) bool {
	return len(p) >= 10 && allDigits(p[:4]) && p[4] == '-' && allDigits(p[5:7]) && p[7] == '-' && allDigits(p[8:10])
}

// scanLineJoins scans the text around every joinable break with the break
// removed, and reports what the join revealed.
func (sc *scanner) scanLineJoins() {
	d := sc.data
	var brks []lineBreak
	ws, we := -1, -1
	pemEnd := -1 // inside a PEM block up to here: the PEM detector reads those lines
	noEnd := false
	// The next "-----BEGIN " at or after a break: the look for one within
	// 16 bytes of the break runs only when it is that near.
	begin := bytes.Index(d, []byte("-----BEGIN "))
	for i := nextBreakByte(d, 0); i < len(d); i = nextBreakByte(d, i+1) {
		if begin >= 0 && begin < i {
			if k := bytes.Index(d[i:], []byte("-----BEGIN ")); k >= 0 {
				begin = i + k
			} else {
				begin = -1
			}
		}
		if i > pemEnd && !noEnd && begin >= 0 && begin+len("-----BEGIN ") <= i+16 {
			if k := bytes.Index(d[i:min(len(d), i+16)], []byte("-----BEGIN ")); k >= 0 {
				if e := bytes.Index(d[i+k:], []byte("-----END ")); e >= 0 {
					pemEnd = i + k + e
				} else {
					noEnd = true // and none after a later BEGIN either
				}
			}
		}
		if i < pemEnd {
			continue
		}
		b, ok := breakAt(d, i)
		if !ok {
			continue
		}
		i = b.e - 1
		// A finding that begins after the break, or a specific format that
		// ends before it, is a value whole on its line; a join would only
		// glue a neighbour onto it.
		if !joinable(d, b) || sc.covered(b.e, b.e+1) || sc.coveredBy(b.s-1, b.s, CategoryAWSSecretKey) {
			continue
		}
		s, e := widen(d, max(0, b.s-joinReach), min(len(d), b.e+joinReach))
		if we >= 0 && s > we {
			sc.joinWindow(ws, we, brks)
			if sc.halted() {
				return
			}
			brks = brks[:0]
			ws = -1
		}
		if ws < 0 {
			ws = s
		}
		we = e
		brks = append(brks, b)
	}
	if len(brks) > 0 {
		sc.joinWindow(ws, we, brks)
	}
}

// digitGroupBefore reports whether the break at i follows a group of one
// to four digits that a space or dash begins (4111 1111\n1111), where the
// wrap took the place of a separator. A group that the previous joined break
// begins (prevEnd, when that wrap
// took a separator's place too) counts as well: a card in fours over three
// or more lines (4111\n1111\n1111\n1111 after a label), and a middle group of
// up to six (Amex 3782\n822463\n10005).
func digitGroupBefore(d []byte, i, prevEnd int) bool {
	k := i
	for k > 0 && i-k < 7 && isDigit(d[k-1]) {
		k--
	}
	if k == prevEnd {
		return k < i && i-k <= 6 // Amex and Diners: 4-6-5, 4-6-4
	}
	return k < i && i-k <= 4 && k > 0 && (d[k-1] == ' ' || d[k-1] == '-')
}

// widen moves a window's edges out to the nearest space (a few bytes at
// most), so that it does not cut a neighbouring value in two.
func widen(d []byte, s, e int) (int, int) {
	for k := 0; s > 0 && k < 32 && !isSpace(d[s-1]); k++ {
		s--
	}
	for k := 0; e < len(d) && k < 32 && !isSpace(d[e]); k++ {
		e++
	}
	return s, e
}

func (sc *scanner) joinWindow(ws, we int, brks []lineBreak) {
	d := sc.data
	view := make([]byte, 0, we-ws)
	at := make([]int32, 0, we-ws+1)
	joins := make([]int, 0, len(brks)) // view offsets where a break was removed
	i := ws
	spacedEnd := -1 // the end of the last break that took a space's place
	for _, b := range brks {
		for ; i < b.s; i++ {
			view = append(view, d[i])
			at = append(at, int32(i))
		}
		if digitGroupBefore(d, b.s, spacedEnd) && isDigit(d[b.e]) {
			view = append(view, ' ') // a wrap at the space between groups
			at = append(at, int32(b.s))
			spacedEnd = b.e
		}
		joins = append(joins, len(view))
		i = b.e
	}
	for ; i < we; i++ {
		view = append(view, d[i])
		at = append(at, int32(i))
	}
	inner, err := sc.s.scan(sc.ctx, view, sc.depth+1)
	if err != nil {
		sc.stop = err
		return
	}
	for _, f := range inner {
		k, _ := slices.BinarySearch(joins, f.Start+1)
		if k == len(joins) || joins[k] >= f.End {
			continue // no join inside: the scan of the text itself has it
		}
		s, e := int(at[f.Start]), int(at[f.End-1])+1
		if f.Category == CategoryCreditCard && joinsInside(joins[k:], f.End) >= 2 && !cardContext(d, s, e) {
			// Four-digit numbers one to a line (years, amounts, PINs in a
			// column) join into a Luhn-valid card one time in ten: over
			// three lines or more, a card needs a word that says so.
			continue
		}
		if sc.glued(s, e, f.Category) {
			continue
		}
		sc.add(s, e, f.Category, "joined:"+f.Rule)
	}
}

// glued reports whether a finding across a break overlaps one the text
// already has of at least its priority: the join then only glued a word
// from the other line onto a value the text shows whole (a key at the end
// of a log line and the next line's first word). A join that turns a
// generic assignment cut by the wrap into a provider's token is kept.
func (sc *scanner) glued(s, e int, cat Category) bool {
	p := cat.priority()
	sc.indexHits()
	for b := s / hitBucket; b <= (e-1)/hitBucket; b++ {
		for _, i := range sc.hitIdx.at(b) {
			if h := &sc.hits[i]; h.Start < e && s < h.End && h.Category.priority() >= p {
				return true
			}
		}
	}
	return false
}

// joinsInside counts the joins (view offsets, ascending, all after the
// finding's start) that lie before end.
func joinsInside(joins []int, end int) int {
	n := 0
	for n < len(joins) && joins[n] < end {
		n++
	}
	return n
}

// cardWords say that the digits near them are a payment card. Words of
// four letters or more count inside longer ones (credit_card, cardholder,
// Kreditkarte); shorter ones only as words of their own (cc, cc#, cc_num,
// PAN), since they occur inside ordinary words (accept, span). "number"
// alone is not one: a column of figures under a Number header is the very
// shape this guards against.
var cardWords = []string{
	"card", "visa", "mastercard", "master card", "amex", "american express",
	"discover", "diners", "maestro", "unionpay", "jcb",
	"karte", "carte", "tarjeta", "cartão", "carta", "kaart",
	"cvv", "cvc", "expir", "valid thru",
}

var cardShortWords = []string{"cc", "ccn", "pan", "exp"}

// cardBefore and cardAfter bound where a card word may stand: a label
// before the number, on its first line or the lines above it ("Card:\n"),
// or a note after its last piece (exp 09/30, (Visa)).
const (
	cardBefore = 64
	cardAfter  = 32
)

// cardContext reports whether a card word stands within cardBefore bytes
// before d[s:e] or cardAfter bytes after it. It runs only for a card that
// a join over three lines or more revealed.
func cardContext(d []byte, s, e int) bool {
	for _, w := range [2][]byte{d[max(0, s-cardBefore):s], d[e:min(len(d), e+cardAfter)]} {
		for _, k := range cardWords {
			if containsFold(w, k) {
				return true
			}
		}
		for _, k := range cardShortWords {
			it := newFoldIter(w, k)
			for j := it.next(); j >= 0; j = it.next() {
				if (j == 0 || !isLetter(w[j-1])) && (j+len(k) == len(w) || !isLetter(w[j+len(k)])) {
					return true
				}
			}
		}
	}
	return false
}
