package screen

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The fast paths must answer exactly as the byte-at-a-time definitions they replace.

func TestPlainASCII8(t *testing.T) {
	plain := func(w uint64) bool {
		for k := 0; k < 8; k++ {
			if c := byte(w >> (8 * k)); c < 0x20 || c >= 0x7f {
				return false
			}
		}
		return true
	}
	// Every byte value in every position, among printable neighbours.
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			w := uint64(0x6161616161616161)&^(0xff<<(8*pos)) | uint64(c)<<(8*pos)
			if got, want := plainASCII8(w), plain(w); got != want {
				t.Fatalf("plainASCII8(%#x) = %v, want %v", w, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		w := r.Uint64()
		if r.IntN(2) == 0 { // mostly printable words, with a few odd bytes
			w = w&0x3f3f3f3f3f3f3f3f | 0x2020202020202020
			if r.IntN(3) == 0 {
				w ^= uint64(r.IntN(256)) << (8 * r.IntN(8))
			}
		}
		if got, want := plainASCII8(w), plain(w); got != want {
			t.Fatalf("plainASCII8(%#x) = %v, want %v", w, got, want)
		}
	}
}

// scanHiddenSlow is needsHiddenScan's definition: some rune scanHidden removes or changes.
func scanHiddenSlow(s string) bool {
	for _, r := range s {
		switch {
		case r < 0x20 && r != '\n' && r != '\r' && r != '\t', r == 0x7f,
			r >= 0x80 && r < 0xa0, r == 0x00AD, r == 0x034F, r == 0x061C, r == 0x115F, r == 0x1160,
			r == 0x17B4, r == 0x17B5, r == 0x180E, r >= 0x200B && r <= 0x200F, r >= 0x2028 && r <= 0x202E,
			r >= 0x2060 && r <= 0x2069, r == 0x3164, r >= 0xFE00 && r <= 0xFE0F, r == 0xFEFF, r == 0xFFA0,
			r >= tagBase && r <= tagCancel, r >= vsSuppStart && r <= vsSuppEnd:
			return true
		}
	}
	return false
}

// randomText mixes printable ASCII with control characters, invisible and
// compatibility characters and combining marks, at every offset modulo eight.
func randomText(r *rand.Rand) string {
	pool := []string{"a", "Z", " ", ".", "\n", "\t", "\r", "\x00", "\x1f", "\x7f", "~", "é", "e\u0301", "\u0301",
		"\u200b", "\u00ad", "\u202e", "ｆ", "ﬁ", "①", "Ä", "A\u0308", "\u0308\u0323", "—", "ü", "\U000E0041", "\uFE0F", "한", "ᄒ\u1161", "\u0085", "ǆ"}
	var b strings.Builder
	for n := r.IntN(40); n > 0; n-- {
		if r.IntN(3) == 0 {
			b.WriteString(strings.Repeat("x", r.IntN(20)))
		}
		b.WriteString(pool[r.IntN(len(pool))])
	}
	return b.String()
}

func TestNeedsHiddenScanFastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 50000 {
		s := randomText(r)
		got, bad := needsHiddenScan(s)
		if want := scanHiddenSlow(s); got != want {
			t.Fatalf("needsHiddenScan(%q) = %v, want %v", s, got, want)
		}
		// screenText skips its own UTF-8 check on this answer.
		if !got && bad == utf8.ValidString(s) {
			t.Fatalf("needsHiddenScan(%q) reports bad UTF-8 %v", s, bad)
		}
		if s := s + "\xff" + s; !got && !func() bool { _, bad := needsHiddenScan(s); return bad }() {
			t.Fatalf("needsHiddenScan(%q) misses the invalid byte", s)
		}
	}
}

func TestNFKCFastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 50000 {
		s := randomText(r)
		if got, want := nfkc(s), norm.NFKC.String(s); got != want {
			t.Fatalf("nfkc(%q) = %q, want %q", s, got, want)
		}
	}
	for _, s := range []string{"", "plain", "e\u0301", "\u0301x", "café", "Ｉｇｎｏｒｅ", "x" + strings.Repeat("\u0301", 40)} {
		if got, want := nfkc(s), norm.NFKC.String(s); got != want {
			t.Errorf("nfkc(%q) = %q, want %q", s, got, want)
		}
	}
}

