package sanitize

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"io"
	"slices"
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

// minB64 is the shortest base64 run worth decoding (16 bytes of payload).
const minB64 = 22

func isGzip(b []byte) bool { return len(b) >= 10 && b[0] == 0x1f && b[1] == 0x8b && b[2] == 8 }

// isZlib reports a zlib stream header (RFC 1950): deflate with a window of
// 32 KiB or less, no preset dictionary, and the header check.
func isZlib(b []byte) bool {
	return len(b) >= 6 && b[0]&0x0F == 8 && b[0]>>4 <= 7 && b[1]&0x20 == 0 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0
}

// inflateLimited inflates a gzip or zlib payload (how tools ship logs,
// bodies and tokens inside base64) up to limit bytes; nil when it is
// neither or not valid.
func inflateLimited(b []byte, limit int) []byte {
	if isGzip(b) {
		return gunzipLimited(b, limit)
	}
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return readLimited(zr, limit)
}

// gunzipLimited inflates a gzip payload (gzip+base64 is how tools ship
// logs and bodies) up to limit bytes; nil when it is not valid gzip. A
// payload that inflates past limit is scanned up to it; callers bound
// limit by the compressed size, so a gzip bomb costs no more than its bytes.
func gunzipLimited(b []byte, limit int) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return readLimited(zr, limit)
}

// readLimited reads an inflating reader up to limit bytes: what a damaged
// stream gave before its error is still scanned; nothing is nil.
func readLimited(r io.Reader, limit int) []byte {
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)))
	if err != nil && len(out) == 0 {
		return nil
	}
	return out
}

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
		if sc.halted() {
			return
		}
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
		// The run's end, and what some byte past j is (OR) and what every
		// one is (AND), in the same pass: runs are long.
		e := j + 1
		some, every := uint8(0), uint8(0xff)
		for ; e+8 <= n; e += 8 { // eight bytes a branch while the run goes on
			w := d[e : e+8 : e+8]
			k0, k1, k2, k3 := runClass[w[0]], runClass[w[1]], runClass[w[2]], runClass[w[3]]
			k4, k5, k6, k7 := runClass[w[4]], runClass[w[5]], runClass[w[6]], runClass[w[7]]
			all := k0 & k1 & k2 & k3 & k4 & k5 & k6 & k7
			if all&rB64 == 0 {
				break
			}
			some |= k0 | k1 | k2 | k3 | k4 | k5 | k6 | k7
			every &= all
		}
		for e < n {
			k := runClass[d[e]]
			if k&rB64 == 0 {
				break
			}
			some |= k
			every &= k
			e++
		}
		pad := e
		for pad < n && d[pad] == '=' && pad-e < 2 {
			pad++
		}
		sc.maybeBase64(i, j+1, e, pad, some, every)
		i = e + 1
	}
}

// maybeBase64 looks at the run d[s:e]; some and every are the classes of
// d[mid:e], ORed and ANDed. When the run is not an encoding of text, the
// runs starting after a separator in its first minB64-1 bytes are tried:
// a payload glued to a path or a name (/api/v1/..., token_...) is the
// run's tail, which the name's bytes would otherwise garble.
func (sc *scanner) maybeBase64(s, mid, e, pad int, some, every uint8) {
	if sc.encodedRun(s, mid, e, pad, some, every) {
		return
	}
	for k := s; k < mid-1 && e-(k+1) >= minB64; k++ {
		if runSep[sc.data[k]] && sc.encodedRun(k+1, mid, e, pad, some, every) {
			return
		}
	}
}

// runSep marks the base64-alphabet bytes that also separate a path's
// segments or a name's words.
var runSep = [256]bool{'/': true, '+': true, '-': true, '_': true}

// encodedRun is maybeBase64 on d[s:e] alone; it reports whether the run
// was decoded as text, or a finding already overlaps it.
func (sc *scanner) encodedRun(s, mid, e, pad int, some, every uint8) bool {
	d := sc.data
	if escapedAt(d, s) {
		s++ // the n of a JSON \n before the run
	}
	if s > 0 && d[s-1] == '\\' || e-s < minB64 {
		return false
	}
	for _, c := range d[s:mid] {
		k := runClass[c]
		some |= k
		every &= k
	}
	nonHex, nonB32 := every&rHexish == 0, every&rBase32 == 0
	upper, lower, digit := some&rUpper != 0, some&rLower != 0, some&rDigit != 0
	// Hex ids and UUIDs are base64-shaped but never base64 payloads; hex
	// that decodes to text (a hex-dumped value) is scanned as that text.
	if !nonHex {
		if n := e - s; n%2 == 0 && n >= 32 {
			return sc.covered(s, e) || sc.hexRun(s, e)
		}
		return false
	}
	if !nonB32 && upper != lower && e-s >= minB32 {
		return sc.covered(s, e) || sc.base32Run(s, e, upper)
	}
	if !(upper && lower && digit) {
		return false
	}
	return sc.covered(s, e) || sc.base64Run(s, e, pad)
}

