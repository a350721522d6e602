// Package jsonenc appends JSON values by hand, byte for byte as
// encoding/json writes them, for the few hot paths where json.Marshal's
// reflection costs more than the value.
package jsonenc

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/internal/jsonsyntax"
)

const hexDigits = "0123456789abcdef"

// htmlSafe reports whether encoding/json (which escapes HTML by default)
// writes ASCII byte c as is inside a string.
func htmlSafe(c byte) bool {
	return c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// AppendString appends s as json.Marshal writes a string: HTML characters
// (<, >, &) and U+2028, U+2029 escaped as \u00XX and \u202X, the control
// characters \b, \f, \n, \r and \t in their short forms and the others as
// \u00XX, each byte that is not UTF-8 as \ufffd.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if htmlSafe(c) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendFloat64 appends f as json.Marshal writes a float64 (ES6 number
// formatting: exponent form below 1e-6 and from 1e21, no padded exponent).
// NaN and the infinities have no JSON form: it returns ok false for them, as
// json.Marshal returns an error.
func AppendFloat64(b []byte, f float64) (_ []byte, ok bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9, as json.Marshal does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// AppendRaw appends raw as json.Marshal writes a json.RawMessage: checked,
// compacted, with <, >, & and U+2028, U+2029 escaped; nil as null. Raw JSON
// that is already compact and holds none of those characters (a peer's
// compacted answer, usually) is copied as it is after one check; anything
// else goes through json.Marshal itself. Invalid JSON is an error, as it is
// for json.Marshal.
func AppendRaw(b []byte, raw json.RawMessage) ([]byte, error) {
	if raw != nil && !needsEscape(raw) {
		if valid, compact := jsonsyntax.ValidCompact(raw); valid && compact {
			return append(b, raw...), nil
		}
	}
	m, err := json.Marshal(raw)
	if err != nil {
		return b, err
	}
	return append(b, m...), nil
}

// needsEscape reports whether raw holds a byte json.Marshal may rewrite in a
// json.RawMessage: <, >, & or the first byte of U+2028 and U+2029.
func needsEscape(raw []byte) bool {
	for _, c := range raw {
		if c == '<' || c == '>' || c == '&' || c == 0xe2 {
			return true
		}
	}
	return false
}
