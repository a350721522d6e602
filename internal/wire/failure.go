package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// Failure is the JSON envelope a callee returns with a non-2xx status (the
// response is still signed) and that ends a failed stream. Stage names the
// pipeline stage that refused ("wire", "policy", "budget", ...); Reason is a
// short wire-safe token (a Reason's String for wire refusals,
// "limit_exceeded" with Limit set for a LimitError).
type Failure struct {
	Stage  string      `json:"stage"`
	Reason string      `json:"reason"`
	Limit  *LimitError `json:"limit,omitempty"`
}

// ReasonLimitExceeded is Failure.Reason when Failure.Limit is set.
const ReasonLimitExceeded = "limit_exceeded"

// maxFailureBytes bounds an encoded Failure accepted from a peer.
const maxFailureBytes = 1024

// FailureOf builds the envelope for err refused at stage: a *LimitError
// gives "limit_exceeded" with the limit; an *Error gives its Reason; any
// other error gives "internal" (its text stays local).
func FailureOf(stage string, err error) Failure {
	f := Failure{Stage: stage, Reason: "internal"}
	var le *LimitError
	var we *Error
	switch {
	case errors.As(err, &le):
		c := *le
		f.Reason, f.Limit = ReasonLimitExceeded, &c
	case errors.As(err, &we):
		f.Reason = we.Reason.String()
	}
	return f
}

// StatusFor maps a wire error to the HTTP status a callee answers with:
// 400 malformed or missing (chain_malformed, chain_too_deep and chain_loop
// included), 401 signature, key, freshness and chain_broken failures,
// 409 replayed, 421 wrong audience, 413/431/429/504 for limits, 503 for a
// full replay window, 500 otherwise.
func StatusFor(err error) int {
	var le *LimitError
	if errors.As(err, &le) {
		switch le.Limit {
		case LimitMaxBodyBytes, LimitMaxEventBytes, LimitMaxStreamEvents:
			return http.StatusRequestEntityTooLarge
		case LimitMaxHeaderBytes:
			return http.StatusRequestHeaderFieldsTooLarge
		case LimitMaxConcurrentPerPeer:
			return http.StatusTooManyRequests
		case LimitTimeToFirstByte, LimitCallTimeout:
			return http.StatusGatewayTimeout
		}
		return http.StatusBadRequest
	}
	r, ok := ReasonOf(err)
	if !ok {
		return http.StatusInternalServerError
	}
	switch r {
	case ReasonBadAudience:
		return http.StatusMisdirectedRequest
	case ReasonExpired, ReasonNotYetValid, ReasonBadSignature, ReasonKeyMismatch, ReasonChainBroken:
		return http.StatusUnauthorized
	case ReasonReplayed:
		return http.StatusConflict
	case ReasonReplayCacheFull:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// EncodeFailure returns the JSON of f (no trailing newline).
func EncodeFailure(f Failure) []byte {
	b, err := json.Marshal(f)
	if err != nil { // unreachable: only strings and integers
		return []byte(`{"stage":"wire","reason":"internal"}`)
	}
	return b
}

// DecodeFailure parses an envelope from a peer: at most 1 KiB, one JSON
// object, stage and reason tokens of 1..64 bytes [a-z0-9._-], an optional
// limit with a [a-z0-9_] name, max >= 0 and got >= -1. Unknown fields are
// ignored so later versions can add some. Bytes with more than one reading
// are refused: a key repeated in any object, or a key of the envelope or its
// limit that names a field other than exactly (encoding/json would match
// "Stage" or "ſtage" to stage). Errors are *Error (ReasonMalformed).
func DecodeFailure(b []byte) (Failure, error) {
	var f Failure
	if len(b) > maxFailureBytes {
		return Failure{}, fail(ReasonMalformed, "failure envelope exceeds %d bytes", maxFailureBytes)
	}
	if err := UnambiguousKeys(b, "failure envelope", failureKeys); err != nil {
		return Failure{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&f); err != nil {
		return Failure{}, fail(ReasonMalformed, "failure envelope: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Failure{}, fail(ReasonMalformed, "failure envelope: trailing data")
	}
	if err := f.validate(); err != nil {
		return Failure{}, err
	}
	return f, nil
}

// failureKeys are the fields of the envelope and of its limit object.
var failureKeys = &KeyFields{
	Names: []string{"stage", "reason", "limit"},
	Sub:   map[string]*KeyFields{"limit": {Names: []string{"limit", "max", "got"}}},
}

func (f Failure) validate() error {
	if !token(f.Stage, false) {
		return fail(ReasonMalformed, "failure stage %s is not a token", quote(f.Stage))
	}
	if !token(f.Reason, false) {
		return fail(ReasonMalformed, "failure reason %s is not a token", quote(f.Reason))
	}
	if l := f.Limit; l != nil {
		if !token(l.Limit, true) || l.Max < 0 || l.Got < -1 {
			return fail(ReasonMalformed, "failure limit %s max %d got %d is invalid", quote(l.Limit), l.Max, l.Got)
		}
	}
	return nil
}

// token reports whether s is 1..64 bytes of [a-z0-9_] (plus . and - unless strict).
func token(s string, strict bool) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || !strict && (c == '.' || c == '-') {
			continue
		}
		return false
	}
	return true
}