// Classes of the bytes of a base64-alphabet run.
const (
	rUpper = 1 << iota
	rLower
	rDigit
	rHexish // 0-9a-fA-F or '-' (hex ids and UUIDs)
	rBase32 // A-Za-z2-7: base32 in either case
	rB64    // b64Byte
)

var runClass = func() (t [256]uint8) {
	for b := range 256 {
		c, k := byte(b), byteClass[b]
		if k&cUpper != 0 {
			t[b] |= rUpper | rBase32
		}
		if k&cLower != 0 {
			t[b] |= rLower | rBase32
		}
		if k&cDigit != 0 {
			t[b] |= rDigit
		}
		if k&cHex != 0 || c == '-' {
			t[b] |= rHexish
		}
		if '2' <= c && c <= '7' {
			t[b] |= rBase32
		}
		if b64Byte[b] {
			t[b] |= rB64
		}
	}
	return t
}()

// minB32 is the shortest base32 run worth decoding (16 bytes of payload).
const minB32 = 26

// base32 decodes unpadded RFC 4648 base32 in either case, so a lower-case run
// needs no upper-cased copy (the same bytes as decoding its upper-case form).
var base32Upper, base32Lower = base32.StdEncoding.WithPadding(base32.NoPadding),
	base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// base32Run decodes a run of RFC 4648 base32 (one case throughout, with or
// without its = padding) and scans it when it is text. Upper-case words and
// constants decode to bytes that are not text and are left alone.
func (sc *scanner) base32Run(s, e int, upper bool) bool {
	text, ok := sc.base32Text(sc.data[s:e], upper)
	if !ok {
		return false
	}
	end := e
	for end < len(sc.data) && sc.data[end] == '=' && end-e < 6 {
		end++
	}
	sc.scanDecoded(text, s, end, "base32:")
	return true
}

// base32Text decodes the run src, in the scanner's buffer; ok is false
// when it does not decode or is not text.
func (sc *scanner) base32Text(src []byte, upper bool) (_ []byte, ok bool) {
	// Unpadded lengths of 1, 3 or 6 modulo 8 cannot decode; the last
	// characters then belong to something else.
	for len(src)%8 == 1 || len(src)%8 == 3 || len(src)%8 == 6 {
		src = src[:len(src)-1]
	}
	enc := base32Lower
	if upper {
		enc = base32Upper
	}
	// Eight characters decode to five bytes on their own, so the first 64
	// decode to the first 40 bytes of the whole: when those are not UTF-8
	// (a word or a constant rarely is base32 of text), neither is the whole.
	if len(src) > 64 {
		var probe [40]byte
		if n, err := enc.Decode(probe[:], src[:64]); err == nil && !utf8Prefix(probe[:n]) {
			return nil, false
		}
	}
	need := enc.DecodedLen(len(src))
	buf := sc.b64buf[:0]
	if cap(buf) < need {
		buf = make([]byte, need)
	}
	buf = buf[:need]
	sc.b64buf = buf
	n, err := enc.Decode(buf, src)
	if err != nil || !textLike(buf[:n]) {
		return nil, false
	}
	return buf[:n], true
}

// utf8Prefix reports whether p can begin valid UTF-8: it is valid but for a
// character cut short at its end.
func utf8Prefix(p []byte) bool {
	last := len(p) - 1
	for last > 0 && len(p)-last < 4 && !utf8.RuneStart(p[last]) {
		last--
	}
	if last >= 0 && !utf8.FullRune(p[last:]) {
		p = p[:last]
	}
	return utf8.Valid(p)
}

// coveredBy reports whether a finding of at least cat's priority already
// holds all of [s, e), so another one would change nothing.
func (sc *scanner) coveredBy(s, e int, cat Category) bool {
	p := cat.priority()
	sc.indexHits()
	for _, i := range sc.hitIdx.at(s / hitBucket) {
		h := &sc.hits[i]
		if h.Start <= s && e <= h.End && h.Category.priority() >= p {
			return true
		}
	}
	return false
}

