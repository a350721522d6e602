package sanitize

import (
	"bytes"
	"math"
	"math/bits"
	"slices"
)

// Byte classes used by the hand-written detectors.
const (
	cDigit = 1 << iota
	cUpper
	cLower
	cHex   // 0-9a-fA-F
	cIdent // A-Za-z0-9_ (word characters)
	cB64   // A-Za-z0-9+/=_- (base64 and base64url)
	cSpace // space, tab, CR, LF
)

var byteClass = func() (t [256]uint8) {
	for b := 0; b < 256; b++ {
		c := byte(b)
		switch {
		case '0' <= c && c <= '9':
			t[b] |= cDigit | cHex | cIdent | cB64
		case 'A' <= c && c <= 'Z':
			t[b] |= cUpper | cIdent | cB64
			if c <= 'F' {
				t[b] |= cHex
			}
		case 'a' <= c && c <= 'z':
			t[b] |= cLower | cIdent | cB64
			if c <= 'f' {
				t[b] |= cHex
			}
		}
		switch c {
		case '_':
			t[b] |= cIdent | cB64
		case '+', '/', '=', '-':
			t[b] |= cB64
		case ' ', '\t', '\r', '\n':
			t[b] |= cSpace
		}
	}
	return t
}()

func isDigit(b byte) bool  { return byteClass[b]&cDigit != 0 }
func isUpper(b byte) bool  { return byteClass[b]&cUpper != 0 }
func isAlnum(b byte) bool  { return byteClass[b]&(cDigit|cUpper|cLower) != 0 }
func isHex(b byte) bool    { return byteClass[b]&cHex != 0 }
func isIdent(b byte) bool  { return byteClass[b]&cIdent != 0 }
func isSpace(b byte) bool  { return byteClass[b]&cSpace != 0 }
func isLetter(b byte) bool { return byteClass[b]&(cUpper|cLower) != 0 }

