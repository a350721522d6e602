package screen

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"

	"github.com/treaty-dev/treaty/internal/lookalike"
)

// hidden is what scanHidden found: the text with invisible characters removed, the ASCII
// smuggled in tag characters, the bytes smuggled in runs of variation selectors, and
// counts of the tricks seen.
type hidden struct {
	clean        string
	tagPayload   []byte
	vsPayload    []byte
	tags         int // tag characters outside an emoji flag sequence
	zwInWord     int // zero-width characters splitting a Latin, Cyrillic or Greek word
	bidiOverride int // U+202D, U+202E
	bidiOther    int // embeddings and isolates
	rtl          bool
	vsRuns       int // runs of two or more variation selectors
}

const (
	blackFlag   = 0x1F3F4
	tagBase     = 0xE0000
	tagCancel   = 0xE007F
	vsStart     = 0xFE00
	vsEnd       = 0xFE0F
	vsSuppStart = 0xE0100
	vsSuppEnd   = 0xE01EF
)

func isZeroWidth(r rune) bool {
	switch r {
	case 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x180E, 0x2061, 0x2062, 0x2063, 0x2064,
		0x00AD, 0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0, 0x17B4, 0x17B5:
		return true
	}
	return false
}

func isVariationSelector(r rune) bool {
	return (r >= vsStart && r <= vsEnd) || (r >= vsSuppStart && r <= vsSuppEnd)
}

func vsByte(r rune) byte {
	if r <= vsEnd {
		return byte(r - vsStart)
	}
	return byte(r-vsSuppStart) + 16
}

// wordScript reports whether r is a letter of a script whose words a zero-width
// character has no business splitting (scripts that join with ZWJ/ZWNJ are excluded).
func wordScript(r rune) bool {
	if r < 0x80 {
		return (r|0x20) >= 'a' && (r|0x20) <= 'z'
	}
	return unicode.IsLetter(r) && (unicode.Is(unicode.Latin, r) || unicode.Is(unicode.Cyrillic, r) || unicode.Is(unicode.Greek, r))
}

// asciiHidden marks the ASCII control characters that scanHidden replaces.
var asciiHidden = func() (t [128]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = c != '\n' && c != '\r' && c != '\t'
	}
	t[0x7f] = true
	return t
}()

// load8 reads the first eight bytes of s (len(s) >= 8) as a little-endian word.
func load8(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// plainASCII8 reports whether all eight bytes of w are printable ASCII (0x20-0x7E).
func plainASCII8(w uint64) bool { return unplainASCII8(w) == 0 }

// unplainASCII8 sets the high bit of the bytes of w that are not printable ASCII
// (0x20-0x7E): the high bit, below 0x20, DEL. Each test is exact up to its first hit,
// so the lowest bit set marks the first such byte.
func unplainASCII8(w uint64) uint64 {
	below := (w - 0x20*lo8) &^ w // a byte below 0x20 sets its high bit
	x := w ^ 0x7f*lo8
	del := (x - lo8) &^ x // a zero byte of x (a DEL in w) sets its high bit
	return (w | below | del) & hi8
}

// inRange8 sets the high bit of each byte of w in [lo, hi] (both below 0x80). It is
// exact for the bytes below the first one of 0x80 or more, whose carry can only
// disturb the bytes above it.
func inRange8(w uint64, lo, hi byte) uint64 {
	return (w + uint64(0x80-lo)*lo8) &^ (w + uint64(0x7f-hi)*lo8) & hi8
}

// wordBytes8 sets the high bit of each byte of w that is an ASCII letter or digit,
// exactly up to the first byte that is not.
func wordBytes8(w uint64) uint64 {
	return (inRange8(w|0x20*lo8, 'a', 'z') | inRange8(w, '0', '9')) &^ w
}

// nextNonASCII returns the index of the first byte of s at or after i that is not
// ASCII, or len(s).
func nextNonASCII(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		if load8(s[i:])&hi8 != 0 {
			break
		}
	}
	for ; i < len(s) && s[i] < 0x80; i++ {
	}
	return i
}

