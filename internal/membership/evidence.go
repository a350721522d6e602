package membership

import (
	"errors"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Reason says why a record or statement was dropped.
type Reason int

const (
	// ReasonMalformed: the bytes are not a canonical record or statement.
	ReasonMalformed Reason = iota + 1
	// ReasonBadSignature: the signature does not verify under the key in it.
	ReasonBadSignature
	// ReasonExpired: the record's expiry has passed.
	ReasonExpired
	// ReasonWrongKey: the record is signed by one key but gossiped as the
	// record of another (memberlist node name), or for another address.
	ReasonWrongKey
	// ReasonReplayed: a record older than one already seen, presented as newer.
	ReasonReplayed
	// ReasonRejected: the statement's Kind validator refused it.
	ReasonRejected
)

// String returns a short lower-case name.
func (r Reason) String() string {
	switch r {
	case ReasonMalformed:
		return "malformed"
	case ReasonBadSignature:
		return "bad-signature"
	case ReasonExpired:
		return "expired"
	case ReasonWrongKey:
		return "wrong-key"
	case ReasonReplayed:
		return "replayed"
	case ReasonRejected:
		return "rejected"
	}
	return "unknown"
}

// Evidence reports a record or statement that was dropped, against the peer
// that relayed it to us: the key of the TLS connection it arrived on, which
// the handshake proved. The relayer may be honest and merely have passed on
// what it heard, so Evidence is a signal for trust to weigh, not a verdict.
type Evidence struct {
	Relayer identity.PublicKey // who sent it to us; zero if it arrived by a path that cannot tell
	Subject identity.PublicKey // the key the record or statement claims to be by; zero if unreadable
	Reason  Reason
	Err     error // detail, for logs
}

// reasonOf maps a decode or verification error to its Reason.
func reasonOf(err error) Reason {
	switch {
	case errors.Is(err, ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, ErrExpired):
		return ReasonExpired
	case errors.Is(err, ErrWrongKey):
		return ReasonWrongKey
	case errors.Is(err, ErrReplayed):
		return ReasonReplayed
	case errors.Is(err, ErrMalformed):
		return ReasonMalformed
	}
	return ReasonRejected
}