// covered reports whether a finding already overlaps [s, e).
func (sc *scanner) covered(s, e int) bool {
	if e <= s {
		return false
	}
	sc.indexHits()
	for b := s / hitBucket; b <= (e-1)/hitBucket; b++ {
		for _, i := range sc.hitIdx.at(b) {
			if h := &sc.hits[i]; h.Start < e && s < h.End {
				return true
			}
		}
	}
	return false
}

// hitBucket is the span of input one bucket of the hit index covers. The
// index keeps coveredBy and covered independent of the number of findings,
// so finding-dense input stays linear.
const hitBucket = 256

// indexHits adds the findings made since the last call to the index: each
// under every bucket it overlaps.
func (sc *scanner) indexHits() {
	for ; sc.hitN < len(sc.hits); sc.hitN++ {
		h := sc.hits[sc.hitN]
		for b := h.Start / hitBucket; b <= max(h.Start, h.End-1)/hitBucket; b++ {
			sc.hitIdx.add(b, int32(sc.hitN))
		}
	}
}

// hitIndex lists, per bucket of hitBucket input bytes, the indexes of the
// findings that overlap it. A pooled scanner keeps the lists' memory.
type hitIndex struct{ b [][]int32 }

// reset empties the index, keeping its memory.
func (x *hitIndex) reset() { x.b = x.b[:0] }

// at is bucket b's list; empty outside the index.
func (x *hitIndex) at(b int) []int32 {
	if b < 0 || b >= len(x.b) {
		return nil
	}
	return x.b[b]
}

func (x *hitIndex) add(b int, i int32) {
	for len(x.b) <= b {
		if n := len(x.b); n < cap(x.b) {
			x.b = x.b[:n+1]
			x.b[n] = x.b[n][:0]
		} else {
			x.b = append(x.b, nil)
		}
	}
	x.b[b] = append(x.b[b], i)
}

func (sc *scanner) base64Run(s, e, padEnd int) bool {
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
			return false
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
		if !textLike(p) && !isGzip(p) && !isZlib(p) && utf16Order(probe[:n]) == 0 {
			return false
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
		return false
	}
	buf = buf[:n]
	if isGzip(buf) || isZlib(buf) && !textLike(buf) {
		if buf = inflateLimited(buf, min(sc.s.maxInput, 16*len(buf)+4096)); buf == nil { // inflation stays linear in the input
			return false
		}
	}
	if !textLike(buf) {
		// UTF-16 text (PowerShell's -EncodedCommand, Windows tools' output).
		text, ok := utf16Text(buf)
		if !ok {
			return false
		}
		sc.scanDecoded(text, s, padEnd, "base64:utf16:")
		return true
	}
	sc.scanDecoded(buf, s, padEnd, "base64:")
	return true
}

// scanDecoded scans a decoded payload and marks the encoded run [s, e) with
// the most specific category found inside.
func (sc *scanner) scanDecoded(buf []byte, s, e int, tag string) {
	inner, err := sc.s.scan(sc.ctx, buf, sc.depth+1)
	if err != nil {
		sc.stop = err
		return
	}
	if len(inner) == 0 {
		return
	}
	best := inner[0]
	for _, f := range inner[1:] {
		if f.Category.priority() > best.Category.priority() {
			best = f
		}
	}
	sc.add(s, e, best.Category, tag+best.Rule)
}

