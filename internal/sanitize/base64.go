package sanitize

import (
	"bytes"
	"encoding/base64"
	"strings"
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
	// Random bytes (checksums, images, ids) fail the text test within their
	// first few dozen bytes; test those before decoding the whole run.
	if len(src) > 64 {
		var probe [48]byte
		n, err := enc.Decode(probe[:], src[:64])
		if err != nil {
			return
		}
		// The probe may end inside a multi-byte character.
		p := probe[:n]
		last := len(p) - 1
		for last > 0 && len(p)-last < 4 && !utf8.RuneStart(p[last]) {
			last--
		}
		if last >= 0 && !utf8.FullRune(p[last:]) {
			p = p[:last]
		}
		if !textLike(p) {
			return
		}
	}
	buf := sc.b64buf[:0]
	if need := enc.DecodedLen(len(src)); cap(buf) < need {
		buf = make([]byte, need)
	}
	buf = buf[:enc.DecodedLen(len(src))]
	sc.b64buf = buf
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

// scanUnicodeEscapes scans the text again with JSON \u00XX escapes of
// printable ASCII decoded, so that "\u0041KIA…" cannot smuggle a key past the
// detectors, and maps what it finds back to input offsets.
func (sc *scanner) scanUnicodeEscapes() {
	d := sc.data
	first := -1
	for i := sc.escape; ; {
		k := bytes.Index(d[i:], []byte(`\u00`))
		if k < 0 {
			return
		}
		i += k
		if c, ok := escapeAt(d, i); ok && (isAlnum(c) || strings.IndexByte("@.:_+/=-", c) >= 0) {
			first = i
			break
		}
		i += 4
	}
	view := make([]byte, 0, len(d))
	view = append(view, d[:first]...)
	at := make([]int, 0, len(d)+1) // at[i] is the input offset of view[i]
	for i := 0; i < first; i++ {
		at = append(at, i)
	}
	decoded := false
	for i := first; i < len(d); {
		// Only characters that secrets and PII are made of: encoders
		// routinely escape <, > and & (Go's json does), never letters.
		if c, ok := escapeAt(d, i); ok && (isAlnum(c) || strings.IndexByte("@.:_+/=-", c) >= 0) {
			view = append(view, c)
			at = append(at, i)
			i += 6
			decoded = true
			continue
		}
		view = append(view, d[i])
		at = append(at, i)
		i++
	}
	if !decoded {
		return
	}
	at = append(at, len(d))
	for _, f := range sc.s.scan(view, sc.depth+2) {
		s, e := at[f.Start], at[f.End]
		if e-s != f.End-f.Start { // only findings that decoding made visible
			sc.add(s, e, f.Category, f.Rule)
		}
	}
}

// escapeAt decodes a JSON \u00XX escape at i (not itself escaped).
func escapeAt(d []byte, i int) (byte, bool) {
	if d[i] == '\\' && i+5 < len(d) && d[i+1] == 'u' && d[i+2] == '0' && d[i+3] == '0' &&
		isHex(d[i+4]) && isHex(d[i+5]) && !escapedAt(d, i) {
		return unhex(d[i+4])<<4 | unhex(d[i+5]), true
	}
	return 0, false
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
