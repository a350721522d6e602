package backend

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on what a local MCP server or A2A agent says of its tool or skill.
// The node lists it to every peer allowed to see it, in every capability
// list, so a server must not choose its size or hide characters in it.
const (
	// MaxDescribed bounds a described tool's or skill's description (bytes);
	// a longer one is cut at a character boundary.
	MaxDescribed = 4096
	// MaxDescribedSchema bounds a described tool's input schema (bytes of
	// JSON); a larger one is not used.
	MaxDescribedSchema = 64 << 10
)

// describedText is s as valid UTF-8 without control characters other than
// newline and tab, nor format characters (zero-width, bidi overrides), cut
// to MaxDescribed bytes.
func describedText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for _, r := range s {
		if r != '\n' && r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > MaxDescribed {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