// needsHiddenScan reports whether s has any rune that scanHidden would remove or change,
// and whether it saw invalid UTF-8 before it answered (so both false mean s is valid).
// Printable ASCII, most of most texts, is skipped eight bytes at a time.
func needsHiddenScan(s string) (need, bad bool) {
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			m := unplainASCII8(load8(s[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) / 8 // straight to the first byte that needs a look
		}
		c := s[i]
		if c < 0x80 {
			if asciiHidden[c] {
				return true, bad
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		bad = bad || r == utf8.RuneError && n == 1
		switch {
		case r >= 0x80 && r < 0xa0, r == 0x00AD, r == 0x034F, r == 0x061C, r == 0x115F, r == 0x1160,
			r == 0x17B4, r == 0x17B5, r == 0x180E, r >= 0x200B && r <= 0x200F, r >= 0x2028 && r <= 0x202E,
			r >= 0x2060 && r <= 0x2069, r == 0x3164, r >= 0xFE00 && r <= 0xFE0F, r == 0xFEFF, r == 0xFFA0,
			r >= tagBase && r <= tagCancel, r >= vsSuppStart && r <= vsSuppEnd:
			return true, bad
		}
	}
	return false, bad
}

// scanHidden removes invisible and control characters, decoding what they smuggle.
func scanHidden(s string) hidden {
	if need, _ := needsHiddenScan(s); !need {
		return hidden{clean: s}
	}
	var h hidden
	var b strings.Builder
	b.Grow(len(s))
	var (
		prevVisible rune // last rune written
		pendingZW   bool // a zero-width rune since prevVisible
		inFlag      bool // inside an emoji tag sequence after U+1F3F4
		vsRun       []byte
		vsRunLen    int
		flushVS     = func() {
			if vsRunLen >= 2 {
				h.vsRuns++
				h.vsPayload = append(h.vsPayload, vsRun...)
			}
			vsRun, vsRunLen = vsRun[:0], 0
		}
	)
	for _, r := range s {
		if isVariationSelector(r) {
			vsRun = append(vsRun, vsByte(r))
			vsRunLen++
			continue
		}
		if vsRunLen > 0 {
			flushVS()
		}
		switch {
		case r >= tagBase && r <= tagCancel:
			if inFlag {
				// Subdivision flags (England, Scotland, Wales) are U+1F3F4, lowercase
				// letter and digit tags, then CANCEL TAG; anything else is smuggling.
				if r == tagCancel {
					inFlag = false
					continue
				}
				if c := r - tagBase; (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
					continue
				}
				inFlag = false
			}
			h.tags++
			if c := r - tagBase; c >= 0x20 && c <= 0x7e {
				h.tagPayload = append(h.tagPayload, byte(c))
			}
			continue
		case isZeroWidth(r):
			pendingZW = true
			continue
		case r == 0x202D || r == 0x202E:
			h.bidiOverride++
			continue
		case (r >= 0x202A && r <= 0x202C) || (r >= 0x2066 && r <= 0x2069):
			h.bidiOther++
			continue
		case r == 0x200E || r == 0x200F || r == 0x061C:
			continue
		case r == 0x2028 || r == 0x2029:
			r = '\n'
		case r == utf8.RuneError:
		case r < 0x20 && r != '\n' && r != '\r' && r != '\t', r == 0x7f, r >= 0x80 && r < 0xa0:
			r = ' ' // control characters: keep words apart, show nothing
		}
		inFlag = r == blackFlag
		if pendingZW {
			if wordScript(prevVisible) && wordScript(r) {
				h.zwInWord++
			}
			pendingZW = false
		}
		if !h.rtl && r >= 0x0590 && r <= 0x08FF {
			h.rtl = true
		}
		b.WriteRune(r)
		prevVisible = r
	}
	if vsRunLen > 0 {
		flushVS()
	}
	h.clean = b.String()
	return h
}

// nfkc folds compatibility forms: fullwidth, mathematical alphanumerics, ligatures,
// circled and superscript letters become their plain letters.
//
// ASCII is its own NFKC and never combines with what precedes it, so s is in NFKC when
// each run of non-ASCII bytes, with the ASCII letter before it, passes the quick check:
// only those runs are looked at, and only a failed check normalizes the whole text.
func nfkc(s string) string {
	for i := nextNonASCII(s, 0); i < len(s); {
		j := i
		for j < len(s) && s[j] >= 0x80 {
			j++
		}
		st := max(i-1, 0)
		if norm.NFKC.QuickSpanString(s[st:j]) != j-st {
			return norm.NFKC.String(s)
		}
		i = nextNonASCII(s, j)
	}
	return s
}

// token is one word of the folded text, as offsets into it (so a token slice holds no
// pointers for the garbage collector to scan).
type token struct {
	start, end int32
	brk        bool // a sentence break (. ! ? ; newline) comes before it
	quoted     bool // inside quotation marks
	folded     bool // lookalike folding changed it
	digit      bool // it may hold an ASCII digit (false only when it surely holds none)
}

// tokens are the words of a folded text.
type tokens struct {
	s string
	t []token
}

// word is the text of token i: lowercased, diacritics and lookalikes folded.
func (ts *tokens) word(i int) string { return ts.s[ts.t[i].start:ts.t[i].end] }

// folded is the normalized view that the detectors read.
type folded struct {
	buf    []byte // the memory of text
	text   string // the whole text lowercased, with words folded as in toks
	toks   tokens
	mixed  int  // words mixing Latin with Cyrillic, Greek, Armenian or Cherokee lookalikes
	hasCJK bool // Han, kana or hangul present
}

// asciiWord marks the ASCII bytes that belong to words.
var asciiWord = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-32] = true
	}
	return t
}()

