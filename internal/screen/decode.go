package screen

import (
	"encoding/base64"
	"encoding/hex"
	"html"
	"strings"
	"unicode"
	"unicode/utf8"
)

// encoded is one decoded payload found in a text.
type encoded struct {
	kind string // "base64", "hex", "unicode-escape", "url", "html-entities"
	text string
}

const (
	minBase64Run  = 16 // 12 bytes decoded: "ignore rules" is already 12
	minHexRun     = 16 // 8 bytes decoded
	maxCandidates = 256
)

// findEncoded returns the payloads in s that decode to text: base64 and hex blobs (each
// decoded alone), and the whole of s with URL escapes or HTML entities decoded (they are
// encodings in place, so a phrase may mix encoded and plain words). A blob that decodes
// to binary (an image, a digest, a key) is not text and is skipped. budget bounds the
// decoded bytes returned; the caller shares it across the whole call.
func findEncoded(s string, budget *int) []encoded {
	var out []encoded
	emit := func(kind, text string) {
		if *budget <= 0 || len(out) >= maxCandidates {
			return
		}
		if len(text) > *budget {
			text = text[:*budget]
		}
		*budget -= len(text)
		out = append(out, encoded{kind: kind, text: text})
	}
	// Hex digits are a subset of the base64 alphabet, so every hex run of interest lies
	// inside a base64-alphabet run of at least the same length: one scan finds both.
	scanRuns(s, &base64Alphabet, minBase64Run, func(run string) {
		if t, ok := decodeBase64Run(run); ok {
			emit("base64", t)
		}
		scanRuns(run, &hexAlphabet, minHexRun, func(h string) {
			if len(h)%2 == 1 {
				h = h[:len(h)-1]
			}
			if b, err := hex.DecodeString(h); err == nil && texty(b) {
				emit("hex", string(b))
			}
		})
	})
	if strings.Contains(s, `\x`) {
		if t, n := decodeEscapedHex(s); n >= 4 && texty([]byte(t)) {
			emit("hex", t)
		}
	}
	if strings.Contains(s, `\u`) {
		// \uXXXX escapes in text that is not JSON (JSON strings are decoded
		// before they get here): a log line or a truncated tool result can
		// hide a zero-width split or lookalike letters so.
		if t, n := decodeEscapedUnicode(s); n >= 2 {
			emit("unicode-escape", t)
		}
	}
	if countPercentEscapes(s, 3) >= 3 {
		if t := percentDecode(s); t != s {
			emit("url", t)
		}
	}
	if strings.Contains(s, "&") && strings.Contains(s, ";") {
		if t := html.UnescapeString(s); t != s {
			emit("html-entities", t)
		}
	}
	return out
}

// base64Alphabet and hexAlphabet are 1 for the bytes in the set, 0 else:
// bytes, not bools, so that eight are tested with one branch.
var base64Alphabet, hexAlphabet = func() (b64, hx [256]uint8) {
	for c := 0; c < 256; c++ {
		if isBase64Byte(byte(c)) {
			b64[c] = 1
		}
		if isHexByte(byte(c)) {
			hx[c] = 1
		}
	}
	return
}()

const (
	caseUpper = 1 << iota
	caseLower
)

// letterCase is caseUpper for A-Z, caseLower for a-z, else 0.
var letterCase = func() (t [256]uint8) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = caseUpper
		t[c+'a'-'A'] = caseLower
	}
	return t
}()

func isBase64Byte(c byte) bool {
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '-' || c == '_' || c == '='
}

