package sanitize

import "bytes"

// sessionCookieWords mark a cookie whose value is a session identifier or a
// credential (sessionid, JSESSIONID, connect.sid, csrftoken, .ASPXAUTH,
// remember_user_token, wordpress_logged_in_...; not author). A name ending in
// "sid" counts too; "sid" elsewhere (sidebar) does not.
var sessionCookieWords = []string{"sess", "auth", "token", "jwt", "csrf", "xsrf", "login", "logged", "remember", "secret", "refresh"}

// curlShortFlag is curl's short form of --cookie; it counts only after
// "curl" on the same line (git checkout -b stays).
const curlShortFlag = " -b "

// curlReach is how far after "curl" on its line a -b still counts.
const curlReach = 512

// curlHit records the word "curl" at p and the end of its line, which a
// later curl on the same line reuses, so the look for the line's end stays
// linear.
func (sc *scanner) curlHit(p int) {
	d := sc.data
	if p > 0 && isIdent(d[p-1]) || p+4 < len(d) && isIdent(d[p+4]) {
		return
	}
	sc.curlAt = p
	if p >= sc.curlNL {
		sc.curlNL = len(d)
		if i := bytes.IndexByte(d[p:], '\n'); i >= 0 {
			sc.curlNL = p + i
		}
	}
}

// setCookieAttrs are Set-Cookie attributes: their values are never secrets.
var setCookieAttrs = []string{"path", "domain", "expires", "max-age", "samesite", "secure", "httponly", "priority", "partitioned", "version", "comment"}

// cookieHit runs at "cookie" or curlShortFlag at p (length l): in a Cookie
// or Set-Cookie header (`Cookie: a=b; c=d`, JSON `"Cookie": "..."`, escaped
// or not) or curl's --cookie and -b, it reports the values of session-like cookies and of
// random-looking ones (a UUID only under a session-like name). The names stay, so the header still says which
// cookies were sent.
func (sc *scanner) cookieHit(p, l int) {
	d := sc.data
	if p < sc.cookieDone {
		return
	}
	k := p + l
	var curlFlag bool
	if d[p] == ' ' { // curlShortFlag: on a curl command line only
		if p >= sc.curlNL || p-sc.curlAt > curlReach {
			return
		}
		curlFlag = true
	} else {
		if p > 0 && isAlnum(d[p-1]) {
			return
		}
		if k < len(d) && lowerASCII(d[k]) == 's' {
			k++
		}
		curlFlag = p >= 2 && d[p-1] == '-' && d[p-2] == '-'
		// The name's closing quote, then ':' or '=' (or a space after --cookie).
		if k < len(d) && d[k] == '\\' && k+1 < len(d) && d[k+1] == '"' {
			k += 2
		} else if k < len(d) && (d[k] == '"' || d[k] == '\'') {
			k++
		}
		for k < len(d) && (d[k] == ' ' || d[k] == '\t') {
			k++
		}
		switch {
		case k < len(d) && (d[k] == ':' || d[k] == '='):
			k++
		case curlFlag && k > p+l:
		default:
			return
		}
	}
	for k < len(d) && (d[k] == ' ' || d[k] == '\t') {
		k++
	}
	// The value: quoted (", ', \") up to its closing quote, or to the end
	// of the line.
	var quote []byte
	switch {
	case k+1 < len(d) && d[k] == '\\' && d[k+1] == '"':
		quote = d[k : k+2]
		k += 2
	case k < len(d) && (d[k] == '"' || d[k] == '\''):
		quote = d[k : k+1]
		k++
	}
	end := k
	// The whole header is read, however long: a bound would let ordinary
	// cookies pad a session one out of reach. The work stays linear, as a
	// hit inside a header already read (cookieDone) is skipped.
	for end < len(d) {
		c := d[end]
		if c == '\n' || c == '\r' {
			break
		}
		if quote != nil && bytes.HasPrefix(d[end:], quote) {
			break
		}
		if quote == nil && (c == '"' || c == '\'' || c == '\\' && end+1 < len(d) && (d[end+1] == 'n' || d[end+1] == 'r' || d[end+1] == '"')) {
			break
		}
		if quote == nil && curlFlag && (c == ' ' || c == '\t') {
			break // an unquoted curl argument ends at a space
		}
		end++
	}
	sc.cookieDone = end
	for k < end {
		ps := k
		for k < end && d[k] != ';' && d[k] != ',' {
			k++
		}
		sc.cookiePair(ps, k)
		k++
	}
}