// hexRun decodes a run of hex digits and scans it when it is text, and
// reports whether it was.
func (sc *scanner) hexRun(s, e int) bool {
	src := sc.data[s:e]
	if bytes.IndexByte(src, '-') >= 0 {
		return false // a UUID
	}
	buf := make([]byte, len(src)/2)
	if _, err := hex.Decode(buf, src); err != nil {
		return false
	}
	if !textLike(buf) {
		text, ok := utf16Text(buf)
		if !ok {
			return false
		}
		sc.scanDecoded(text, s, e, "hex:utf16:")
		return true
	}
	sc.scanDecoded(buf, s, e, "hex:")
	return true
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

// viewChar is a byte that a decoded view keeps when it decodes it: the
// characters that secrets and PII are made of. Encoders routinely escape <,
// > and & (Go's json does), and spaces, never letters, so decoding only
// these reveals values without turning escaped markup into text.
func viewChar(c byte) bool { return isAlnum(c) || strings.IndexByte("@.:_+/=-", c) >= 0 }

// decodeAt reads one encoded character at i: a JSON \u00XX or \/ escape,
// URL percent-encoding (applied once or twice), an HTML character
// reference, a compatibility form NFKC folds to ASCII, a digit of another
// script, or an invisible character that only hides a value's split. It
// returns the decoded byte and the bytes read; skip reports an invisible
// character.
func decodeAt(d []byte, i int) (c byte, n int, skip bool, ok bool) {
	switch b := d[i]; b {
	case '\\':
		if c, ok := escapeAt(d, i); ok && viewChar(c) {
			return c, 6, false, true
		}
		if r, n, ok := jsonRuneAt(d, i); ok {
			return decodeRune(d, i, r, n)
		}
		// JSON's escaped solidus: PHP and others write every / of a URL so.
		if i+1 < len(d) && d[i+1] == '/' && !escapedAt(d, i) {
			return '/', 2, false, true
		}
	case '%':
		if i+2 < len(d) && isHex(d[i+1]) && isHex(d[i+2]) {
			n := 3
			hi, lo := d[i+1], d[i+2]
			// %25XX: a value percent-encoded twice (a URL inside a query).
			if hi == '2' && lo == '5' && i+4 < len(d) && isHex(d[i+3]) && isHex(d[i+4]) {
				n, hi, lo = 5, d[i+3], d[i+4]
			}
			// Percent-encoding also hides the quotes, braces and spaces
			// around a value (q=%7B%22api_key%22%3A%22...): they give the
			// value its key, and are decoded too.
			if c := unhex(hi)<<4 | unhex(lo); viewChar(c) || strings.IndexByte("\"{}[], ", c) >= 0 {
				return c, n, false, true
			}
		}
	case '+':
		// A query string writes the space between digit groups as +
		// (card=4111+1111+1111+1111).
		if i >= 2 && i+2 < len(d) && isDigit(d[i-1]) && isDigit(d[i-2]) && isDigit(d[i+1]) && isDigit(d[i+2]) {
			return ' ', 1, false, true
		}
	case '&':
		return htmlRefAt(d, i)
	case '_':
		if digitBefore(d, i) && i+1 < len(d) && isDigit(d[i+1]) {
			return ' ', 1, false, true // 4111_1111: digit groups
		}
	case '.':
		// 4111.1111.1111.1111: groups of four only, so versions, decimals
		// and addresses stay as they are.
		if i >= 4 && i+4 < len(d) && allDigits(d[i-4:i]) && allDigits(d[i+1:i+5]) && (i+5 == len(d) || !isDigit(d[i+5])) && (i == 4 || !isDigit(d[i-5])) {
			return ' ', 1, false, true
		}
		if i > 0 && isDigit(d[i-1]) && i+1 < len(d) && isAlnum(d[i+1]) && dottedGroups(d, i) {
			return ' ', 1, false, true
		}
	default:
		if b >= 0xC2 && i+1 < len(d) && runeMayDecode(b, d[i+1]) {
			return decodeRuneAt(d, i)
		}
	}
	return 0, 0, false, false
}

// runeSecond holds, for the lead byte of a character decodeRuneAt may
// read, the second bytes it may have (bit b&63 for byte b): a cheap test
// that lets the letters of Arabic, CJK and other scripts, which share these
// lead bytes, through without decoding them. U+00A0..U+00AD, U+034F,
// U+061C..U+06F9, U+0966.., U+115F..U+180F, U+2000..U+2800, U+3000..U+3164,
// U+FE00..U+FFA0, U+1D400.. and U+E0000...
var runeSecond = func() (t [256]uint64) {
	set := func(lead byte, lo, hi byte) {
		for b := lo; b <= hi; b++ {
			t[lead] |= 1 << (b & 63)
		}
	}
	set(0xC2, 0xA0, 0xA0)
	set(0xC2, 0xAD, 0xAD)
	set(0xCD, 0x8F, 0x8F)
	set(0xD8, 0x9C, 0x9C)
	set(0xD9, 0xA0, 0xA9)
	set(0xDB, 0xB0, 0xB9)
	set(0xE0, 0xA5, 0xA5)
	for _, b := range []byte{0x85, 0x9E, 0xA0} {
		set(0xE1, b, b)
	}
	for _, b := range []byte{0x80, 0x81, 0x84, 0x88, 0x92, 0x93, 0xA0} {
		set(0xE2, b, b)
	}
	set(0xE3, 0x80, 0x80)
	set(0xE3, 0x85, 0x85)
	set(0xEF, 0xB8, 0xBF)
	set(0xF0, 0x9D, 0x9D)
	set(0xF3, 0xA0, 0xA0)
	return t
}()

// runeMayDecode reports whether a character starting with the bytes b0 b1
// may be one decodeRuneAt reads (see runeSecond).
func runeMayDecode(b0, b1 byte) bool { return runeSecond[b0]>>(b1&63)&1 != 0 }

// decodeRuneAt is decodeAt for a multi-byte character.
func decodeRuneAt(d []byte, i int) (c byte, n int, skip bool, ok bool) {
	r, n := utf8.DecodeRune(d[i:])
	return decodeRune(d, i, r, n)
}

// decodeRune is decodeAt for the character r written in the n bytes at i
// (as UTF-8 or as a JSON \uXXXX escape).
func decodeRune(d []byte, i int, r rune, n int) (c byte, _ int, skip bool, ok bool) {
	if invisible(r) {
		return 0, n, true, true
	}
	if c := foldASCII(r); c != 0 && viewChar(c) {
		return c, n, false, true
	}
	if !digitBefore(d, i) {
		return 0, 0, false, false
	}
	switch {
	case r == 0xA0 || r >= 0x2000 && r <= 0x200A || r == 0x202F || r == 0x205F || r == 0x3000:
		// No-break, typographic and ideographic spaces in a digit group.
		return ' ', n, false, true
	case r >= 0x2010 && r <= 0x2015 || r == 0x2212 || r == 0xFE58 || r == 0xFE63:
		// Hyphens, dashes and the minus sign that editors put between
		// digit groups (4111–1111, 219–09–9999).
		if i+n < len(d) && isDigit(d[i+n]) {
			return '-', n, false, true
		}
	}
	return 0, 0, false, false
}

// jsonRuneAt decodes a JSON \uXXXX escape at i (not itself escaped) that
// is not ASCII, with its low surrogate when it is a high one: encoders that
// write ASCII only (Python's json.dumps) write every other character so.
func jsonRuneAt(d []byte, i int) (rune, int, bool) {
	hex4 := func(k int) (rune, bool) {
		if k+5 >= len(d) || d[k] != '\\' || d[k+1] != 'u' {
			return 0, false
		}
		var r rune
		for _, c := range d[k+2 : k+6] {
			if !isHex(c) {
				return 0, false
			}
			r = r<<4 | rune(unhex(c))
		}
		return r, true
	}
	r, ok := hex4(i)
	if !ok || r < 0x80 || escapedAt(d, i) {
		return 0, 0, false
	}
	if r >= 0xD800 && r < 0xDC00 {
		lo, ok := hex4(i + 6)
		if !ok || lo < 0xDC00 || lo > 0xDFFF {
			return 0, 0, false
		}
		return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), 12, true
	}
	return r, 6, true
}

