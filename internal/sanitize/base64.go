package sanitize

import (
	"encoding/base64"
	"unicode/utf8"
)

var b64Byte = func() (t [256]bool) {
	for b := 0; b < 256; b++ {
		c := byte(b)
		t[b] = isAlnum(c) || c == '+' || c == '/' || c == '-' || c == '_'
	}
	return t
}()

// minB64 is the shortest base64 run worth decoding (24 bytes of payload).
const minB64 = 32

// scanBase64 decodes long base64 runs that decode to text and scans the text;
// a finding inside marks the whole run with the inner category. Binary
// payloads (images, checksums) are left alone.
func (sc *scanner) scanBase64() {
	d := sc.data
	n := len(d)
	// Skip ahead: a run of minB64 base64 bytes starting at i (where d[i-1]
	// is not base64) must include d[i+minB64-1]; when that byte is not
	// base64, or a non-base64 byte sits between, i jumps past it.
	for i := 0; i+minB64 <= n; {
		j := i + minB64 - 1
		if !b64Byte[d[j]] {
			i = j + 1
			continue
		}
		k := j
		for k > i && b64Byte[d[k-1]] {
			k--
		}
		if k > i {
			i = k
			continue
		}
		e := j + 1
		for e < n && b64Byte[d[e]] {
			e++
		}
		pad := e
		for pad < n && d[pad] == '=' && pad-e < 2 {
			pad++
		}
		sc.maybeBase64(i, e, pad)
		i = e + 1
	}
}

func (sc *scanner) maybeBase64(s, e, pad int) {
	d := sc.data
	upper, lower, digit, nonHex := false, false, false, false
	for _, c := range d[s:e] {
		upper = upper || isUpper(c)
		lower = lower || isLower(c)
		digit = digit || isDigit(c)
		nonHex = nonHex || !(isHex(c) || c == '-')
	}
	// Hex ids and UUIDs are base64-shaped but never base64 payloads.
	if !(upper && lower && digit) || !nonHex || escapedAt(d, s) || (s > 0 && d[s-1] == '\\') {
		return
	}
	if sc.covered(s, e) {
		return
	}
	sc.base64Run(s, e, pad)
}

// coveredBy reports whether a finding of at least cat's priority already
// holds all of [s, e), so another one would change nothing.
func (sc *scanner) coveredBy(s, e int, cat Category) bool {
	p := cat.priority()
	for i := len(sc.hits) - 1; i >= 0; i-- {
		h := &sc.hits[i]
		if h.Start <= s && e <= h.End && h.Category.priority() >= p {
			return true
		}
	}
	return false
}

// covered reports whether a finding already overlaps [s, e).
func (sc *scanner) covered(s, e int) bool {
	for _, h := range sc.hits {
		if h.Start < e && s < h.End {
			return true
		}
	}
	return false
}

func (sc *scanner) base64Run(s, e, padEnd int) {
	src := sc.data[s:e]
	enc := base64.RawStdEncoding
	for _, c := range src {
		if c == '-' || c == '_' {
			enc = base64.RawURLEncoding
			break
		}
	}
	if len(src)%4 == 1 {
		src = src[:len(src)-1] // a lone trailing character cannot decode
	}
	buf := make([]byte, enc.DecodedLen(len(src)))
	n, err := enc.Decode(buf, src)
	if err != nil {
		return
	}
	buf = buf[:n]
	if !textLike(buf) {
		return
	}
	inner := sc.s.scan(buf, sc.depth+1)
	if len(inner) == 0 {
		return
	}
	best := inner[0]
	for _, f := range inner[1:] {
		if f.Category.priority() > best.Category.priority() {
			best = f
		}
	}
	sc.add(s, padEnd, best.Category, "base64:"+best.Rule)
}

// textLike reports whether b is UTF-8 text with few control characters.
func textLike(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	bad := 0
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			bad++
		}
	}
	return bad*20 <= len(b)
}
