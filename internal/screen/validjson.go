package screen

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
)

// maxFastDepth bounds the nesting validJSON checks itself; deeper documents (rare, and
// encoding/json allows 10,000 levels) go to json.Valid.
const maxFastDepth = 64

// validJSON reports exactly what json.Valid reports, in one pass over the bytes
// without the standard scanner's call per byte: the screen checks every payload
// that starts like JSON, and every string that does.
func validJSON(data []byte) bool {
	ok, _ := walkJSON(data, nil)
	return ok
}

// ValidJSON reports exactly what encoding/json.Valid reports, about three
// times faster: the node checks that every call's input and result are JSON
// before they are screened.
func ValidJSON(data []byte) bool { return validJSON(data) }

// jsonSpan is the body of one string literal, data[start:end]; esc says it has escapes.
type jsonSpan struct {
	start, end int
	esc        bool
}

// walkJSON is validJSON that also appends, when spans is not nil, the body of every
// string literal (keys and values) in document order, so the screen can take the
// strings out without a second walk. complete is false when a document nested deeper
// than maxFastDepth left the answer to json.Valid and spans unfilled.
func walkJSON(data []byte, spans *[]jsonSpan) (valid, complete bool) {
	var stack [maxFastDepth]byte // the open containers: '{' or '['
	depth, n := 0, len(data)
	i := skipJSONSpace(data, 0)
	for {
		// A value starts at i.
		if i >= n {
			return false, true
		}
		switch c := data[i]; {
		case c == '{' || c == '[':
			if depth == maxFastDepth {
				return json.Valid(data), false
			}
			stack[depth] = c
			depth++
			i = skipJSONSpace(data, i+1)
			if i < n && data[i] == c+2 { // '}' or ']': empty
				depth--
				i++
				break
			}
			if c == '{' {
				var ok bool
				if i, ok = jsonKey(data, i, spans); !ok {
					return false, true
				}
			}
			continue
		case c == '"':
			var ok bool
			if i, ok = jsonString(data, i, spans); !ok {
				return false, true
			}
		case c == '-' || c >= '0' && c <= '9':
			var ok bool
			if i, ok = jsonNumber(data, i); !ok {
				return false, true
			}
		case c == 't':
			if !hasPrefixAt(data, i, "true") {
				return false, true
			}
			i += 4
		case c == 'f':
			if !hasPrefixAt(data, i, "false") {
				return false, true
			}
			i += 5
		case c == 'n':
			if !hasPrefixAt(data, i, "null") {
				return false, true
			}
			i += 4
		default:
			return false, true
		}
		// A value ended before i: close containers, or go on after a comma.
		for {
			i = skipJSONSpace(data, i)
			if depth == 0 {
				return i == n, true
			}
			if i >= n {
				return false, true
			}
			top, c := stack[depth-1], data[i]
			if c == top+2 {
				depth--
				i++
				continue
			}
			if c != ',' {
				return false, true
			}
			i = skipJSONSpace(data, i+1)
			if top == '{' {
				var ok bool
				if i, ok = jsonKey(data, i, spans); !ok {
					return false, true
				}
			}
			break
		}
	}
}

func skipJSONSpace(data []byte, i int) int {
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

// jsonKey reads `"key" :` and the space after it, returning where the value starts.
func jsonKey(data []byte, i int, spans *[]jsonSpan) (int, bool) {
	if i >= len(data) || data[i] != '"' {
		return i, false
	}
	i, ok := jsonString(data, i, spans)
	if !ok {
		return i, false
	}
	i = skipJSONSpace(data, i)
	if i >= len(data) || data[i] != ':' {
		return i, false
	}
	return skipJSONSpace(data, i+1), true
}

// jsonString reads the string literal at i (data[i] == '"') and returns the index
// after its closing quote. Like encoding/json, it does not check UTF-8. When spans is
// not nil it appends the literal's body there.
func jsonString(data []byte, i int, spans *[]jsonSpan) (int, bool) {
	start, esc := i+1, false
	for i++; i < len(data); i++ {
		for i+8 <= len(data) {
			m := specialJSONString8(binary.LittleEndian.Uint64(data[i:]))
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
				*spans = append(*spans, jsonSpan{start: start, end: i, esc: esc})
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
				if i+4 >= len(data) || !isHexByte(data[i+1]) || !isHexByte(data[i+2]) || !isHexByte(data[i+3]) || !isHexByte(data[i+4]) {
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

// jsonNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at i.
func jsonNumber(data []byte, i int) (int, bool) {
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

// specialJSONString8 sets the high bit of the bytes of w that end a JSON string or
// need a look (a quote, a backslash, a control character); zero means none. Each test
// is the "some byte is zero / below n" word trick, exact up to its first hit, so the
// lowest bit set marks the first such byte.
func specialJSONString8(w uint64) uint64 {
	quote := w ^ '"'*lo8
	bslash := w ^ '\\'*lo8
	return ((w-0x20*lo8)&^w | (quote-lo8)&^quote | (bslash-lo8)&^bslash) & hi8
}