// cookiePair reads one name=value pair at [s, e) and reports its value when
// the name is session-like and the value could be one, or when the value
// looks random whatever its name.
func (sc *scanner) cookiePair(s, e int) {
	d := sc.data
	eq := bytes.IndexByte(d[s:e], '=')
	if eq < 0 {
		return
	}
	name := bytes.TrimSpace(d[s : s+eq])
	vs, ve := s+eq+1, e
	for vs < ve && (d[vs] == ' ' || d[vs] == '\t') {
		vs++
	}
	for ve > vs && (d[ve-1] == ' ' || d[ve-1] == '\t') {
		ve--
	}
	if ve-vs >= 2 && d[vs] == '"' && d[ve-1] == '"' {
		vs, ve = vs+1, ve-1
	}
	if len(name) == 0 || len(name) > 128 || ve <= vs {
		return
	}
	for _, c := range name {
		if c <= ' ' || c == '=' || c >= 0x7f {
			return
		}
	}
	for _, a := range setCookieAttrs {
		if len(name) == len(a) && containsFold(name, a) {
			return
		}
	}
	v := d[vs:ve]
	if sessionCookieName(name) && sessionValue(v) || randomCookieValue(v) {
		sc.add(vs, ve, CategoryGenericAPIKey, "cookie-session")
	}
}

func sessionCookieName(name []byte) bool {
	n := len(name)
	if n >= 3 && lowerASCII(name[n-3]) == 's' && lowerASCII(name[n-2]) == 'i' && lowerASCII(name[n-1]) == 'd' {
		return true
	}
	for _, w := range sessionCookieWords {
		if i := indexFold(name, w); i >= 0 && !(w == "auth" && hasPrefixFold(name, i+4, "or")) {
			return true
		}
	}
	return false
}

// sessionValue: a session cookie's value is one when it is at least eight
// cookie characters, not a placeholder or a word (deleted, anonymous), and
// has a digit, both cases, or sixteen characters of some variety.
func sessionValue(v []byte) bool {
	if len(v) < 8 || len(v) > 4096 || placeholder(v) {
		return false
	}
	var digit, upper, lower bool
	for _, c := range v {
		switch {
		case isDigit(c):
			digit = true
		case isUpper(c):
			upper = true
		case isLower(c):
			lower = true
		case c <= ' ' || c >= 0x7f || c == '"' || c == '\\':
			return false
		}
	}
	return (digit || upper && lower || len(v) >= 16) && tokenPiece(v) && shannon(v) >= 2.5
}

// tokenPiece reports whether v has a piece of letters and digits that could
// be a token: sixteen long, or eight with letters and digits or both cases. A
// time, a count, a path, a locale or words joined (1735689600,
// 2025-01-01T10:00:00Z, /dashboard/settings, en_US.UTF-8, eu-west-1,
// password_and_otp) has none.
func tokenPiece(v []byte) bool {
	for i := 0; i < len(v); {
		j := i
		var digit, upper, lower bool
		for ; j < len(v) && isAlnum(v[j]); j++ {
			digit = digit || isDigit(v[j])
			upper = upper || isUpper(v[j])
			lower = lower || isLower(v[j])
		}
		if n := j - i; n >= 16 || n >= 8 && (digit && (upper || lower) || upper && lower) {
			return true
		}
		i = j + 1
	}
	return false
}

// randomCookieValue: any cookie's value that looks like a key: sixteen
// characters or more, letters and digits mixed, high entropy, and not a
// tracking counter of digits and dots (_ga=GA1.2.1234567.1234567), nor hex
// alone (a digest or a UUID: under a session-like name they still count).
func randomCookieValue(v []byte) bool {
	if len(v) < 16 || len(v) > 4096 || placeholder(v) || uuidShape(v) {
		return false
	}
	// Fields of its own (a=1&b=2: consent and preference cookies) are not
	// one random value.
	if bytes.IndexByte(v, '&') >= 0 && bytes.IndexByte(v, '=') >= 0 {
		return false
	}
	letters, digits := 0, 0
	hexOnly := true
	for _, c := range v {
		hexOnly = hexOnly && isHex(c)
		switch {
		case isDigit(c):
			digits++
		case isLetter(c):
			letters++
		case c <= ' ' || c >= 0x7f || c == '"' || c == '\\':
			return false
		}
	}
	return !hexOnly && letters >= 6 && digits >= 2 && letters+digits >= len(v)*3/4 && shannon(v) >= 3.5
}

// uuidShape reports whether v is a UUID in its 8-4-4-4-12 hex form.
func uuidShape(v []byte) bool {
	if len(v) != 36 {
		return false
	}
	for i, c := range v {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !isHex(c) {
			return false
		}
	}
	return true
}
