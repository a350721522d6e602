package catalogue

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// MaxToolName is the longest name made (an MCP tool name, an A2A skill id). MCP allows 128, but the
// function-calling APIs behind most agents (Anthropic, OpenAI) allow 64
// characters of [a-zA-Z0-9_-], and a name they refuse breaks the agent's
// whole tool list, so names fit the stricter rule.
const MaxToolName = 64

// hashLen is the number of hex digits of the suffix that keeps a fitted
// name unique when the plain name had to be changed.
const hashLen = 8

// FitName returns the MCP tool name of capability on peer: PEER__CAPABILITY
// when that is already a valid tool name ([A-Za-z0-9_-]{1,64}, see
// MaxToolName) and splits back unambiguously. Otherwise characters outside the set become '_', the
// name is cut to fit, and "_" plus 8 hex digits of SHA-256(peer, capability)
// is appended, so the name depends only on the pair (stable across polls) and
// two different pairs collide only with a hash collision.
//
// Peer nicknames and capability names valid in treaty ([a-z0-9._-]) take the
// plain form unless they contain '.' or together exceed 64 characters.
func FitName(peer, capability string) string {
	plain := peer + "__" + capability
	if len(plain) <= MaxToolName && ValidName(peer) && ValidName(capability) &&
		!strings.Contains(peer, "__") && !strings.HasSuffix(peer, "_") && peer != "" && capability != "" {
		return plain
	}
	var b strings.Builder
	for _, r := range plain {
		if validToolRune(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	sum := sha256.Sum256([]byte(peer + "\x00" + capability))
	suffix := "_" + hex.EncodeToString(sum[:])[:hashLen]
	if len(s) > MaxToolName-len(suffix) {
		s = s[:MaxToolName-len(suffix)]
	}
	return s + suffix
}

// ValidName reports whether s is a name FitName can return: [A-Za-z0-9_-] only.
func ValidName(s string) bool {
	for _, r := range s {
		if !validToolRune(r) {
			return false
		}
	}
	return true
}

// validToolRune is MCP's tool-name alphabet without '.', which model
// function-calling APIs refuse.
func validToolRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}
