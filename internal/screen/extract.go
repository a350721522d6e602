package screen

import (
	"bytes"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// extractJSONText returns the keys and string values of data, one per line, when data is
// a JSON object, array or string; JSON nested inside a string value is walked too, up to
// depth levels. Numbers, booleans and null carry no words and are skipped.
func extractJSONText(data []byte, depth int) (string, bool) {
	t := bytes.TrimLeft(data, " \t\r\n")
	if len(t) == 0 || (t[0] != '{' && t[0] != '[' && t[0] != '"') || !validJSON(t) {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(t))
	appendJSONStrings(&b, t, depth)
	return b.String(), true
}

// appendJSONStrings appends every string literal of the valid JSON in data.
func appendJSONStrings(b *strings.Builder, data []byte, depth int) {
	for i := 0; i < len(data); i++ {
		k := bytes.IndexByte(data[i:], '"')
		if k < 0 {
			return
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
		if bytes.IndexByte(raw, '\\') < 0 {
			// No escapes: the body is the value; no copy of it.
			if inner := bytes.TrimSpace(raw); depth > 1 && len(inner) > 1 && (inner[0] == '{' || inner[0] == '[') && validJSON(inner) {
				appendJSONStrings(b, inner, depth-1)
			} else {
				b.Write(raw)
				b.WriteByte('\n')
			}
			continue
		}
		s := unquoteJSON(raw)
		if inner := strings.TrimSpace(s); depth > 1 && len(inner) > 1 && (inner[0] == '{' || inner[0] == '[') && validJSON([]byte(inner)) {
			appendJSONStrings(b, []byte(inner), depth-1)
		} else {
			b.WriteString(s)
			b.WriteByte('\n')
		}
	}
}

// unquoteJSON decodes the escapes of a JSON string body that json.Valid accepted.
func unquoteJSON(s []byte) string {
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			// Copy the run up to the next escape (or a lone trailing backslash) at once.
			j := bytes.IndexByte(s[i+1:], '\\')
			if j < 0 {
				j = len(s)
			} else {
				j += i + 1
			}
			b.Write(s[i:j])
			i = j - 1
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			r, n := jsonUnicodeEscape(s[i+1:])
			if n == 0 {
				b.WriteByte('u')
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
			b.WriteRune(r)
		default: // \" \\ \/
			b.WriteByte(s[i])
		}
	}
	return b.String()
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
