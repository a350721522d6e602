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
	for i := 0; i < n; {
		for i < n && !b64Byte[d[i]] {
			i++
		}
		s := i
		upper, lower, digit := false, false, false
		for i < n && b64Byte[d[i]] {
			c := d[i]
			upper = upper || isUpper(c)
			lower = lower || isLower(c)
			digit = digit || isDigit(c)
			i++
		}
		e := i
		for i < n && d[i] == '=' && i-e < 2 {
			i++
		}
		if e-s < minB64 || !(upper && lower && digit) || escapedAt(d, s) {
			continue
		}
		if s > 0 && d[s-1] == '\\' {
			continue
		}
		if sc.covered(s, e) {
			continue
		}
		sc.base64Run(s, e, i)
	}
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