func isHexByte(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// scanRuns calls fn for every maximal run of bytes in set, at least min long.
// A run of min bytes that starts at or after i covers i+min-1, so only that byte is
// looked at first: in prose, where runs are words, most bytes are never read.
func scanRuns(s string, set *[256]uint8, min int, fn func(string)) {
	if min < 1 {
		min = 1
	}
	// Invariant: every run that starts before i has been seen, and none covers i.
	for i := 0; i+min <= len(s); {
		p := i + min - 1
		if set[s[p]] == 0 {
			i = p + 1
			continue
		}
		start, end := p, p+1
		for start > i && set[s[start-1]] != 0 {
			start--
		}
		for ; end+8 <= len(s); end += 8 { // runs are long: eight bytes a branch
			w := s[end : end+8]
			if set[w[0]]&set[w[1]]&set[w[2]]&set[w[3]]&set[w[4]]&set[w[5]]&set[w[6]]&set[w[7]] == 0 {
				break
			}
		}
		for end < len(s) && set[s[end]] != 0 {
			end++
		}
		if end-start >= min {
			fn(s[start:end])
		}
		i = end + 1
	}
}

func decodeBase64Run(run string) (string, bool) {
	run = strings.TrimRight(run, "=")
	if i := strings.IndexByte(run, '='); i >= 0 { // padding inside: take the first blob
		run = run[:i]
	}
	if len(run) < minBase64Run {
		return "", false
	}
	// Base64 of text mixes cases; long runs of one case are words, hex or identifiers.
	var cases uint8
	i := 0
	for ; i+8 <= len(run) && cases != caseUpper|caseLower; i += 8 { // one-case runs are read whole
		w := run[i : i+8]
		cases |= letterCase[w[0]] | letterCase[w[1]] | letterCase[w[2]] | letterCase[w[3]] |
			letterCase[w[4]] | letterCase[w[5]] | letterCase[w[6]] | letterCase[w[7]]
	}
	for ; i < len(run); i++ {
		cases |= letterCase[run[i]]
	}
	if cases != caseUpper|caseLower {
		return "", false
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(run, "-_") {
		if strings.ContainsAny(run, "+/") {
			return "", false
		}
		enc = base64.RawURLEncoding
	}
	if len(run)%4 == 1 {
		run = run[:len(run)-1]
	}
	b, err := enc.DecodeString(run)
	if err != nil || !texty(b) {
		return "", false
	}
	return string(b), true
}

// texty reports whether b reads as text: valid UTF-8, mostly printable, mostly letters
// and spaces.
func texty(b []byte) bool {
	if len(b) < 6 || !utf8.Valid(b) {
		return false
	}
	var n, printable, letters int
	for _, r := range string(b) {
		n++
		switch {
		case unicode.IsLetter(r) || r == ' ':
			letters++
			printable++
		case unicode.IsPrint(r) || r == '\n' || r == '\t' || r == '\r':
			printable++
		}
	}
	return printable*100 >= n*95 && letters*100 >= n*60
}

// decodeEscapedHex decodes \xNN escapes in place and reports how many it decoded.
func decodeEscapedHex(s string) (string, int) {
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' && isHexByte(s[i+2]) && isHexByte(s[i+3]) {
			b.WriteByte(unhex(s[i+2])<<4 | unhex(s[i+3]))
			i += 3
			n++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String(), n
}

// decodeEscapedUnicode decodes \uXXXX escapes (surrogate pairs joined) and
// reports how many it decoded.
func decodeEscapedUnicode(s string) (string, int) {
	var b strings.Builder
	n := 0
	hex4 := func(i int) (rune, bool) {
		if i+5 >= len(s) || s[i] != '\\' || s[i+1] != 'u' {
			return 0, false
		}
		var r rune
		for k := i + 2; k < i+6; k++ {
			if !isHexByte(s[k]) {
				return 0, false
			}
			r = r<<4 | rune(unhex(s[k]))
		}
		return r, true
	}
	for i := 0; i < len(s); i++ {
		if r, ok := hex4(i); ok {
			w := 6
			if r >= 0xD800 && r < 0xDC00 {
				if lo, ok := hex4(i + 6); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					r, w = 0x10000+(r-0xD800)<<10+(lo-0xDC00), 12
				}
			}
			b.WriteRune(r) // a lone surrogate becomes U+FFFD
			i += w - 1
			n++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String(), n
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func countPercentEscapes(s string, enough int) int {
	n := 0
	for n < enough {
		i := strings.IndexByte(s, '%')
		if i < 0 || i+2 >= len(s) {
			break
		}
		if isHexByte(s[i+1]) && isHexByte(s[i+2]) {
			n++
			s = s[i+3:]
			continue
		}
		s = s[i+1:]
	}
	return n
}

// percentDecode decodes %XX escapes and leaves everything else, including malformed
// escapes, as it is (net/url would reject the whole string instead).
func percentDecode(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHexByte(s[i+1]) && isHexByte(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
