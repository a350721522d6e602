package membership

import (
	"errors"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// RotatePrefix starts every rotation statement.
const RotatePrefix = "treaty-rotate-v1"

// Rotation hands Old's membership to New: peer book entry, grants, trust and
// budgets. Both keys sign it: Old to say who is handing over, New to prove that
// whoever made the statement holds it (no one can rotate onto a key they do
// not own, such as another member's).
type Rotation struct {
	Old, New identity.PublicKey
	Issued   time.Time
}

// body is: version | old (32) | new (32) | issued (8).
func (r Rotation) body() []byte {
	b := make([]byte, 0, 73)
	b = append(b, statementVersion)
	b = append(b, r.Old.Bytes()...)
	b = append(b, r.New.Bytes()...)
	return appendI64(b, r.Issued.Unix())
}

func (r Rotation) check() error {
	switch {
	case r.Old.IsZero() || r.New.IsZero():
		return malformed(KindRotate, "missing key")
	case r.Old == r.New:
		return malformed(KindRotate, "old and new key are the same")
	case !validTime(r.Issued):
		return malformed(KindRotate, "issue time out of range")
	}
	return nil
}

// SignRotation makes the rotation from old to next, signed by both.
func SignRotation(old, next identity.PrivateKey, now time.Time) (Rotation, string, error) {
	if old.IsZero() || next.IsZero() {
		return Rotation{}, "", errors.New("membership: SignRotation needs both keys")
	}
	r := Rotation{Old: old.Public(), New: next.Public(), Issued: now.Truncate(time.Second).UTC()}
	if err := r.check(); err != nil {
		return Rotation{}, "", err
	}
	body := r.body()
	msg := signingInput(KindRotate, body)
	return r, encodeText(RotatePrefix, body, old.Sign(msg), next.Sign(msg)), nil
}

// ParseRotation decodes a rotation and verifies both signatures.
func ParseRotation(s string) (Rotation, error) {
	raw, err := decodeText(KindRotate, RotatePrefix, s)
	if err != nil {
		return Rotation{}, err
	}
	if len(raw) != 73+128 {
		return Rotation{}, malformed(KindRotate, "wrong length")
	}
	body, sigOld, sigNew := raw[:73], raw[73:137], raw[137:]
	rd := reader{b: body}
	if ver := rd.byte1(); ver != statementVersion {
		return Rotation{}, malformed(KindRotate, "unknown version %d", ver)
	}
	ok, nk := rd.key(), rd.key()
	var r Rotation
	r.Issued = rd.time()
	if r.Old, err = parseKey(KindRotate, "old key", ok); err != nil {
		return Rotation{}, err
	}
	if r.New, err = parseKey(KindRotate, "new key", nk); err != nil {
		return Rotation{}, err
	}
	if err := r.check(); err != nil {
		return Rotation{}, err
	}
	msg := signingInput(KindRotate, body)
	if !r.Old.Verify(msg, sigOld) {
		return Rotation{}, &StatementError{Kind: KindRotate, Reason: "the old key's signature does not verify", Err: ErrBadSignature}
	}
	if !r.New.Verify(msg, sigNew) {
		return Rotation{}, &StatementError{Kind: KindRotate, Reason: "the new key's signature does not verify", Err: ErrBadSignature}
	}
	return r, nil
}
