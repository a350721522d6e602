package sanitize

import "bytes"

// jwkScan is what jwkHit learned at the last "kty": the first '}' after it,
// the end of a stretch known to hold none, the last '{' before it and
// whether a '}' closed that one before it.
type jwkScan struct {
	close, noClose, prev int
	open1                int // the '{' + 1, 0 for none
	openClosed           bool
}

// jwkHit runs at a "kty" member (p at its opening quote, which may be
// escaped) and reports the private members of the JSON Web Key object around
// it: d (the private scalar or exponent of EC, OKP and RSA keys), p, q, dp,
// dq, qi (RSA's CRT values) and k (a symmetric key). A public JWK has none.
func (sc *scanner) jwkHit(p int) {
	d := sc.data
	if p < sc.jwkDone {
		return // inside the key just read
	}
	// The object: forward to its '}' (a JWK holds no nested object), back
	// to its '{', at most 8 KiB either way. What the last hit learned is
	// kept, so that each byte is searched about once over all hits.
	j := &sc.jwk
	e := -1
	switch {
	case p < j.close:
		e = j.close // the first '}' after the last hit lies after this one too
	default:
		from := max(p, j.noClose)
		if k := bytes.IndexByte(d[from:min(len(d), p+8192)], '}'); k >= 0 {
			e = from + k
		}
	}
	if e < 0 {
		j.noClose = min(len(d), p+8192)
		return
	}
	j.close = e
	from := max(0, p-8192, j.prev)
	s := bytes.LastIndexByte(d[from:p], '{')
	closed := false
	if s >= 0 {
		s += from
		closed = bytes.IndexByte(d[s:p], '}') >= 0
	} else if j.open1 > 0 && j.open1-1 >= p-8192 {
		s = j.open1 - 1
		closed = j.openClosed || bytes.IndexByte(d[from:p], '}') >= 0
	}
	j.prev, j.open1, j.openClosed = p, s+1, closed
	if s < 0 || closed {
		return
	}
	sc.jwkDone = e
	obj := d[s:e]
	for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
		for _, quote := range []string{`"`, `\"`} {
			name := quote + m + quote
			for off := 0; off < len(obj); {
				k := bytes.Index(obj[off:], []byte(name))
				if k < 0 {
					break
				}
				k += off
				off = k + len(name)
				if k > 0 && obj[k-1] == '\\' && quote == `"` {
					continue // the escaped form is the other quote's
				}
				vs, ve, ok := jwkValue(obj, off, quote)
				if ok {
					sc.add(s+vs, s+ve, CategoryPrivateKey, "jwk-private-member")
				}
			}
		}
	}
}

// jwkValue reads `: "VALUE"` at i (quote is " or \") and reports a
// base64url value of 16 characters or more.
func jwkValue(obj []byte, i int, quote string) (int, int, bool) {
	for i < len(obj) && (obj[i] == ' ' || obj[i] == '\t' || obj[i] == '\n' || obj[i] == '\r') {
		i++
	}
	if i >= len(obj) || obj[i] != ':' {
		return 0, 0, false
	}
	i++
	for i < len(obj) && (obj[i] == ' ' || obj[i] == '\t' || obj[i] == '\n' || obj[i] == '\r') {
		i++
	}
	if !bytes.HasPrefix(obj[i:], []byte(quote)) {
		return 0, 0, false
	}
	vs := i + len(quote)
	ve := vs
	for ve < len(obj) && (isAlnum(obj[ve]) || obj[ve] == '-' || obj[ve] == '_' || obj[ve] == '+' || obj[ve] == '/' || obj[ve] == '=') {
		ve++
	}
	if ve-vs < 16 || !bytes.HasPrefix(obj[ve:], []byte(quote)) {
		return 0, 0, false
	}
	return vs, ve, true
}

// ppkHit runs at "Private-Lines:" (p, length l) of a PuTTY private key file
// and reports the lines of key material it announces (at most 64 lines of
// at most 128 bytes). An encrypted key's lines are ciphertext under a
// passphrase and are reported too.
func (sc *scanner) ppkHit(p, l int) {
	d := sc.data
	if p < sc.ppkDone {
		return
	}
	if p > 0 && d[p-1] != '\n' && d[p-1] != ' ' && !(p > 1 && d[p-2] == '\\' && d[p-1] == 'n') {
		return
	}
	k := p + l
	for k < len(d) && d[k] == ' ' {
		k++
	}
	lines := 0
	for k < len(d) && isDigit(d[k]) && lines < 100 {
		lines = lines*10 + int(d[k]-'0')
		k++
	}
	if lines == 0 || lines > 64 {
		return
	}
	s, e := -1, -1
	for n := 0; n < lines; n++ {
		// The line break: a newline, \r\n, or a JSON \n escape.
		switch {
		case k+1 < len(d) && d[k] == '\r' && d[k+1] == '\n':
			k += 2
		case k < len(d) && d[k] == '\n':
			k++
		case k+1 < len(d) && d[k] == '\\' && d[k+1] == 'n':
			k += 2
		default:
			n = lines // not the announced lines
			continue
		}
		ls := k
		for k < len(d) && k-ls < 128 && (isAlnum(d[k]) || d[k] == '+' || d[k] == '/' || d[k] == '=') {
			k++
		}
		if k-ls < 4 {
			break
		}
		if s < 0 {
			s = ls
		}
		e = k
	}
	sc.ppkDone = k
	if s >= 0 && e-s >= 16 {
		sc.add(s, e, CategoryPrivateKey, "putty-private-key")
	}
}