// invisible reports a character that renders as nothing (or as a blank) and
// so only hides a value's split: zero-width characters and joiners, bidi
// marks, embeddings and isolates, invisible operators, variation selectors,
// tag characters, the combining grapheme joiner, Hangul and Khmer fillers,
// the Mongolian vowel separator, soft hyphen, BOM and the braille blank.
func invisible(r rune) bool {
	switch {
	case r < 0xAD:
		return false
	case r == 0xAD, r == 0x34F, r == 0x61C, r == 0x115F, r == 0x1160, r == 0x17B4, r == 0x17B5,
		r >= 0x180B && r <= 0x180F, r >= 0x200B && r <= 0x200F, r >= 0x202A && r <= 0x202E,
		r >= 0x2060 && r <= 0x2064, r >= 0x2066 && r <= 0x206F, r == 0x2800, r == 0x3164,
		r >= 0xFE00 && r <= 0xFE0F, r == 0xFEFF, r == 0xFFA0,
		r >= 0xE0000 && r <= 0xE007F, r >= 0xE0100 && r <= 0xE01EF:
		return true
	}
	return false
}

// letterlike are the letters of the mathematical alphabets that Unicode
// encodes in the Letterlike Symbols block (the holes of U+1D400..).
var letterlike = map[rune]byte{
	0x210E: 'h', 0x212C: 'B', 0x2130: 'E', 0x2131: 'F', 0x210B: 'H', 0x2110: 'I', 0x2112: 'L',
	0x2133: 'M', 0x211B: 'R', 0x212F: 'e', 0x210A: 'g', 0x2134: 'o', 0x212D: 'C', 0x210C: 'H',
	0x2111: 'I', 0x211C: 'R', 0x2128: 'Z', 0x2102: 'C', 0x210D: 'H', 0x2115: 'N', 0x2119: 'P',
	0x211A: 'Q', 0x211D: 'R', 0x2124: 'Z',
}

