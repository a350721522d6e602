// Package jsonsyntax decides whether bytes are one JSON value, with exactly
// encoding/json.Valid's verdict on every input, in one pass without the
// standard scanner's call per byte. It can also report where the document's
// string literals lie, so a reader that wants the strings walks it once.
//
// It never decodes: values are not built, escapes are not undone, and, like
// encoding/json.Valid, the bytes of strings are not checked for UTF-8.
package jsonsyntax

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
)

// MaxDepth bounds the nesting Valid and Walk check themselves; a deeper
// document (rare: encoding/json allows 10,000 levels) is handed to
// encoding/json.Valid, and Walk then reports no spans.
const MaxDepth = 64

// Valid reports exactly what encoding/json.Valid reports.
func Valid(data []byte) bool {
	ok, _ := Walk(data, nil)
	return ok
}

// Span is the body of one string literal, data[Start:End], between its quotes;
// Escaped says the body holds a backslash escape.
type Span struct {
	Start, End int
	Escaped    bool
}

// Walk is Valid that also appends to *spans, when spans is not nil, the body
// of every string literal (object keys and values) in document order. complete
// is false when the document nests deeper than MaxDepth: valid is then
// encoding/json.Valid's verdict and the spans already appended are incomplete.
// On an invalid document the spans appended are meaningless.
func Walk(data []byte, spans *[]Span) (valid, complete bool) {
	valid, complete, _ = walk(data, spans)
	return valid, complete
}

// ValidCompact reports Valid(data), and whether data is also compact: it has
// no whitespace outside its strings, so encoding/json.Compact would give it
// back unchanged. A document nested deeper than MaxDepth is never reported
// compact.
func ValidCompact(data []byte) (valid, compact bool) {
	valid, complete, spaced := walk(data, nil)
	return valid, valid && complete && !spaced
}

// walk is Walk that also reports whether it skipped any whitespace.
func walk(data []byte, spans *[]Span) (valid, complete, spaced bool) {
	var stack [MaxDepth]byte // the open containers: '{' or '['
	depth, n := 0, len(data)
	i := skipSpace(data, 0)
	spaced = i > 0
	for {
		// A value starts at i.
		if i >= n {
			return false, true, spaced
		}
		switch c := data[i]; {
		case c == '{' || c == '[':
			if depth == MaxDepth {
				return json.Valid(data), false, spaced
			}
			stack[depth] = c
			depth++
			j := skipSpace(data, i+1)
			spaced = spaced || j > i+1
			i = j
			if i < n && data[i] == c+2 { // '}' or ']': empty
				depth--
				i++
				break
			}
			if c == '{' {
				var ok bool
				if i, ok = key(data, i, spans, &spaced); !ok {
					return false, true, spaced
				}
			}
			continue
		case c == '"':
			var ok bool
			if i, ok = str(data, i, spans); !ok {
				return false, true, spaced
			}
		case c == '-' || c >= '0' && c <= '9':
			var ok bool
			if i, ok = number(data, i); !ok {
				return false, true, spaced
			}
		case c == 't':
			if !hasPrefixAt(data, i, "true") {
				return false, true, spaced
			}
			i += 4
		case c == 'f':
			if !hasPrefixAt(data, i, "false") {
				return false, true, spaced
			}
			i += 5
		case c == 'n':
			if !hasPrefixAt(data, i, "null") {
				return false, true, spaced
			}
			i += 4
		default:
			return false, true, spaced
		}
		// A value ended before i: close containers, or go on after a comma.
		for {
			j := skipSpace(data, i)
			spaced = spaced || j > i
			i = j
			if depth == 0 {
				return i == n, true, spaced
			}
			if i >= n {
				return false, true, spaced
			}
			top, c := stack[depth-1], data[i]
			if c == top+2 {
				depth--
				i++
				continue
			}
			if c != ',' {
				return false, true, spaced
			}
			j = skipSpace(data, i+1)
			spaced = spaced || j > i+1
			i = j
			if top == '{' {
				var ok bool
				if i, ok = key(data, i, spans, &spaced); !ok {
					return false, true, spaced
				}
			}
			break
		}
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// key reads `"key" :` and the space after it, returning where the value
// starts; it sets *spaced when it skipped whitespace.
func key(data []byte, i int, spans *[]Span, spaced *bool) (int, bool) {
	if i >= len(data) || data[i] != '"' {
		return i, false
	}
	i, ok := str(data, i, spans)
	if !ok {
		return i, false
	}
	j := skipSpace(data, i)
	if j >= len(data) || data[j] != ':' {
		return j, false
	}
	k := skipSpace(data, j+1)
	if j > i || k > j+1 {
		*spaced = true
	}
	return k, true
}

// str reads the string literal at i (data[i] == '"') and returns the index
// after its closing quote. When spans is not nil it appends the literal's body.
func str(data []byte, i int, spans *[]Span) (int, bool) {
	start, esc := i+1, false
	for i++; i < len(data); i++ {
		for i+8 <= len(data) {
			m := special8(binary.LittleEndian.Uint64(data[i:]))
			if m != 0 {
				i += bits.TrailingZeros64(m) / 8 // straight to the first byte that matters
				break
			}
			i += 8
		}
		if i >= len(data) {
			break
		}
		switch c := data[i]; {
		case c == '"':
			if spans != nil {
				*spans = append(*spans, Span{Start: start, End: i, Escaped: esc})
			}
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			esc = true
			i++
			if i >= len(data) {
				return i, false
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(data) || !isHex(data[i+1]) || !isHex(data[i+2]) || !isHex(data[i+3]) || !isHex(data[i+4]) {
					return i, false
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at i.
func number(data []byte, i int) (int, bool) {
	n := len(data)
	if data[i] == '-' {
		i++
	}
	switch {
	case i < n && data[i] == '0':
		i++
	case i < n && data[i] >= '1' && data[i] <= '9':
		i = skipDigits(data, i+1)
	default:
		return i, false
	}
	if i < n && data[i] == '.' {
		j := skipDigits(data, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := skipDigits(data, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}

func hasPrefixAt(data []byte, i int, lit string) bool {
	return len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// special8 sets the high bit of the bytes of w that end a JSON string or need
// a look (a quote, a backslash, a control character); zero means none. Each
// test is the "some byte is zero / below n" word trick, exact up to its first
// hit, so the lowest bit set marks the first such byte.
func special8(w uint64) uint64 {
	quote := w ^ '"'*lo8
	bslash := w ^ '\\'*lo8
	return ((w-0x20*lo8)&^w | (quote-lo8)&^quote | (bslash-lo8)&^bslash) & hi8
}