// escapedAt reports whether data[i] is the character of a backslash escape
// (the n of `\n`): text inside JSON strings writes newlines that way, and the
// letter must not glue onto the value that follows it.
func escapedAt(data []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && data[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// wordBefore reports whether the byte before i continues a word (so a token
// starting at i is not at a boundary). An escaped letter (`\n`) does not.
func wordBefore(data []byte, i int) bool {
	if i <= 0 {
		return false
	}
	b := data[i-1]
	if !isIdent(b) {
		return false
	}
	return !escapedAt(data, i-1)
}

// wordAfter reports whether data[i] continues a word.
func wordAfter(data []byte, i int) bool {
	return i < len(data) && isIdent(data[i])
}

// shannon is the Shannon entropy of s in bits per byte. It sums over the
// bytes that occur in ascending byte order, found from a bit set rather
// than a walk of all 256 counts.
func shannon(s []byte) float64 {
	if len(s) == 0 {
		return 0
	}
	var counts [256]int
	var seen [4]uint64
	for _, b := range s {
		counts[b]++
		seen[b>>6] |= 1 << (b & 63)
	}
	inv := 1 / float64(len(s))
	h := 0.0
	// Bytes with the same count have the same logarithm: a secret's bytes
	// mostly occur once or twice, so most are looked up, not computed. The
	// expression and the order of the terms are unchanged, and so is the sum.
	var logs [64]float64
	var have uint64
	for w, bitsW := range seen {
		for ; bitsW != 0; bitsW &= bitsW - 1 {
			c := counts[w<<6|bits.TrailingZeros64(bitsW)]
			f := float64(c) * inv
			var l float64
			switch {
			case c >= len(logs):
				l = math.Log2(f)
			case have&(1<<c) != 0:
				l = logs[c]
			default:
				l = math.Log2(f)
				logs[c], have = l, have|1<<c
			}
			h -= f * l
		}
	}
	return h
}

// hasPrefixFold reports whether data[i:] starts with lower (an ASCII
// lowercase literal), ignoring ASCII case.
func hasPrefixFold(data []byte, i int, lower string) bool {
	if i < 0 || i+len(lower) > len(data) {
		return false
	}
	for k := 0; k < len(lower); k++ {
		if lowerASCII(data[i+k]) != lower[k] {
			return false
		}
	}
	return true
}

// containsFold reports whether s contains the ASCII-lowercase literal lower.
func containsFold(s []byte, lower string) bool { return indexFold(s, lower) >= 0 }

// indexFold is the first index of lower (an ASCII-lowercase literal) in s,
// ignoring ASCII case, or -1. It jumps between candidate first bytes with
// bytes.IndexByte, which is vectorised.
func indexFold(s []byte, lower string) int {
	if len(lower) == 0 {
		return 0
	}
	it := newFoldIter(s, lower)
	return it.next()
}

// foldIter yields the indexes of lower (ASCII-lowercase, not empty) in s,
// ignoring ASCII case. The next candidate of each case of its first byte is
// looked for again only once passed: looking for both from every
// candidate rescanned to the end whenever one case was absent (quadratic
// in repeats of the other).
type foldIter struct {
	s      []byte
	lower  string
	end    int // one past the last index a match can start at
	c0, c1 byte
	p0, p1 int // the next c0 and c1 at or after the last yield, or end
}

func newFoldIter(s []byte, lower string) foldIter {
	it := foldIter{s: s, lower: lower, end: max(0, len(s)-len(lower)+1), c0: lower[0], c1: lower[0]}
	if 'a' <= it.c0 && it.c0 <= 'z' {
		it.c1 = it.c0 - ('a' - 'A')
	}
	it.p0 = it.find(it.c0, 0)
	it.p1 = it.p0
	if it.c1 != it.c0 {
		it.p1 = it.find(it.c1, 0)
	}
	return it
}

func (it *foldIter) find(c byte, from int) int {
	if from < it.end {
		if k := bytes.IndexByte(it.s[from:it.end], c); k >= 0 {
			return from + k
		}
	}
	return it.end
}

// next is the next index of lower, or -1.
func (it *foldIter) next() int {
	for {
		i := min(it.p0, it.p1)
		if i >= it.end {
			return -1
		}
		if it.p0 == i {
			it.p0 = it.find(it.c0, i+1)
		}
		if it.p1 == i {
			it.p1 = it.find(it.c1, i+1)
		}
		if hasPrefixFold(it.s, i, it.lower) {
			return i
		}
	}
}

// lineBounds returns the line of data containing i, without its newline.
func lineBounds(data []byte, i int) (int, int) {
	s := bytes.LastIndexByte(data[:i], '\n') + 1
	e := bytes.IndexByte(data[i:], '\n')
	if e < 0 {
		e = len(data)
	} else {
		e += i
	}
	return s, e
}

var placeholderWords = []string{
	"example", "your_", "your-", "yourkey", "yourtoken", "yourpass", "<your", "redacted",
	"changeme", "change_me", "change-me", "changeit", "placeholder",
	"****", "....", "…", "${", "{{", "%(", "$(", "<%", "insert", "replace_me", "replaceme",
	"notreal", "not-a-real", "not_a_real", "sample",
}

var placeholderExact = []string{
	"password", "passwd", "secret", "token", "apikey", "api_key", "none", "null", "nil",
	"undefined", "true", "false", "n/a", "na", "empty", "hidden", "masked", "unset",
	"default", "test", "testing", "pass", "admin", "root", "user", "value", "string",
	"required", "optional", "env", "...",
}

// placeholderShort are stand-ins short enough to occur by chance inside a
// random token (a 36-character GitHub token holds "XxXX" or "fAkE" about
// once in 10,000), so they count only where a word starts: at the value's
// start or after a byte that is not a letter or digit (ghp_xxxx…, sk_fake_…).
var placeholderShort = []string{"xxxx", "fake", "dummy"}

// placeholderAC finds placeholderWords (its first patterns) and
// placeholderShort in one pass. Immutable.
var placeholderAC = newACMatcher(append(slices.Clip(placeholderWords), placeholderShort...))

// placeholderWord reports whether v holds one of placeholderWords, or one of
// placeholderShort where a word starts.
func placeholderWord(v []byte) bool {
	m := placeholderAC
	delta, class := m.delta, &m.class
	row := int32(0)
	for k, c := range v {
		row = delta[row+int32(class[c])]
		if row >= 0 {
			continue
		}
		row = ^row
		st := int(row) / m.nclass
		for _, p := range m.outs[m.outOff[st]:m.outOff[st+1]] {
			if int(p) < len(placeholderWords) {
				return true
			}
			if start := k + 1 - int(m.patLens[p]); start == 0 || !isAlnum(v[start-1]) {
				return true
			}
		}
	}
	return false
}

// placeholder reports whether v is a stand-in rather than a real value:
// YOUR_API_KEY_HERE, xxxxxxxx, <redacted>, ********, changeme, ${DB_PASSWORD},
// {{ secrets.X }}, AWS's documented EXAMPLE keys, runs of one character.
func placeholder(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	for _, w := range placeholderExact {
		if len(v) == len(w) && containsFold(v, w) {
			return true
		}
	}
	if placeholderWord(v) {
		return true
	}
	switch v[0] {
	case '$', '<', '%', '{', '*':
		return true
	}
	if v[len(v)-1] == '>' || v[len(v)-1] == '}' {
		return true
	}
	// A long run of one character (ghp_XXXX…, sk_live_0000…).
	run, prev := 1, lowerASCII(v[0])
	for _, c := range v[1:] {
		if c = lowerASCII(c); c == prev {
			run++
			if run >= 6 {
				return true
			}
		} else {
			run, prev = 1, c
		}
	}
	return false
}