// foldASCII is the ASCII character NFKC folds r to, or a digit of another
// script's value as an ASCII digit, or 0: fullwidth forms, mathematical
// letters and digits, circled letters, the small forms of @ . : -, and
// Arabic-Indic, Persian and Devanagari digits.
func foldASCII(r rune) byte {
	switch {
	case r >= 0xFF01 && r <= 0xFF5E:
		return byte(r - 0xFF01 + 0x21)
	case r >= 0x1D400 && r <= 0x1D6A3:
		if k := (r - 0x1D400) % 52; k < 26 {
			return byte('A' + k)
		} else {
			return byte('a' + k - 26)
		}
	case r >= 0x1D7CE && r <= 0x1D7FF:
		return byte('0' + (r-0x1D7CE)%10)
	case r >= 0x24B6 && r <= 0x24CF:
		return byte('A' + r - 0x24B6)
	case r >= 0x24D0 && r <= 0x24E9:
		return byte('a' + r - 0x24D0)
	case r >= 0x660 && r <= 0x669:
		return byte('0' + r - 0x660)
	case r >= 0x6F0 && r <= 0x6F9:
		return byte('0' + r - 0x6F0)
	case r >= 0x966 && r <= 0x96F:
		return byte('0' + r - 0x966)
	case r >= 0x2102 && r <= 0x2134:
		return letterlike[r]
	}
	switch r {
	case 0xFE6B:
		return '@'
	case 0xFE52:
		return '.'
	case 0xFE55:
		return ':'
	case 0xFE63:
		return '-'
	}
	return 0
}

// spelledAt decodes the @ and . that people spell out to keep an address
// from harvesters: [at] (at) {at} [dot] (dot) {dot}, in either case, with
// the spaces after them (scanDecodedView drops those before them).
func spelledAt(d []byte, i int) (byte, int, bool, bool) {
	var c byte
	n := 0
	switch {
	case hasPrefixFold(d, i+1, "at") && i+3 < len(d):
		c, n = '@', 4
	case hasPrefixFold(d, i+1, "dot") && i+4 < len(d):
		c, n = '.', 5
	default:
		return 0, 0, false, false
	}
	closer := byte(']')
	switch d[i] {
	case '(':
		closer = ')'
	case '{':
		closer = '}'
	}
	if d[i+n-1] != closer {
		return 0, 0, false, false
	}
	for i+n < len(d) && d[i+n] == ' ' {
		n++
	}
	return c, n, false, true
}

// dottedGroups reports whether the dot at i separates the groups of a value
// that is written in groups of known sizes: 3.2.4 (a US SSN), 4.6.5 and
// 4.6.4 (Amex, Diners) and an IBAN (DE89.3704.0044.0532.0130.00). Dates,
// versions, amounts and addresses have other shapes and stay as they are.
func dottedGroups(d []byte, i int) bool {
	const reach = 40
	s := i
	for s > 0 && i-s < reach && (isAlnum(d[s-1]) || d[s-1] == '.') {
		s--
	}
	e := i
	for e < len(d) && e-i < reach && (isAlnum(d[e]) || d[e] == '.') {
		e++
	}
	if i-s >= reach || e-i >= reach {
		return false
	}
	if d[e-1] == '.' {
		e-- // a full stop after the value
	}
	if d[s] == '.' || s > 0 && (d[s-1] == '-' || d[s-1] == '/') {
		return false
	}
	var lens [8]int
	n, l := 0, 0
	allDigit := true
	for _, c := range d[s:e] {
		if c != '.' {
			l++
			allDigit = allDigit && isDigit(c)
			continue
		}
		if l == 0 || n == len(lens)-1 {
			return false
		}
		lens[n], n, l = l, n+1, 0
	}
	lens[n], n = l, n+1
	g := lens[:n]
	switch {
	case allDigit:
		return slices.Equal(g, []int{3, 2, 4}) || slices.Equal(g, []int{4, 6, 5}) || slices.Equal(g, []int{4, 6, 4})
	case n >= 4 && isLetter(d[s]) && isLetter(d[s+1]) && isDigit(d[s+2]) && isDigit(d[s+3]):
		for k, x := range g {
			if x != 4 && !(k == n-1 && x < 4) {
				return false
			}
		}
		return true
	}
	return false
}