func isWordRune(r rune) bool {
	if r < 0x80 {
		return asciiWord[r]
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || (r >= 0x1F1E6 && r <= 0x1F1FF)
}

// fold lowercases s, folds lookalike letters within suspicious words, strips common
// diacritics, and splits it into tokens. ASCII words take a fast path; only words with
// other letters get the script analysis.
//
// sc, when not nil, lends the token slice and the text buffer; the result's text
// and tokens live in them until sc is lent again.
func fold(s string, sc *foldScratch) folded {
	var f folded
	var out []byte
	var toks []token
	var (
		runes []rune // scratch for words with non-ASCII letters
		buf   []byte // scratch for folded words
	)
	if sc != nil {
		out, toks, runes, buf = sc.out[:0], sc.toks[:0], sc.runes, sc.buf
	}
	if cap(out) < len(s)+8 {
		out = make([]byte, 0, len(s)+8)
	}
	var (
		brk      = true
		quoted   bool
		ws       = -1   // start of the current word in s, or -1
		ascii    = true // the current word is ASCII
		prevWord bool   // the previous rune belonged to a word
	)
	flush := func(we int) {
		if ws < 0 {
			return
		}
		w := s[ws:we]
		ws = -1
		start := len(out)
		changed := false
		if ascii {
			// One pass: lowercase, and drop the apostrophe that joined a contraction.
			for i := 0; i < len(w); i++ {
				c := w[i]
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				} else if c == '\'' {
					continue
				}
				out = append(out, c)
			}
		} else {
			runes = runes[:0]
			for _, r := range w {
				if r >= 0x1F1E6 && r <= 0x1F1FF { // regional indicators spell letters
					r = 'a' + (r - 0x1F1E6)
				}
				if r == '\'' || r == '\u2019' {
					continue
				}
				runes = append(runes, r)
			}
			var mixed bool
			buf, changed, mixed = foldWord(buf[:0], runes)
			if mixed {
				f.mixed++
			}
			out = append(out, buf...)
		}
		toks = append(toks, token{start: int32(start), end: int32(len(out)), brk: brk, quoted: quoted, folded: changed, digit: true})
		brk = false
		ascii = true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c == ' ' && ws < 0 {
			out = append(out, ' ')
			prevWord = false
			i++
			continue
		}
		if c < 0x80 && asciiWord[c] && ws < 0 {
			// The common word: ASCII letters and digits up to an ASCII character that
			// neither continues it nor joins a contraction. It is copied and
			// lowercased eight bytes at a time, with no trip through flush.
			start := len(out)
			j, digit := i, false
			for j+8 <= len(s) {
				w := load8(s[j:])
				n := 8
				if nw := ^wordBytes8(w) & hi8; nw != 0 {
					n = bits.TrailingZeros64(nw) / 8
				}
				keep := ^uint64(0) >> (64 - 8*n) // the word's bytes of w (n > 0 after the first step)
				if inRange8(w, '0', '9')&keep != 0 {
					digit = true
				}
				out = binary.LittleEndian.AppendUint64(out, w|inRange8(w, 'A', 'Z')>>2)
				out = out[:len(out)-8+n]
				j += n
				if n < 8 {
					break
				}
			}
			if j+8 > len(s) {
				for j < len(s) && s[j] < 0x80 && asciiWord[s[j]] {
					c := s[j]
					if c-'A' < 26 {
						c += 'a' - 'A'
					} else if c-'0' < 10 {
						digit = true
					}
					out = append(out, c)
					j++
				}
			}
			if j == len(s) || s[j] < 0x80 && s[j] != '\'' {
				toks = append(toks, token{start: int32(start), end: int32(len(out)), brk: brk, quoted: quoted, digit: digit})
				brk = false
				prevWord = true
				i = j
				continue
			}
			out = out[:start] // it goes on with a non-ASCII letter or an apostrophe
		}
		r, n := rune(c), 1
		if c >= 0x80 {
			r, n = utf8.DecodeRuneInString(s[i:])
		}
		if (c < 0x80 && asciiWord[c]) || (c >= 0x80 && isWordRune(r)) {
			if ws < 0 {
				ws = i
			}
			if c >= 0x80 {
				ascii = false
				if !f.hasCJK && (unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r)) {
					f.hasCJK = true
				}
			}
			i += n
			for i < len(s) && s[i] < 0x80 && asciiWord[s[i]] { // the rest of an ASCII run
				i++
			}
			prevWord = true
			continue
		}
		if r == '\'' || r == '\u2018' || r == '\u2019' {
			next, n1 := utf8.DecodeRuneInString(s[i+n:])
			nextWord := next != utf8.RuneError && isWordRune(next)
			if ws >= 0 && r != '\u2018' && nextWord && unicode.IsLetter(next) {
				// Join contractions ("don't" -> "dont"); drop a possessive "'s".
				after, _ := utf8.DecodeRuneInString(s[i+n+n1:])
				if (next == 's' || next == 'S') && !isWordRune(after) {
					flush(i)
					i += n + n1
					prevWord = true
					continue
				}
				i += n
				continue
			}
			// A single quote at a word boundary opens or closes a quotation.
			flush(i)
			switch {
			case !prevWord && nextWord:
				quoted = true
			case prevWord && !nextWord:
				quoted = false
			}
			out = append(out, '\'')
			i += n
			prevWord = false
			continue
		}
		if ws >= 0 {
			flush(i)
		}
		prevWord = false
		switch r {
		case '.', '!', '?', ';', '\n', '。', '！', '？', '；':
			brk = true
			if r == '\n' {
				quoted = false
			}
		case '"', '`':
			quoted = !quoted
		case '“', '«', '„', '「':
			quoted = true
		case '”', '»', '」':
			quoted = false
		}
		if c < 0x80 {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			out = append(out, c)
		} else {
			out = utf8.AppendRune(out, unicode.ToLower(r))
		}
		i += n
	}
	flush(len(s))
	if sc != nil && cap(runes) <= maxPooledWord && cap(buf) <= 4*maxPooledWord {
		sc.runes, sc.buf = runes[:0], buf[:0]
	}
	// out is this call's own buffer and is not written again: the text
	// can share it instead of copying it.
	f.text = unsafe.String(unsafe.SliceData(out), len(out))
	f.toks = tokens{s: f.text, t: toks}
	f.buf = out
	return f
}

