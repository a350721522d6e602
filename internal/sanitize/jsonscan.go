package sanitize

// maxJSONDepth is encoding/json's nesting limit: deeper documents are not
// valid JSON to it, so they are not to validJSON either.
const maxJSONDepth = 10000

// jsonStr marks the bytes that end a run of plain string content: the
// quote, the backslash and the control characters JSON forbids raw.
var jsonStr = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// validJSON reports whether d is one JSON value as encoding/json.Valid
// decides (any bytes from 0x20 up inside strings, its nesting limit), in one
// pass without a per-byte indirect call. When toks is not nil and d is
// valid, the strings (keys included, with their quotes) and numbers of d
// are appended to *toks in order: what jsonTokens lists.
func validJSON(d []byte, toks *[]jsonTok) bool {
	var stackBuf [32]bool // true: object, false: array
	stack := stackBuf[:0]
	n := len(d)
	i := skipJSONSpace(d, 0)
	ok := false
value:
	if i >= n {
		return false
	}
	switch c := d[i]; {
	case c == '{':
		if len(stack) == maxJSONDepth {
			return false
		}
		stack = append(stack, true)
		i = skipJSONSpace(d, i+1)
		if i < n && d[i] == '}' {
			stack = stack[:len(stack)-1]
			i++
			goto after
		}
		if i, ok = jsonKey(d, i, toks); !ok {
			return false
		}
		goto value
	case c == '[':
		if len(stack) == maxJSONDepth {
			return false
		}
		stack = append(stack, false)
		i = skipJSONSpace(d, i+1)
		if i < n && d[i] == ']' {
			stack = stack[:len(stack)-1]
			i++
			goto after
		}
		goto value
	case c == '"':
		if i, ok = jsonString(d, i, toks); !ok {
			return false
		}
	case c == '-' || isDigit(c):
		if i, ok = jsonNumber(d, i, toks); !ok {
			return false
		}
	case c == 't':
		if i, ok = jsonLiteral(d, i, "true"); !ok {
			return false
		}
	case c == 'f':
		if i, ok = jsonLiteral(d, i, "false"); !ok {
			return false
		}
	case c == 'n':
		if i, ok = jsonLiteral(d, i, "null"); !ok {
			return false
		}
	default:
		return false
	}
after:
	i = skipJSONSpace(d, i)
	if len(stack) == 0 {
		return i == n
	}
	if i >= n {
		return false
	}
	obj := stack[len(stack)-1]
	switch {
	case d[i] == ',':
		i = skipJSONSpace(d, i+1)
		if obj {
			if i, ok = jsonKey(d, i, toks); !ok {
				return false
			}
		}
		goto value
	case obj && d[i] == '}', !obj && d[i] == ']':
		stack = stack[:len(stack)-1]
		i++
		goto after
	}
	return false
}

func skipJSONSpace(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\n' || d[i] == '\t' || d[i] == '\r') {
		i++
	}
	return i
}

// jsonKey reads an object key at i, the colon after it and the space
// before the value, and returns where the value starts.
func jsonKey(d []byte, i int, toks *[]jsonTok) (int, bool) {
	if i >= len(d) || d[i] != '"' {
		return 0, false
	}
	i, ok := jsonString(d, i, toks)
	if !ok {
		return 0, false
	}
	i = skipJSONSpace(d, i)
	if i >= len(d) || d[i] != ':' {
		return 0, false
	}
	return skipJSONSpace(d, i+1), true
}

// jsonString reads the string whose quote is at i and returns the index
// after its closing quote.
func jsonString(d []byte, i int, toks *[]jsonTok) (int, bool) {
	s := i
	i++
	for {
		for i < len(d) && !jsonStr[d[i]] {
			i++
		}
		if i >= len(d) {
			return 0, false
		}
		switch d[i] {
		case '"':
			i++
			if toks != nil {
				*toks = append(*toks, jsonTok{s, i, true})
			}
			return i, true
		case '\\':
			if i+1 >= len(d) {
				return 0, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) || !isHex(d[i+5]) {
					return 0, false
				}
				i += 6
			default:
				return 0, false
			}
		default:
			return 0, false // a control character
		}
	}
}

// jsonNumber reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? at i.
func jsonNumber(d []byte, i int, toks *[]jsonTok) (int, bool) {
	s := i
	n := len(d)
	if d[i] == '-' {
		i++
	}
	switch {
	case i < n && d[i] == '0':
		i++
	case i < n && isDigit(d[i]):
		for i < n && isDigit(d[i]) {
			i++
		}
	default:
		return 0, false
	}
	if i < n && d[i] == '.' {
		i++
		if i >= n || !isDigit(d[i]) {
			return 0, false
		}
		for i < n && isDigit(d[i]) {
			i++
		}
	}
	if i < n && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < n && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= n || !isDigit(d[i]) {
			return 0, false
		}
		for i < n && isDigit(d[i]) {
			i++
		}
	}
	if toks != nil {
		*toks = append(*toks, jsonTok{s, i, false})
	}
	return i, true
}

func jsonLiteral(d []byte, i int, lit string) (int, bool) {
	if i+len(lit) > len(d) || string(d[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}
