package sanitize

import (
	"encoding/binary"
	"net/netip"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// piiTrigger marks the bytes where a PII detector may start: digits (numbers
// of every kind, and IBANs through the two letters before them), '@' (email)
// and ':' (IPv6). Everything else is skipped in the scan's inner loop.
var piiTrigger = func() (t [256]uint8) {
	for b := '0'; b <= '9'; b++ {
		t[b] = 1
	}
	t['@'] = 2
	t[':'] = 3
	return t
}()

// scanPII runs the PII detectors over the whole input.
func (sc *scanner) scanPII() {
	d := sc.data
	n := len(d)
	for i := 0; i < n; i++ {
		// Eight bytes at a time while none is a digit, ':' or '@'.
		for i+8 <= n && !hasTrigger8(binary.LittleEndian.Uint64(d[i:])) {
			i += 8
		}
		for i < n && piiTrigger[d[i]] == 0 {
			i++
		}
		if i >= n {
			return
		}
		switch piiTrigger[d[i]] {
		case 1:
			if i < sc.numDone || (i > 0 && isDigit(d[i-1])) {
				continue
			}
			// Inside a word (a3f2, v1, ORD2024): no number starts here, unless
			// two capitals open an IBAN.
			if i > 0 && isIdent(d[i-1]) && !escapedAt(d, i-1) &&
				!(i >= 2 && isUpper(d[i-1]) && isUpper(d[i-2]) && !wordBefore(d, i-2)) {
				// A lower- or mixed-case IBAN (de89 3704 ..., gb82West...) is
				// only ever an IBAN: its checksum decides, no other number
				// starts inside the word.
				if i >= 2 && i+1 < n && isLetter(d[i-1]) && isLetter(d[i-2]) && isDigit(d[i+1]) && !wordBefore(d, i-2) {
					if e := sc.iban(i - 2); e > 0 {
						sc.numDone = e
						i = e - 1
						continue
					}
				}
				for i+1 < n && isIdent(d[i+1]) {
					i++
				}
				continue
			}
			sc.numeric(i)
			if sc.numDone > i+1 {
				i = sc.numDone - 1 // continue after the number
			}
		case 2:
			sc.email(i)
		case 3:
			if i >= sc.v6Done {
				sc.ipv6(i)
			}
		}
	}
}

// hasTrigger8 reports whether any of the eight bytes in x lies in
// '0'..'@' (0x30-0x40): digits, ':' and '@', and also ;<=>? which the byte
// loop then skips. It never reports false for a trigger byte.
func hasTrigger8(x uint64) bool {
	const ones = 0x0101010101010101
	const high = 0x8080808080808080
	// For bytes below 0x80: y-0x30 keeps the high bit iff y >= 0x30, and
	// y+0x3f sets it iff y >= 0x41. Bytes >= 0x80 are masked out.
	y := x &^ high
	ge30 := (y + ones*(0x80-0x30)) & high
	ge41 := (y + ones*(0x80-0x41)) & high
	return ge30&^ge41&^x != 0
}

// numBoundaryBefore reports whether a number may start at i: not inside a
// word, a version, a date, a time, a money amount or an identifier such as
// ORD-2024-367922.
func numBoundaryBefore(d []byte, i int) bool {
	if i == 0 {
		return true
	}
	b := d[i-1]
	if isIdent(b) {
		return escapedAt(d, i-1)
	}
	if i >= 2 {
		p := d[i-2]
		switch b {
		case '.':
			if isAlnum(p) {
				return false // 1.5, v1.2, x.5
			}
		case ',':
			if moneyComma(d, i-1) {
				return false // 11,577
			}
		case ':', '/':
			if isDigit(p) {
				return false // 12:30  11/28
			}
		case '-':
			if isAlnum(p) && !escapedAt(d, i-2) {
				return false // ORD-2024, 2024-11
			}
		}
	}
	return true
}

// moneyComma reports whether the comma at c separates thousands: one to
// three digits before it, exactly three after. A CSV row (1000,761-530-2260)
// has other shapes.
func moneyComma(d []byte, c int) bool {
	b := c
	for b > 0 && isDigit(d[b-1]) {
		b--
	}
	if c-b < 1 || c-b > 3 {
		return false
	}
	a := c + 1
	for a < len(d) && isDigit(d[a]) {
		a++
	}
	return a-c-1 == 3
}

// numTok is a run of digit groups with single separators between them.
type numTok struct {
	gs, ge [8]int  // group bounds
	sep    [8]byte // sep[k] precedes group k+1
	n      int     // groups
	digits int
	start  int // first byte, including a leading '+' or '('
	end    int // after the last digit
	plus   bool
	paren  bool // the first group is a parenthesised area code
}

// readNum reads groups of digits from i (a digit) with separators ' ', '-', '.'
// and a parenthesised area code.
func readNum(d []byte, i int, t *numTok) {
	n := len(d)
	p := i
	for t.n < len(t.gs) {
		q := p
		for q < n && isDigit(d[q]) {
			q++
		}
		t.gs[t.n], t.ge[t.n] = p, q
		t.digits += q - p
		t.n++
		t.end = q
		if t.digits > 24 || q >= n {
			return
		}
		switch c := d[q]; {
		case (c == ' ' || c == '-' || c == '.') && q+1 < n && isDigit(d[q+1]):
			t.sep[t.n-1] = c
			p = q + 1
		case c == ')' && t.paren && t.n == 1:
			// (415) 555-0100
			r := q + 1
			if r < n && (d[r] == ' ' || d[r] == '-') {
				r++
			}
			if r >= n || !isDigit(d[r]) {
				return
			}
			t.sep[t.n-1] = ')'
			p = r
		case c == ' ' && t.plus && q+2 < n && d[q+1] == '(' && isDigit(d[q+2]):
			// +44 (0)20 7946 0958
			r := q + 2
			for r < n && isDigit(d[r]) {
				r++
			}
			if r+1 >= n || d[r] != ')' || !(d[r+1] == ' ' || isDigit(d[r+1])) {
				return
			}
			t.sep[t.n-1] = '('
			p = q + 2
			// Read the bracketed trunk digits as a group of their own.
			t.gs[t.n], t.ge[t.n] = p, r
			t.digits += r - p
			t.n++
			t.sep[t.n-1] = ')'
			p = r + 1
			if d[p] == ' ' {
				p++
			}
			if p >= n || !isDigit(d[p]) || t.n >= len(t.gs) {
				t.end = r + 1
				return
			}
		default:
			return
		}
	}
}

func (t *numTok) glen(k int) int { return t.ge[k] - t.gs[k] }

func (t *numTok) shape(lens ...int) bool {
	if t.n != len(lens) {
		return false
	}
	for k, l := range lens {
		if t.glen(k) != l {
			return false
		}
	}
	return true
}

// sepsAll reports whether every separator is c.
func (t *numTok) sepsAll(c byte) bool {
	for k := 0; k < t.n-1; k++ {
		if t.sep[k] != c {
			return false
		}
	}
	return true
}

func (t *numTok) hasSep(c byte) bool {
	for k := 0; k < t.n-1; k++ {
		if t.sep[k] == c {
			return true
		}
	}
	return false
}

// digitsOf appends the token's digits to buf.
func (t *numTok) digitsOf(d []byte, buf []byte) []byte {
	for k := 0; k < t.n; k++ {
		buf = append(buf, d[t.gs[k]:t.ge[k]]...)
	}
	return buf
}

func atoiN(b []byte) int {
	v := 0
	for _, c := range b {
		v = v*10 + int(c-'0')
	}
	return v
}

// numeric classifies the number that starts at i (a digit after a non-digit).
func (sc *scanner) numeric(i int) {
	d := sc.data
	n := len(d)
	// An IBAN starts with two capital letters: DE89 3704 ...
	if i >= 2 && isUpper(d[i-1]) && isUpper(d[i-2]) && !wordBefore(d, i-2) && i+1 < n && isDigit(d[i+1]) {
		if e := sc.iban(i - 2); e > 0 {
			sc.numDone = e // valid or not, its digits are not another number
			return
		}
	}
	var t numTok
	t.start = i
	switch {
	case i > 0 && d[i-1] == '+' && !wordBefore(d, i-1):
		t.plus = true
		t.start = i - 1
	case i > 0 && d[i-1] == '(' && !wordBefore(d, i-1):
		t.paren = true
		t.start = i - 1
	case !numBoundaryBefore(d, i):
		j := i
		for j < n && isDigit(d[j]) {
			j++
		}
		sc.numDone = j
		return
	}
	readNum(d, i, &t)
	sc.numDone = t.end
	e := t.end
	// The number must end at a boundary too.
	if e < n {
		c := d[e]
		if isIdent(c) || c == '@' {
			return
		}
		if e+1 < n {
			next := d[e+1]
			ip4 := t.n == 4 && t.sepsAll('.')
			switch c {
			case '-', '.':
				if isAlnum(next) {
					return // 2024-11-28T..., 1.2.3.4.5, 555-0100-x
				}
			case ',':
				if moneyComma(d, e) {
					return // 11,577
				}
			case ':':
				if isAlnum(next) && !ip4 {
					return // 12:30 (an address may have a port)
				}
			case '/':
				if isDigit(next) && !ip4 {
					return // 11/28 (an address may have a prefix length)
				}
			}
		}
	}
	if t.paren && (t.n < 2 || t.sep[0] != ')') {
		// "(058-56-1401": the parenthesis is punctuation, not an area code.
		t = numTok{start: i}
		readNum(d, i, &t)
		if t.end != sc.numDone {
			return
		}
	}
	switch {
	case t.n == 4 && t.sepsAll('.') && !t.plus && !t.paren:
		if validIPv4(d, &t) {
			sc.add(t.start, e, CategoryIPv4, "ipv4")
		}
		return
	case t.hasSep('.') && !(t.n == 3 && t.shape(3, 3, 4) && (t.sepsAll('.') || t.paren && t.sep[0] == ')')) && !t.plus:
		return // versions, decimals, dotted dates
	}
	var buf [32]byte
	digits := t.digitsOf(d, buf[:0])

	if !t.plus && !t.paren {
		// US SSN: AAA-GG-SSSS anywhere; nine digits in a row only with SSN context.
		if t.shape(3, 2, 4) && (t.sepsAll('-') || (t.sepsAll(' ') && sc.ssnContext(t.start))) {
			if validSSN(digits) {
				sc.add(t.start, e, CategoryUSSSN, "us-ssn")
			}
			return
		}
		if t.n == 1 && len(digits) == 9 && sc.ssnContext(t.start) {
			if validSSN(digits) {
				sc.add(t.start, e, CategoryUSSSN, "us-ssn-context")
			}
			return
		}
		// Payment cards: 13-19 digits, ungrouped or in groups of four (Amex 4-6-5).
		if l := len(digits); l >= 13 && l <= 19 && cardGrouping(&t) {
			if cardBrand(digits) && luhn(digits) {
				sc.add(t.start, e, CategoryCreditCard, "credit-card")
			}
			return
		}
	}
	if sc.phone(d, &t, digits) {
		sc.add(t.start, e, CategoryPhone, "phone")
	}
}

func validIPv4(d []byte, t *numTok) bool {
	for k := 0; k < 4; k++ {
		g := d[t.gs[k]:t.ge[k]]
		if len(g) > 3 || (len(g) > 1 && g[0] == '0') || atoiN(g) > 255 {
			return false
		}
	}
	// Not part of a longer dotted run (1.2.3.4.5) or preceded by a dot.
	if t.start > 0 && d[t.start-1] == '.' {
		return false
	}
	return true
}

func validSSN(d []byte) bool {
	if len(d) != 9 {
		return false
	}
	area, group, serial := atoiN(d[0:3]), atoiN(d[3:5]), atoiN(d[5:9])
	return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

// cardGrouping accepts 4-4-4-4(-1..4), 4-6-5, 4-6-4 with one separator kind, or
// no separator at all.
func cardGrouping(t *numTok) bool {
	if t.n == 1 {
		return true
	}
	if !(t.sepsAll(' ') || t.sepsAll('-')) {
		return false
	}
	if t.shape(4, 6, 5) || t.shape(4, 6, 4) {
		return true
	}
	for k := 0; k < t.n-1; k++ {
		if t.glen(k) != 4 {
			return false
		}
	}
	return t.n >= 4 && t.glen(t.n-1) >= 1 && t.glen(t.n-1) <= 4
}

// cardBrand: Visa, Mastercard, American Express, Discover.
func cardBrand(d []byte) bool {
	l := len(d)
	p2 := atoiN(d[:2])
	p4 := atoiN(d[:4])
	p6 := atoiN(d[:6])
	switch {
	case d[0] == '4':
		return l == 13 || l == 16 || l == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720:
		return l == 16
	case p2 == 34 || p2 == 37:
		return l == 15
	case p4 == 6011, p2 == 65, p4/10 >= 644 && p4/10 <= 649, p6 >= 622126 && p6 <= 622925:
		return l >= 16 && l <= 19
	}
	return false
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// phone accepts international numbers (+ and 8-15 digits), NANP numbers
// ((415) 555-0100, 415-555-0100, 415.555.0100, 415 555 0100, 1-415-...),
// national numbers with a trunk 0 in spaced groups (020 7946 0958), and bare
// 10-11 digit numbers next to a phone word.
func (sc *scanner) phone(d []byte, t *numTok, digits []byte) bool {
	l := len(digits)
	if t.plus {
		if digits[0] == '0' || l < 8 || l > 15 {
			return false
		}
		if t.n == 1 {
			return l >= 10
		}
		return !t.hasSep('.') || t.sepsAll('.')
	}
	if t.paren {
		// (NXX) NXX-XXXX
		return t.n == 3 && t.shape(3, 3, 4) && nanp(digits) && (t.sep[1] == '-' || t.sep[1] == ' ' || t.sep[1] == '.')
	}
	if t.n == 3 && t.shape(3, 3, 4) && t.sep[0] == t.sep[1] && nanp(digits) {
		return true
	}
	if t.n == 4 && t.shape(1, 3, 3, 4) && digits[0] == '1' && t.sep[0] == t.sep[1] && t.sep[1] == t.sep[2] && t.sep[0] != '.' && nanp(digits[1:]) {
		return true
	}
	if t.n >= 2 && digits[0] == '0' && digits[1] != '0' && (l == 10 || l == 11) && t.sepsAll(' ') && t.glen(0) <= 5 {
		for k := 0; k < t.n; k++ {
			if t.glen(k) < 2 {
				return false
			}
		}
		return true
	}
	if t.n == 1 && (l == 10 || l == 11) && sc.phoneContext(t.start) {
		return true
	}
	return false
}

// nanp checks the North American area code and exchange: both start 2-9.
func nanp(d []byte) bool {
	return len(d) == 10 && d[0] >= '2' && d[3] >= '2'
}

// contextBefore reports whether one of words (lowercase) occurs in the 48 bytes
// before i on the same line.
func contextBefore(d []byte, i int, words []string) bool {
	s := i - 48
	if s < 0 {
		s = 0
	}
	for j := i - 1; j >= s; j-- {
		if d[j] == '\n' {
			s = j + 1
			break
		}
	}
	w := d[s:i]
	for _, k := range words {
		if containsFold(w, k) {
			return true
		}
	}
	return false
}

var ssnWords = []string{"ssn", "social security", "social_security", "socialsecurity", "sozialversicherung"}
var phoneWords = []string{"phone", "tel", "mobile", "cell", "fax", "call", "whatsapp", "sms", "contact number"}

// ssnContext: an SSN word before i on its line, or on the line before when
// this line holds only a short key before the value ({"type": "ssn",
// "value": "..."}; a label above its value in a form).
func (sc *scanner) ssnContext(i int) bool {
	d := sc.data
	if contextBefore(d, i, ssnWords) {
		return true
	}
	ls := i
	for ls > 0 && d[ls-1] != '\n' {
		if i-ls >= 32 {
			return false
		}
		ls--
	}
	return ls > 0 && contextBefore(d, ls-1, ssnWords)
}

func (sc *scanner) phoneContext(i int) bool {
	return contextBefore(sc.data, i, phoneWords)
}

// ibanLen is the IBAN length per country (SWIFT IBAN registry).
var ibanLen = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
	"BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
	"DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
	"GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
	"IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
	"LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
	"MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
	"PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
	"SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
	"TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

// ibanLenTab is ibanLen indexed by the country's two letters (A-Z each),
// 0 for no country: the look-up runs at every digit after two letters.
var ibanLenTab = func() (t [26 * 26]uint8) {
	for cc, n := range ibanLen {
		t[int(cc[0]-'A')*26+int(cc[1]-'A')] = uint8(n)
	}
	return t
}()

// iban reads a compact or grouped IBAN at st: groups of four after the
// first four characters, each group after a space, a dash, a tab or a
// JSON \t escape (one separator between groups, kinds may mix:
// DE89-3704 0044\t0532...), a separator only where a group of four ends.
// It returns the end of an IBAN-shaped run (country, length and grouping
// right), reporting it only when the mod-97 check passes; 0 when the text
// is not IBAN-shaped. A separator inside the first four characters (D-E89,
// DE-89) or two in a row (DE89 - 3704) break the shape; Unicode dashes reach
// here as '-' through the decoded view (see doc.go).
func (sc *scanner) iban(st int) int {
	d := sc.data
	n := len(d)
	// Letters count in either case (an IBAN typed in lower case is the same
	// account); the checksum is computed on the upper-case form.
	a, b := upperByte(d[st]), upperByte(d[st+1])
	if !isUpper(a) || !isUpper(b) {
		return 0
	}
	want := int(ibanLenTab[int(a-'A')*26+int(b-'A')])
	if want == 0 {
		return 0
	}
	var buf [34]byte
	norm := buf[:0]
	p := st
	grouped := false
	strict := false // a separator other than a space: then one at every group's end
	seps := 0
	for p < n && len(norm) < want {
		c := d[p]
		switch {
		case isDigit(c) || isLetter(c):
			norm = append(norm, upperByte(c))
			p++
		case len(norm)%4 == 0 && len(norm) > 0 && (ibanSep(c) || c == '\\' && p+1 < n && d[p+1] == 't' && !escapedAt(d, p)):
			// A tab in a JSON string is the escape \t.
			w := 1
			if c == '\\' {
				w = 2
			}
			if p+w >= n || !isAlnum(d[p+w]) {
				return 0
			}
			if len(norm) == 4 {
				grouped = true
			} else if !grouped {
				return 0
			}
			strict = strict || c != ' '
			seps++
			p += w
		default:
			return 0
		}
	}
	if len(norm) != want || wordAfter(d, p) {
		return 0
	}
	// Dashes and tabs also join other identifiers (UUIDs: ...-be10-
	// f2e1924a067c is a valid Belgian IBAN's shape): grouped by them, an IBAN
	// has every group of four set off, and no dashed piece glued before or
	// after it (DE89-3704-...-00-7).
	if strict && (seps != (want-1)/4 ||
		st >= 2 && d[st-1] == '-' && isAlnum(d[st-2]) ||
		p+1 < n && d[p] == '-' && isAlnum(d[p+1])) {
		return 0
	}
	if ibanMod97(norm) {
		sc.add(st, p, CategoryIBAN, "iban")
	}
	return p
}

// ibanSep reports whether c may stand between an IBAN's groups of four.
func ibanSep(c byte) bool { return c == ' ' || c == '-' || c == '\t' }

// upperByte maps an ASCII lower-case letter to upper case.
func upperByte(c byte) byte {
	if isLower(c) {
		return c - 'a' + 'A'
	}
	return c
}

func ibanMod97(s []byte) bool {
	r := 0
	step := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			v := int(c-'A') + 10
			r = (r*100 + v) % 97
		}
	}
	for _, c := range s[4:] {
		step(c)
	}
	for _, c := range s[:4] {
		step(c)
	}
	return r == 1
}

var emailLocal = func() (t [256]bool) {
	for b := 0; b < 256; b++ {
		c := byte(b)
		t[b] = isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
	}
	return t
}()

var notTLD = map[string]bool{
	"png": true, "jpg": true, "jpeg": true, "gif": true, "svg": true, "webp": true, "ico": true,
	"js": true, "ts": true, "css": true, "html": true, "json": true, "yaml": true, "yml": true,
	"txt": true, "md": true, "py": true, "go": true, "rs": true, "java": true, "rb": true,
	"php": true, "lock": true, "tgz": true, "zip": true,
}

// email reads the address around the '@' at i.
func (sc *scanner) email(i int) {
	d := sc.data
	n := len(d)
	ls := i
	// The local part may hold UTF-8 letters (RFC 6531: tomás@), but starts
	// with ASCII, so that a label glued before it (邮箱：a@b.cn) stays out.
	for ls > 0 && i-ls < 64 && (emailLocal[d[ls-1]] || d[ls-1] >= 0x80) && !escapedAt(d, ls-1) {
		ls--
	}
	for ls < i && (d[ls] == '.' || d[ls] == '+' || d[ls] == '-' || d[ls] >= 0x80) {
		ls++
	}
	if ls == i {
		return
	}
	if ls > 0 && d[ls-1] == '<' && messageIDLine(d, ls) {
		return // <id@host> in Message-ID, In-Reply-To, References: not an address
	}
	// scheme://user:password@host: this '@' ends a URL's userinfo.
	for j := ls - 1; j >= 2 && i-j < 256; j-- {
		c := d[j]
		if isSpace(c) || c == '"' || c == '\'' || c == '<' || c == '>' {
			break
		}
		if c == '/' {
			if d[j-1] == '/' && d[j-2] == ':' {
				return
			}
			break // a path before the '@': not userinfo
		}
	}
	if ls > 0 {
		switch d[ls-1] {
		case ':':
			if !(ls >= 7 && hasPrefixFold(d, ls-7, "mailto:")) {
				return // scheme://user:password@host
			}
		}
	}
	de, ok := emailDomain(d, i, false)
	if !ok && latinExtAt(d[i+1:min(n, i+256)]) {
		// An internationalized domain (bücher.de, göteborg.se): Latin
		// letters with diacritics in its labels, an ASCII top-level domain.
		de, ok = emailDomain(d, i, true)
	}
	if !ok {
		return
	}
	sc.add(ls, de, CategoryEmail, "email")
}

// emailDomain reads the domain after the '@' at i and reports where it ends
// and whether it is one: labels of letters, digits and hyphens (with idn,
// also Latin letters with diacritics), a top-level domain of two ASCII
// letters or more that is not a file extension.
func emailDomain(d []byte, i int, idn bool) (int, bool) {
	n := len(d)
	de := i + 1
	lastDot := -1
	for de < n && de-i < 255 {
		c := d[de]
		if isAlnum(c) || c == '-' {
			de++
			continue
		}
		if idn && c >= 0x80 {
			if r, sz := utf8.DecodeRune(d[de:]); r >= 0xC0 && r <= 0x24F && unicode.IsLetter(r) {
				de += sz
				continue
			}
		}
		if c == '.' && de+1 < n && (isAlnum(d[de+1]) || idn && latinExtLead(d[de+1])) && d[de-1] != '.' && d[de-1] != '@' {
			lastDot = de
			de++
			continue
		}
		break
	}
	if lastDot < 0 || de-lastDot-1 < 2 {
		return 0, false
	}
	if d[i+1] == '-' || d[de-1] == '-' {
		return 0, false
	}
	tld := d[lastDot+1 : de]
	for _, c := range tld {
		if !isLetter(c) {
			return 0, false
		}
	}
	var low [8]byte
	if len(tld) <= len(low) {
		for k, c := range tld {
			low[k] = lowerASCII(c)
		}
		if notTLD[string(low[:len(tld)])] {
			return 0, false
		}
	}
	if de < n && (d[de] == '@' || (isIdent(d[de]))) {
		return 0, false
	}
	return de, true
}

// latinExtLead reports a lead byte of U+00C0..U+024F, the Latin letters with
// diacritics.
func latinExtLead(b byte) bool { return b >= 0xC3 && b <= 0xC9 }

// latinExtAt reports whether b holds a Latin letter with a diacritic.
func latinExtAt(b []byte) bool {
	for _, c := range b {
		if latinExtLead(c) {
			return true
		}
		if isSpace(c) {
			return false // the domain ends at a space
		}
	}
	return false
}

// messageIDHeaders hold message identifiers, which have an address's shape.
var messageIDHeaders = []string{"message-id:", "in-reply-to:", "references:", "content-id:", "x-message-id:"}

// messageIDLine reports whether i lies on a mail header line that holds
// message identifiers. It looks back at most 256 bytes for the line start.
func messageIDLine(d []byte, i int) bool {
	ls := i
	for ls > 0 && d[ls-1] != '\n' {
		if i-ls >= 256 {
			return false
		}
		ls--
	}
	for _, h := range messageIDHeaders {
		if hasPrefixFold(d, ls, h) {
			return true
		}
	}
	return false
}

// ipv6 reads the run of hex digits, colons and dots around the ':' at i and
// keeps it when it parses as an IPv6 address.
func (sc *scanner) ipv6(i int) {
	d := sc.data
	n := len(d)
	if !(i > 0 && (isHex(d[i-1]) || d[i-1] == ':')) && !(i+1 < n && (isHex(d[i+1]) || d[i+1] == ':')) {
		return
	}
	a := i
	for a > 0 && i-a < 64 && (isHex(d[a-1]) || d[a-1] == ':' || d[a-1] == '.') {
		a--
	}
	b := i
	for b < n && b-i < 64 && (isHex(d[b]) || d[b] == ':' || d[b] == '.') {
		b++
	}
	sc.v6Done = b
	for b > a && d[b-1] == '.' {
		b--
	}
	if b-a >= 2 && d[b-1] == ':' && d[b-2] != ':' {
		b-- // trailing colon of a sentence or a port separator
	}
	for a < b && d[a] == '.' {
		a++
	}
	if wordBefore(d, a) || wordAfter(d, b) {
		return
	}
	if a > 0 && (d[a-1] == '-' || d[a-1] == '.') {
		return
	}
	colons, double, hex := 0, false, false
	for k := a; k < b; k++ {
		switch c := d[k]; {
		case c == ':':
			colons++
			if k+1 < b && d[k+1] == ':' {
				double = true
			}
		case c != '.':
			hex = true
		}
	}
	if colons < 2 || !hex || (!double && colons != 7 && colons != 6) {
		return
	}
	s := d[a:b]
	addr, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(s), len(s)))
	if err != nil || !addr.Is6() {
		return
	}
	sc.add(a, b, CategoryIPv6, "ipv6")
}