func digitBefore(d []byte, i int) bool { return i > 0 && isDigit(d[i-1]) }

// htmlRefAt decodes &#NN; &#xHH; and the named references of the characters
// values are made of.
func htmlRefAt(d []byte, i int) (byte, int, bool, bool) {
	end := i + 1
	for end < len(d) && end-i < 10 && d[end] != ';' {
		end++
	}
	if end >= len(d) || d[end] != ';' {
		return 0, 0, false, false
	}
	ref := d[i+1 : end]
	n := end - i + 1
	var v int
	switch {
	case len(ref) > 2 && ref[0] == '#' && (ref[1] == 'x' || ref[1] == 'X'):
		for _, c := range ref[2:] {
			if !isHex(c) {
				return 0, 0, false, false
			}
			v = v<<4 | int(unhex(c))
		}
	case len(ref) > 1 && ref[0] == '#':
		for _, c := range ref[1:] {
			if !isDigit(c) {
				return 0, 0, false, false
			}
			v = v*10 + int(c-'0')
		}
	default:
		switch string(ref) {
		case "commat":
			v = '@'
		case "period":
			v = '.'
		case "colon":
			v = ':'
		case "lowbar":
			v = '_'
		case "plus":
			v = '+'
		case "sol":
			v = '/'
		case "equals":
			v = '='
		case "shy":
			return 0, n, true, true
		default:
			return 0, 0, false, false
		}
	}
	if v == 0xAD {
		return 0, n, true, true
	}
	if v > 0 && v < 0x80 && viewChar(byte(v)) {
		return byte(v), n, false, true
	}
	return 0, 0, false, false
}

// viewTrigger marks the first bytes of what decodeAt reads.
var viewTrigger = func() (t [256]bool) {
	for _, b := range []byte{'\\', '%', '&', '_', '.', '+'} {
		t[b] = true
	}
	// Lead bytes of the characters decodeRuneAt reads.
	for b, second := range runeSecond {
		t[b] = t[b] || second != 0
	}
	return t
}()

// viewTrigger8 is viewTrigger as bytes, so that eight of them are tested
// with one branch.
var viewTrigger8 = func() (t [256]uint8) {
	for b, ok := range viewTrigger {
		if ok {
			t[b] = 1
		}
	}
	return t
}()

// viewTriggerSpelled8 is viewTrigger8 with the brackets of spelledAt: used
// only when the input holds a spelled-out "at", since JSON is full of them.
var viewTriggerSpelled8 = func() (t [256]uint8) {
	t = viewTrigger8
	t['['], t['('], t['{'] = 1, 1, 1
	return t
}()

// nextViewTrigger is the first index from i of a trigger byte of t in d,
// or len(d).
func nextViewTrigger(d []byte, i int, t *[256]uint8) int {
	for ; i+8 <= len(d); i += 8 {
		w := d[i : i+8 : i+8]
		if t[w[0]]|t[w[1]]|t[w[2]]|t[w[3]]|t[w[4]]|t[w[5]]|t[w[6]]|t[w[7]] != 0 {
			break
		}
	}
	for i < len(d) {
		if b := d[i]; t[b] != 0 && (b < utf8.RuneSelf || i+1 < len(d) && runeMayDecode(b, d[i+1])) {
			break
		}
		i++
	}
	return i
}

