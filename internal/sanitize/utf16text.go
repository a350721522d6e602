package sanitize

import (
	"unicode/utf16"
	"unicode/utf8"
)

// utf16Order tells how b may be UTF-16 text: a byte-order mark decides;
// without one, text with some ASCII in it (spaces, punctuation, code around
// a comment in another script) has a zero high byte in one code unit in
// eight or more, so the zeros fall on odd offsets (little-endian, how
// Windows and PowerShell's -EncodedCommand write it) or on even ones
// (big-endian), and almost never on the other side. Random bytes have a
// zero in one unit in 256.
// It returns 0 when b does not look like UTF-16, else 'l' or 'b'. Only the
// first 64 bytes are looked at, so a probe of a longer run decides too.
func utf16Order(b []byte) byte {
	if len(b) < 8 {
		return 0
	}
	switch {
	case b[0] == 0xff && b[1] == 0xfe:
		return 'l'
	case b[0] == 0xfe && b[1] == 0xff:
		return 'b'
	}
	p := b[:min(len(b), 64)&^1]
	var zeroEven, zeroOdd int
	for i := 0; i < len(p); i += 2 {
		if p[i] == 0 {
			zeroEven++
		}
		if p[i+1] == 0 {
			zeroOdd++
		}
	}
	units := len(p) / 2
	switch {
	case zeroOdd*8 >= units && zeroEven*10 <= units && zeroEven < zeroOdd:
		return 'l'
	case zeroEven*8 >= units && zeroOdd*10 <= units && zeroOdd < zeroEven:
		return 'b'
	}
	return 0
}

// utf16Text decodes b as UTF-16 text in the order utf16Order finds (a
// byte-order mark dropped, a last odd byte ignored) and returns it as UTF-8
// when it is text; ok is false otherwise.
func utf16Text(b []byte) (_ []byte, ok bool) {
	order := utf16Order(b)
	if order == 0 {
		return nil, false
	}
	if b[0] == 0xff && b[1] == 0xfe || b[0] == 0xfe && b[1] == 0xff {
		b = b[2:]
	}
	out := make([]byte, 0, len(b)/2+8)
	var hi uint16
	for i := 0; i+1 < len(b); i += 2 {
		u := uint16(b[i]) | uint16(b[i+1])<<8
		if order == 'b' {
			u = uint16(b[i])<<8 | uint16(b[i+1])
		}
		switch {
		case utf16.IsSurrogate(rune(u)) && u < 0xdc00:
			hi = u
			continue
		case utf16.IsSurrogate(rune(u)) && hi != 0:
			out = utf8.AppendRune(out, utf16.DecodeRune(rune(hi), rune(u)))
		default:
			out = utf8.AppendRune(out, rune(u)) // a lone surrogate becomes U+FFFD
		}
		hi = 0
	}
	if !textLike(out) {
		return nil, false
	}
	return out, true
}
