package backend

import (
	"strings"
	"testing"
	"unicode"
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

// FuzzDescribedText: whatever a local server says of its tool, what peers
// are shown is valid UTF-8 within MaxDescribed, without control (but newline
// and tab) or format characters, and cleaning it again changes nothing.
func FuzzDescribedText(f *testing.F) {
	for _, s := range []string{"", "plain", "ig\u200bnore\u202e", "bad\xff\xfe", strings.Repeat("界", 2000), "\x00\x1b[0m\r\n\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := describedText(s)
		if len(out) > MaxDescribed || !utf8.ValidString(out) {
			t.Fatalf("%d bytes, valid %v", len(out), utf8.ValidString(out))
		}
		for _, r := range out {
			if r != '\n' && r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
				t.Fatalf("kept %U", r)
			}
		}
		if again := describedText(out); again != out {
			t.Fatalf("not idempotent: %q then %q", out, again)
		}
	})
}
