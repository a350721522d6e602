package membership

import (
	"errors"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// RevokePrefix starts every revocation statement.
const RevokePrefix = "treaty-revoke-v1"

// MaxRevokeReason bounds the free-text reason of a revocation.
const MaxRevokeReason = 128

// Revocation declares Key void, signed by Key itself. It is meant to be made
// while the key is safe (`treaty revoke --prepare FILE`) and kept offline, so
// that whoever holds the file can void the key after it is lost or stolen. A
// revocation never expires and cannot be undone: members refuse the key, and
// every key it rotated to, for good (docs/adr/0014-admission.md).
type Revocation struct {
	Key    identity.PublicKey
	Issued time.Time
	Reason string // printable ASCII, at most MaxRevokeReason bytes; may be empty
}

// body is: version | key (32) | issued (8) | len(reason) (1) | reason.
func (r Revocation) body() []byte {
	b := make([]byte, 0, 42+len(r.Reason))
	b = append(b, statementVersion)
	b = append(b, r.Key.Bytes()...)
	b = appendI64(b, r.Issued.Unix())
	return appendStr8(b, r.Reason)
}

func (r Revocation) check() error {
	switch {
	case r.Key.IsZero():
		return malformed(KindRevoke, "missing key")
	case !validTime(r.Issued):
		return malformed(KindRevoke, "issue time out of range")
	case len(r.Reason) > MaxRevokeReason:
		return malformed(KindRevoke, "reason longer than %d bytes", MaxRevokeReason)
	}
	for i := 0; i < len(r.Reason); i++ {
		// Printable ASCII only: the reason is shown in tables and logs, and
		// bidi or control characters there could disguise it.
		if c := r.Reason[i]; c < 0x20 || c > 0x7e {
			return malformed(KindRevoke, "reason holds a byte outside printable ASCII")
		}
	}
	return nil
}

// SignRevocation makes key's self-revocation.
func SignRevocation(key identity.PrivateKey, now time.Time, reason string) (Revocation, string, error) {
	if key.IsZero() {
		return Revocation{}, "", errors.New("membership: SignRevocation needs a key")
	}
	r := Revocation{Key: key.Public(), Issued: now.Truncate(time.Second).UTC(), Reason: reason}
	if err := r.check(); err != nil {
		return Revocation{}, "", err
	}
	body := r.body()
	return r, encodeText(RevokePrefix, body, key.Sign(signingInput(KindRevoke, body))), nil
}

// ParseRevocation decodes a revocation and verifies the key's own signature.
func ParseRevocation(s string) (Revocation, error) {
	raw, err := decodeText(KindRevoke, RevokePrefix, s)
	if err != nil {
		return Revocation{}, err
	}
	if len(raw) < 64 {
		return Revocation{}, malformed(KindRevoke, "too short")
	}
	body, sig := raw[:len(raw)-64], raw[len(raw)-64:]
	rd := reader{b: body}
	if ver := rd.byte1(); !rd.bad && ver != statementVersion {
		return Revocation{}, malformed(KindRevoke, "unknown version %d", ver)
	}
	kb := rd.key()
	var r Revocation
	r.Issued = rd.time()
	r.Reason = rd.str8()
	if !rd.done() {
		return Revocation{}, malformed(KindRevoke, "wrong length")
	}
	if r.Key, err = parseKey(KindRevoke, "key", kb); err != nil {
		return Revocation{}, err
	}
	if err := r.check(); err != nil {
		return Revocation{}, err
	}
	if !r.Key.Verify(signingInput(KindRevoke, body), sig) {
		return Revocation{}, &StatementError{Kind: KindRevoke, Reason: "signature does not verify with the revoked key", Err: ErrBadSignature}
	}
	return r, nil
}