// foldScratch is the memory one fold can reuse from an earlier one.
type foldScratch struct {
	toks  []token
	out   []byte
	runes []rune // of one word with non-ASCII letters
	buf   []byte // that word folded
}

// maxPooledWord keeps one huge word from pinning its memory in the pool.
const maxPooledWord = 1 << 10

// keep takes back f's memory for the next fold, unless one huge input would pin it.
func (sc *foldScratch) keep(f *folded) bool {
	if cap(f.toks.t) > maxPooledTokens || cap(f.buf) > maxPooledText {
		return false
	}
	sc.toks, sc.out = f.toks.t[:0], f.buf[:0]
	return true
}

// foldWord appends the folded, lowercased form of a word with non-ASCII letters to b.
// Lookalikes are folded only when the word mixes Latin with lookalike letters of another
// script, uses Latin small capitals, or consists of lookalikes alone.
func foldWord(b []byte, word []rune) (out []byte, changed, mixed bool) {
	var latin, otherConf, otherNon, latinLook int
	for _, r := range word {
		if r < 0x80 {
			latin++
			continue
		}
		if _, ok := lookalike.Letter(r); ok {
			if unicode.Is(unicode.Latin, r) {
				latinLook++
			} else {
				otherConf++
			}
			continue
		}
		switch {
		case unicode.Is(unicode.Latin, r):
			latin++
		case unicode.Is(unicode.Cyrillic, r), unicode.Is(unicode.Greek, r), unicode.Is(unicode.Armenian, r), unicode.Is(unicode.Cherokee, r):
			otherNon++
		}
	}
	mixed = latin > 0 && otherConf > 0
	doFold := mixed || latinLook > 0 || (latin == 0 && otherNon == 0 && otherConf > 0 && len(word) > 1)
	for _, r := range word {
		if doFold {
			if c, ok := lookalike.Letter(r); ok {
				r = c
				changed = true
			}
		}
		r = unicode.ToLower(r)
		if r >= 0x80 {
			b = appendFoldedLatin(b, r)
		} else {
			b = append(b, byte(r))
		}
	}
	return b, changed, mixed
}

// appendFoldedLatin appends r with common Latin diacritics removed.
func appendFoldedLatin(b []byte, r rune) []byte {
	switch r {
	case 'à', 'á', 'â', 'ã', 'ä', 'å', 'ā':
		return append(b, 'a')
	case 'ç', 'č', 'ć':
		return append(b, 'c')
	case 'è', 'é', 'ê', 'ë', 'ē', 'ę', 'ě':
		return append(b, 'e')
	case 'ì', 'í', 'î', 'ï', 'ī':
		return append(b, 'i')
	case 'ñ', 'ń', 'ň':
		return append(b, 'n')
	case 'ò', 'ó', 'ô', 'õ', 'ö', 'ø', 'ō':
		return append(b, 'o')
	case 'ù', 'ú', 'û', 'ü', 'ū', 'ů':
		return append(b, 'u')
	case 'ý', 'ÿ':
		return append(b, 'y')
	case 'š', 'ś':
		return append(b, 's')
	case 'ž', 'ź', 'ż':
		return append(b, 'z')
	case 'ß':
		return append(b, 's', 's')
	case 'đ':
		return append(b, 'd')
	case 'ł':
		return append(b, 'l')
	}
	return utf8.AppendRune(b, r)
}
