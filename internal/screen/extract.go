package screen

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/internal/jsonsyntax"
)

// jsonScratch is the memory one extraction can reuse from an earlier one.
type jsonScratch struct {
	out   []byte
	spans []jsonsyntax.Span
}

// extractJSONText appends to sc.out the keys and string values of data, one per line,
// when data is a JSON object, array or string; JSON nested inside a string value is
// walked too, up to depth levels. Numbers, booleans and null carry no words and are
// skipped. The document is walked once: validation records where its strings are.
func extractJSONText(data []byte, depth int, sc *jsonScratch) ([]byte, bool) {
	t := bytes.TrimLeft(data, " \t\r\n")
	if len(t) == 0 || (t[0] != '{' && t[0] != '[' && t[0] != '"') {
		return nil, false
	}
	out := sc.out[:0]
	if cap(out) < len(t) {
		out = make([]byte, 0, len(t))
	}
	out, ok := appendJSONDoc(out, t, depth, &sc.spans)
	sc.out = out[:0]
	return out, ok
}

// appendJSONDoc appends every string literal of data when data is valid JSON, and
// reports whether it was; invalid data appends nothing. spans is scratch: what it
// holds on entry is kept.
func appendJSONDoc(out, data []byte, depth int, spans *[]jsonsyntax.Span) ([]byte, bool) {
	lo := len(*spans)
	valid, complete := jsonsyntax.Walk(data, spans)
	if !valid || !complete {
		*spans = (*spans)[:lo]
		if valid { // nested too deep for jsonsyntax.Walk: the slower two-pass extraction
			out = appendJSONStrings(out, data, depth)
		}
		return out, valid
	}
	for k := lo; k < len(*spans); k++ {
		sp := (*spans)[k]
		raw := data[sp.Start:sp.End]
		if !sp.Escaped {
			// No escapes: the body is the value.
			if inner := bytes.TrimSpace(raw); depth > 1 && len(inner) > 1 && (inner[0] == '{' || inner[0] == '[') {
				var ok bool
				if out, ok = appendJSONDoc(out, inner, depth-1, spans); ok {
					continue
				}
			}
			out = append(append(out, raw...), '\n')
			continue
		}
		at := len(out)
		out = appendUnquoted(out, raw)
		if inner := bytes.TrimSpace(out[at:]); depth > 1 && len(inner) > 1 && (inner[0] == '{' || inner[0] == '[') {
			// Rare: a JSON document escaped inside a string. It is walked from a copy,
			// since its strings are appended where it now lies.
			doc := bytes.Clone(inner)
			var ok bool
			if out, ok = appendJSONDoc(out[:at], doc, depth-1, spans); ok {
				continue
			}
			out = appendUnquoted(out[:at], raw) // not JSON after all: the text again
		}
		out = append(out, '\n')
	}
	*spans = (*spans)[:lo]
	return out, true
}

// appendJSONStrings appends every string literal of the valid JSON in data, for the
// documents jsonsyntax.Walk leaves to json.Valid.
func appendJSONStrings(out, data []byte, depth int) []byte {
	for i := 0; i < len(data); i++ {
		k := bytes.IndexByte(data[i:], '"')
		if k < 0 {
			return out
		}
		i += k
		// The closing quote: the first '"' that no backslash escapes. q, the next
		// quote at or after j, is searched again only when an escape consumed it, so
		// every byte is read a bounded number of times.
		j, q := i+1, -1
		for j < len(data) {
			if q < j {
				r := bytes.IndexByte(data[j:], '"')
				if r < 0 {
					j = len(data)
					break
				}
				q = j + r
			}
			e := bytes.IndexByte(data[j:q], '\\')
			if e < 0 {
				j = q
				break
			}
			j += e + 2 // the backslash and the byte it escapes
		}
		if j > len(data) {
			j = len(data)
		}
		raw := data[i+1 : min(j, len(data))]
		i = j
		s := appendUnquoted(nil, raw)
		if inner := bytes.TrimSpace(s); depth > 1 && len(inner) > 1 && (inner[0] == '{' || inner[0] == '[') && jsonsyntax.Valid(inner) {
			out = appendJSONStrings(out, inner, depth-1)
		} else {
			out = append(append(out, s...), '\n')
		}
	}
	return out
}

// appendUnquoted appends the JSON string body s with its escapes decoded.
func appendUnquoted(b, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			// Copy the run up to the next escape (or a lone trailing backslash) at once.
			j := bytes.IndexByte(s[i+1:], '\\')
			if j < 0 {
				j = len(s)
			} else {
				j += i + 1
			}
			b = append(b, s[i:j]...)
			i = j - 1
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b = append(b, '\n')
		case 't':
			b = append(b, '\t')
		case 'r':
			b = append(b, '\r')
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'u':
			r, n := jsonUnicodeEscape(s[i+1:])
			if n == 0 {
				b = append(b, 'u')
				continue
			}
			i += n
			if utf16.IsSurrogate(r) {
				if r2, n2 := jsonUnicodeEscape(trimEscapePrefix(s[i+1:])); n2 > 0 {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += n2 + 2
					}
				}
			}
			b = utf8.AppendRune(b, r)
		default: // \" \\ \/
			b = append(b, s[i])
		}
	}
	return b
}

func trimEscapePrefix(s []byte) []byte {
	if len(s) >= 2 && s[0] == '\\' && s[1] == 'u' {
		return s[2:]
	}
	return nil
}

func jsonUnicodeEscape(s []byte) (rune, int) {
	if len(s) < 4 {
		return 0, 0
	}
	var r rune
	for _, c := range s[:4] {
		if !isHexByte(c) {
			return 0, 0
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, 4
}
