package node

import (
	"errors"
	"strings"
)

// remoteSentences turns the short tokens a peer sends in a failure envelope
// into sentences for people. The token stays in parentheses, so scripts that
// match on it keep working; unknown tokens are shown as they came.
var remoteSentences = map[string]string{
	"not_granted":       "the peer grants this node no such capability (or has none by that name)",
	"quarantined":       "the peer has quarantined this node",
	"internal":          "the peer had an internal fault",
	"blocked":           "the peer's sanitizer blocked its answer",
	"disk_high_water":   "the peer's audit log is at its disk high-water mark; it refuses new calls until space returns",
	"malformed":         "the peer could not parse the request",
	"missing_component": "the request lacked a signed component the peer requires",
	"bad_audience":      "the request was addressed to another node",
	"expired":           "the request arrived after it expired (check both clocks)",
	"not_yet_valid":     "the request is dated in the future (check both clocks)",
	"ttl_too_long":      "the request's lifetime is longer than the peer accepts",
	"digest_mismatch":   "the body does not match its signed digest",
	"bad_signature":     "the peer could not verify this node's signature",
	"key_mismatch":      "the signature names another key",
	"replayed":          "the peer has already seen this request",
	"replay_cache_full": "the peer holds too many of this node's recent requests; retry shortly",
	"chain_malformed":   "the delegation chain does not parse",
	"chain_broken":      "a hop of the delegation chain does not verify",
	"chain_too_deep":    "the delegation chain is deeper than the peer allows",
	"chain_loop":        "the delegation chain loops back to a peer already on it",
}

// remoteSentence is the sentence for a peer's failure token, with the token.
func remoteSentence(token string) string {
	base, detail, _ := strings.Cut(token, ":")
	s, ok := remoteSentences[base]
	if !ok {
		return token
	}
	if detail = strings.TrimSpace(detail); detail != "" {
		s += ": " + detail
	}
	return s + " (" + base + ")"
}

// peerToken is the token a peer sent, kept under a remote refusal's sentence
// so code can still branch on it.
type peerToken string

func (t peerToken) Error() string { return string(t) }

// remoteToken reports the token a peer sent with a remote refusal, if any.
func remoteToken(err error) (string, bool) {
	var t peerToken
	if errors.As(err, &t) {
		base, _, _ := strings.Cut(string(t), ":")
		return base, true
	}
	return "", false
}
