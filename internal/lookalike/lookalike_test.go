package lookalike

import (
	"testing"
	"unicode"
)

// Every lookalike is a non-ASCII letter read as a lower-case ASCII one, and
// nothing else is one: ASCII and ordinary letters of other scripts stay.
func TestLetter(t *testing.T) {
	n := 0
	for r := rune(0); r <= 0xFFFF; r++ {
		l, ok := Letter(r)
		if !ok {
			continue
		}
		n++
		if r < 0x80 || !unicode.IsLetter(r) {
			t.Errorf("%U is mapped but is not a non-ASCII letter", r)
		}
		if l < 'a' || l > 'z' {
			t.Errorf("%U maps to %q, want a lower-case ASCII letter", r, l)
		}
	}
	if n < 100 {
		t.Errorf("%d lookalikes, want the whole table", n)
	}
	for r, want := range map[rune]rune{'а': 'a', 'О': 'o', 'ρ': 'p', 'Ꮪ': 's', 'ᴛ': 't'} {
		if l, ok := Letter(r); !ok || l != want {
			t.Errorf("Letter(%q) = %q, %v; want %q", r, l, ok, want)
		}
	}
	for _, r := range "aZ9 жщлЖ中" {
		if l, ok := Letter(r); ok {
			t.Errorf("Letter(%q) = %q, want none", r, l)
		}
	}
}
