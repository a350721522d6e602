package wire

import (
	"errors"
	"fmt"
	"strconv"
)

// Reason is why a signed message was refused. Each verification step maps
// each of its failures to exactly one Reason, and String is the stable,
// wire-safe name sent to the peer in a Failure envelope.
type Reason int

// The reasons, in the order the verification steps can produce them.
const (
	_                      Reason = iota
	ReasonMalformed               // a header, field or event does not parse, or breaks the profile
	ReasonMissingComponent        // a required header or covered component is absent
	ReasonBadAudience             // Treaty-Audience is not this node
	ReasonExpired                 // expires is more than MaxSkew in the past
	ReasonNotYetValid             // created is more than MaxSkew in the future
	ReasonTTLTooLong              // expires - created exceeds MaxTTL
	ReasonDigestMismatch          // Content-Digest does not match the body
	ReasonBadSignature            // the signature does not verify with the expected key
	ReasonKeyMismatch             // keyid does not name the expected key
	ReasonReplayed                // the nonce was already seen inside the window
	ReasonReplayCacheFull         // the replay window is full of unexpired nonces
	ReasonStreamGap               // an event arrived with a sequence number ahead of the next one
	ReasonStreamReorder           // an event arrived with a sequence number behind the previous one
	ReasonStreamDuplicate         // an event repeated the previous sequence number
	ReasonStreamTruncated         // the stream ended before its signed End event
	ReasonChainMalformed          // Treaty-Chain does not parse, is not canonical, is uncovered, or a hop breaks the profile
	ReasonChainBroken             // a hop's signature does not verify, or a hop is not addressed to the peer that made the next call
	ReasonChainTooDeep            // the delegation depth (1 + hops) exceeds MaxDepth, or the chain exceeds MaxChainHops
	ReasonChainLoop               // a key appears twice on [callee, caller, hop callers...]
)

var reasonNames = [...]string{
	ReasonMalformed:        "malformed",
	ReasonMissingComponent: "missing_component",
	ReasonBadAudience:      "bad_audience",
	ReasonExpired:          "expired",
	ReasonNotYetValid:      "not_yet_valid",
	ReasonTTLTooLong:       "ttl_too_long",
	ReasonDigestMismatch:   "digest_mismatch",
	ReasonBadSignature:     "bad_signature",
	ReasonKeyMismatch:      "key_mismatch",
	ReasonReplayed:         "replayed",
	ReasonReplayCacheFull:  "replay_cache_full",
	ReasonStreamGap:        "stream_gap",
	ReasonStreamReorder:    "stream_reorder",
	ReasonStreamDuplicate:  "stream_duplicate",
	ReasonStreamTruncated:  "stream_truncated",
	ReasonChainMalformed:   "chain_malformed",
	ReasonChainBroken:      "chain_broken",
	ReasonChainTooDeep:     "chain_too_deep",
	ReasonChainLoop:        "chain_loop",
}

// String returns the snake_case name; an unknown value prints as "reason(N)".
func (r Reason) String() string {
	if r > 0 && int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Error is the refusal returned by every verification step. Reason is safe
// to send to the peer; Detail is for local logs and audit (it quotes at most
// short prefixes of peer input, never key material).
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "wire: " + e.Reason.String()
	}
	return "wire: " + e.Reason.String() + ": " + e.Detail
}

// Is makes errors.Is(err, &Error{Reason: R}) match any *Error with reason R.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason
}

// ReasonOf returns the Reason of the first *Error in err's chain.
func ReasonOf(err error) (Reason, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason, true
	}
	return 0, false
}

func fail(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// quote shows at most 32 bytes of peer input in an error detail.
func quote(s string) string {
	if len(s) > 32 {
		return strconv.Quote(s[:32]) + "..."
	}
	return strconv.Quote(s)
}