// scanDecodedView scans the input with every encoded character decodeAt
// reads decoded (and invisible ones dropped), and reports what only the
// decoding revealed, at the input's offsets.
func (sc *scanner) scanDecodedView() {
	d := sc.data
	trig := &viewTrigger8
	decode := decodeAt
	if sc.spelled {
		trig = &viewTriggerSpelled8
		decode = func(d []byte, i int) (byte, int, bool, bool) {
			if c := d[i]; c == '[' || c == '(' || c == '{' {
				return spelledAt(d, i)
			}
			return decodeAt(d, i)
		}
	}
	first := -1
	for i := nextViewTrigger(d, 0, trig); i < len(d); i = nextViewTrigger(d, i+1, trig) {
		if c, n, skip, ok := decode(d, i); ok && opensView(d, i, c, n, skip) {
			first = i
			break
		}
	}
	if first < 0 {
		return
	}
	// The buffers are the scanner's, kept across calls; the nested scan
	// below takes another scanner from the pool, so they are not shared.
	view := sc.view[:0]
	at := sc.viewAt[:0]       // at[i] is the input offset of view[i]
	marks := sc.viewMarks[:0] // view offsets where a decoded character or a dropped one sits
	defer func() {
		if cap(view) <= maxPooledView { // a huge input's buffers are not kept
			sc.view, sc.viewAt, sc.viewMarks = view[:0], at[:0], marks[:0]
		}
	}()
	view = append(view, d[:first]...)
	at = appendOffsets(at, 0, first)
	for i := first; i < len(d); {
		if trig[d[i]] != 0 {
			if c, n, skip, ok := decode(d, i); ok {
				if sc.spelled && (d[i] == '[' || d[i] == '(' || d[i] == '{') {
					// bob [at] acme [dot] com: the spaces before go too.
					for len(view) > 0 && view[len(view)-1] == ' ' && (len(marks) == 0 || int(marks[len(marks)-1]) < len(view)-1) {
						view, at = view[:len(view)-1], at[:len(at)-1]
					}
				}
				marks = append(marks, int32(len(view)))
				if !skip {
					view = append(view, c)
					at = append(at, int32(i))
				}
				i += n
				continue
			}
		}
		// Copy up to the next trigger byte in one go.
		j := nextViewTrigger(d, i+1, trig)
		view = append(view, d[i:j]...)
		at = appendOffsets(at, i, j)
		i = j
	}
	at = append(at, int32(len(d)))
	inner, err := sc.s.scan(sc.ctx, view, sc.depth+2)
	if err != nil {
		sc.stop = err
		return
	}
	for _, f := range inner {
		// Only findings that decoding made visible: a decoded or dropped
		// character inside (a dropped one sits at the offset after it), or
		// shortly before: a decoded quote, colon or equals sign gave a plain
		// value its key, an escaped or hidden letter spelled the key's name
		// ("pass\u0077ord": ...), an escaped / made the URL around it.
		k, _ := slices.BinarySearch(marks, int32(f.Start-viewKeyReach))
		if k < len(marks) && marks[k] < int32(f.End) {
			sc.add(int(at[f.Start]), int(at[f.End]), f.Category, f.Rule)
		}
	}
}

// opensView reports whether the character decodeAt read at i (c, n bytes,
// skip) is worth a decoded view of the input, which costs a second scan.
// Text in other scripts is full of characters decodeAt reads that rarely
// hide a value: an invisible one counts only next to an ASCII character of a
// value (not the variation selector of an emoji, the ZWNJ of Persian, the
// bidi mark of Arabic), a digit of another script only in a run long enough
// for a number worth finding. Once a view is made, every one is decoded.
func opensView(d []byte, i int, c byte, n int, skip bool) bool {
	if d[i] < utf8.RuneSelf {
		return true
	}
	if skip {
		return i > 0 && d[i-1] < utf8.RuneSelf && viewChar(d[i-1]) || i+n < len(d) && d[i+n] < utf8.RuneSelf && viewChar(d[i+n])
	}
	if !isDigit(c) || c == d[i] {
		return true
	}
	if r, _ := utf8.DecodeLastRune(d[:i]); r < utf8.RuneSelf && isDigit(byte(r)) || isDigit(foldASCII(r)) {
		return false // the run's first digit decided
	}
	// The run of digits and separators from i, within 48 bytes.
	digits := 0
	for j := i; j < len(d) && j-i < 48 && digits < 6; {
		if c := d[j]; c < utf8.RuneSelf {
			if isDigit(c) {
				digits++
			} else if strings.IndexByte(" -./", c) < 0 {
				break
			}
			j++
			continue
		}
		r, rn := utf8.DecodeRune(d[j:])
		if !isDigit(foldASCII(r)) {
			break
		}
		digits++
		j += rn
	}
	return digits >= 6
}

// viewKeyReach is how far before a finding in the decoded view a decoded
// character still counts as what revealed it: a key name and its
// separator.
const viewKeyReach = 32

// maxPooledView bounds the decoded view buffers a scanner keeps for reuse.
const maxPooledView = 64 << 10

// appendOffsets appends the offsets s..e-1 to at.
func appendOffsets(at []int32, s, e int) []int32 {
	n := len(at)
	at = slices.Grow(at, e-s)[:n+e-s]
	for k := range e - s {
		at[n+k] = int32(s + k)
	}
	return at
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