// The literal filter finds exactly the rules one of whose literals occurs, also when
// a non-ASCII byte folds onto a literal's pair key.
func TestLitFilterExact(t *testing.T) {
	rs, err := compileRules()
	if err != nil {
		t.Fatal(err)
	}
	var lits []string
	for _, p := range rs.patterns {
		if !p.original {
			lits = append(lits, p.lits...)
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	for n := range 20000 {
		var b []byte
		for range r.IntN(12) {
			switch r.IntN(4) {
			case 0:
				b = append(b, lits[r.IntN(len(lits))]...)
			case 1: // a literal with its first byte moved to the upper half: same key, no match
				l := []byte(lits[r.IntN(len(lits))])
				l[0] |= 0x80
				b = append(b, l...)
			case 2:
				b = append(b, "plain words, "...)
			default:
				l := lits[r.IntN(len(lits))]
				b = append(b, l[:r.IntN(len(l))]...)
			}
		}
		text := string(b)
		var want uint64
		for i, p := range rs.patterns {
			if !p.original && containsAny(text, p.lits) {
				want |= 1 << i
			}
		}
		if got := rs.lits.scan(text); got != want {
			t.Fatalf("case %d: scan(%q) = %b, want %b", n, text, got, want)
		}
	}
}

// fold's copy of plain ASCII words must give the tokens of its general path: words
// that run into a non-ASCII letter, contractions, possessives and quotes.
func TestFoldASCIIWords(t *testing.T) {
	f := fold("Don't STOP: Jürgen's naïve plan—IGNORE 'it' x9 Ωmega", nil)
	var got []string
	for i := range f.toks.t {
		w := f.toks.word(i)
		if f.toks.t[i].quoted {
			w = "'" + w + "'"
		}
		got = append(got, w)
	}
	want := []string{"dont", "stop", "jurgen", "naive", "plan", "ignore", "'it'", "x9", "ωmega"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("tokens %q, want %q", got, want)
	}
	if f.text != "dont stop: jurgen naive plan—ignore 'it' x9 ωmega" {
		t.Errorf("text %q", f.text)
	}
}

func TestWordBytes8(t *testing.T) {
	isWord := func(c byte) bool { return c < 0x80 && asciiWord[c] }
	r := rand.New(rand.NewPCG(11, 12))
	for range 300000 {
		var b [8]byte
		for k := range b {
			switch r.IntN(4) {
			case 0:
				b[k] = byte(r.IntN(256))
			default:
				b[k] = "aZ09@[`{/:_-. \n"[r.IntN(15)]
			}
		}
		w := load8(string(b[:]))
		got := wordBytes8(w)
		for k := range b { // exact up to and including the first non-word byte
			if (got>>(8*k+7))&1 == 1 != isWord(b[k]) {
				t.Fatalf("wordBytes8(%q): byte %d", b, k)
			}
			if !isWord(b[k]) {
				break
			}
		}
	}
}

// On ASCII text without apostrophes, fold is lowercasing, and its tokens are the runs
// of letters and digits, with exact digit flags.
func TestFoldASCIIRuns(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for range 20000 {
		var b []byte
		for range r.IntN(60) {
			switch r.IntN(5) {
			case 0:
				b = append(b, strings.Repeat("Ab", r.IntN(10))...)
			case 1:
				b = append(b, "x7Y"[r.IntN(3)])
			default:
				p := " .,;:!?\n\t-_@[]{}/\"`"
				b = append(b, p[r.IntN(len(p))])
			}
		}
		s := string(b)
		f := fold(s, nil)
		if f.text != strings.ToLower(s) {
			t.Fatalf("fold(%q).text = %q", s, f.text)
		}
		var want []string
		var digits []bool
		for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r >= 0x80 || !asciiWord[r] }) {
			want = append(want, w)
			digits = append(digits, strings.ContainsAny(w, "0123456789"))
		}
		if len(f.toks.t) != len(want) {
			t.Fatalf("fold(%q): %d tokens, want %d", s, len(f.toks.t), len(want))
		}
		for i := range want {
			if f.toks.word(i) != want[i] || f.toks.t[i].digit != digits[i] {
				t.Fatalf("fold(%q) token %d = %q digit %v, want %q %v", s, i, f.toks.word(i), f.toks.t[i].digit, want[i], digits[i])
			}
		}
	}
}

// scanRuns reports every maximal run of at least min bytes of the set, in order.
func TestScanRunsSkipping(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for range 20000 {
		var b []byte
		for range r.IntN(30) {
			if r.IntN(2) == 0 {
				run := strings.Repeat("Ab9+", 8)
				b = append(b, run[:r.IntN(len(run))]...)
			} else {
				b = append(b, " .!é\n"[r.IntN(5)])
			}
		}
		s := string(b)
		for _, min := range []int{1, 2, 16} {
			var got, want []string
			scanRuns(s, &base64Alphabet, min, func(run string) { got = append(got, run) })
			for _, f := range strings.FieldsFunc(s, func(c rune) bool { return c >= 0x80 || base64Alphabet[c] == 0 }) {
				if len(f) >= min {
					want = append(want, f)
				}
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("scanRuns(%q, %d) = %q, want %q", s, min, got, want)
			}
		}
	}
}
