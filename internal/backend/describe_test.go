package backend

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestDescribedTextDropsHiddenCharacters: what a local server says of its
// tool reaches every peer; hidden characters (zero-width, bidi overrides,
// escapes, NUL) are dropped, invalid UTF-8 replaced, and the size bounded at
// a character boundary.
func TestDescribedTextDropsHiddenCharacters(t *testing.T) {
	for in, want := range map[string]string{
		"plain\nline\ttab":             "plain\nline\ttab",
		"ig\u200bnore\u202eevil\u2066": "ignoreevil",
		"esc\x1b[31mred\x00":           "esc[31mred",
		"bad\xffutf8":                  "bad\uFFFDutf8",
		"\ufeffbom":                    "bom",
	} {
		if got := describedText(in); got != want {
			t.Errorf("describedText(%q) = %q, want %q", in, got, want)
		}
	}
	long := describedText(strings.Repeat("é", MaxDescribed))
	if len(long) > MaxDescribed || len(long) < MaxDescribed-1 || !utf8.ValidString(long) {
		t.Errorf("a long description became %d bytes (valid %v)", len(long), utf8.ValidString(long))
	}
}
