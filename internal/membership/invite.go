package membership

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
)

// InvitePrefix starts every join token.
const InvitePrefix = "treaty-invite-v1"

// AdmitPrefix starts every introduction.
const AdmitPrefix = "treaty-admit-v1"

// Bounds of an invite.
const (
	MaxInviteUses = 1000
	MinInviteTTL  = time.Minute
	MaxInviteTTL  = 30 * 24 * time.Hour
	// MaxAddrLen bounds an address carried in a statement.
	MaxAddrLen = 255
)

// ErrUsedUp is wrapped when an invite has no uses left.
var ErrUsedUp = errors.New("membership: invite used up")

// ErrNotInviter is wrapped when a token names another node as its inviter.
var ErrNotInviter = errors.New("membership: token was not issued by this node")

// Nonce identifies one invite; the inviter counts its uses under it.
type Nonce [16]byte

// String is the hex form, for the ledger and the audit log (it is not secret:
// the signature is what makes a token work, and the log never holds tokens).
func (n Nonce) String() string { return hex.EncodeToString(n[:]) }

// Invite is a join token: Inviter lets up to Uses new keys in before Expires,
// by their contacting it at Addr. It is a bearer token: whoever holds the text
// may join, so it is shown once and never logged.
type Invite struct {
	Inviter identity.PublicKey
	Addr    string // host:port of the inviter's federation port
	Expires time.Time
	Uses    int // 1 to MaxInviteUses
	Nonce   Nonce
}

// inviteBody is: version | inviter (32) | expires (unix s, 8) | uses (2) |
// nonce (16) | len(addr) (1) | addr.
func (v Invite) body() []byte {
	b := make([]byte, 0, 60+len(v.Addr))
	b = append(b, statementVersion)
	b = append(b, v.Inviter.Bytes()...)
	b = appendI64(b, v.Expires.Unix())
	b = append(b, byte(v.Uses>>8), byte(v.Uses))
	b = append(b, v.Nonce[:]...)
	return appendStr8(b, v.Addr)
}

func (v Invite) check() error {
	switch {
	case v.Inviter.IsZero():
		return malformed(KindInvite, "no inviter key")
	case v.Uses < 1 || v.Uses > MaxInviteUses:
		return malformed(KindInvite, "uses %d outside [1, %d]", v.Uses, MaxInviteUses)
	case !validTime(v.Expires):
		return malformed(KindInvite, "expiry out of range")
	case len(v.Addr) > MaxAddrLen:
		return malformed(KindInvite, "address longer than %d bytes", MaxAddrLen)
	}
	if err := config.ValidAddr(v.Addr); err != nil {
		return malformed(KindInvite, "address: %v", err)
	}
	return nil
}

// IssueInvite makes and signs an invite for key at addr, valid for ttl from
// now and uses joins. rnd supplies the nonce (nil: crypto/rand).
func IssueInvite(key identity.PrivateKey, addr string, now time.Time, ttl time.Duration, uses int, rnd io.Reader) (Invite, string, error) {
	if key.IsZero() {
		return Invite{}, "", errors.New("membership: IssueInvite needs a key")
	}
	if ttl < MinInviteTTL || ttl > MaxInviteTTL {
		return Invite{}, "", fmt.Errorf("membership: invite ttl %v outside [%v, %v]", ttl, MinInviteTTL, MaxInviteTTL)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	v := Invite{Inviter: key.Public(), Addr: addr, Expires: now.Add(ttl).Truncate(time.Second).UTC(), Uses: uses}
	if _, err := io.ReadFull(rnd, v.Nonce[:]); err != nil {
		return Invite{}, "", fmt.Errorf("membership: invite nonce: %w", err)
	}
	if err := v.check(); err != nil {
		return Invite{}, "", err
	}
	body := v.body()
	return v, encodeText(InvitePrefix, body, key.Sign(signingInput(KindInvite, body))), nil
}

// ParseInvite decodes a join token and verifies its signature by the inviter
// it names. It does not check expiry or uses: see Check and the inviter's
// ledger. Errors never quote the token.
func ParseInvite(s string) (Invite, error) {
	raw, err := decodeText(KindInvite, InvitePrefix, s)
	if err != nil {
		return Invite{}, err
	}
	if len(raw) < 64 {
		return Invite{}, malformed(KindInvite, "too short")
	}
	body, sig := raw[:len(raw)-64], raw[len(raw)-64:]
	r := reader{b: body}
	if ver := r.byte1(); !r.bad && ver != statementVersion {
		return Invite{}, malformed(KindInvite, "unknown version %d", ver)
	}
	kb := r.key()
	exp := r.time()
	uses := int(r.u16())
	var v Invite
	copy(v.Nonce[:], r.take(16))
	v.Addr = r.str8()
	if !r.done() {
		return Invite{}, malformed(KindInvite, "wrong length")
	}
	if v.Inviter, err = parseKey(KindInvite, "inviter", kb); err != nil {
		return Invite{}, err
	}
	v.Expires, v.Uses = exp, uses
	if err := v.check(); err != nil {
		return Invite{}, err
	}
	if !v.Inviter.Verify(signingInput(KindInvite, body), sig) {
		return Invite{}, &StatementError{Kind: KindInvite, Reason: "signature does not verify with the inviter's key", Err: ErrBadSignature}
	}
	return v, nil
}

// Check refuses an invite that has expired at now.
func (v Invite) Check(now time.Time) error {
	if !now.Before(v.Expires) {
		return &StatementError{Kind: KindInvite, Reason: fmt.Sprintf("expired at %s", v.Expires.Format(time.RFC3339)), Err: ErrExpired}
	}
	return nil
}

// Admit is an introduction: Inviter vouches that Member joined with the
// invite Nonce, calls itself Name and listens at Addr. Members that know the
// inviter add Member to their peer books (with no grants).
type Admit struct {
	Inviter identity.PublicKey
	Member  identity.PublicKey
	Name    string // the nickname Member gives itself
	Addr    string
	Nonce   Nonce
	Issued  time.Time
}

// body is: version | inviter (32) | member (32) | issued (8) | nonce (16) |
// len(name) (1) | name | len(addr) (1) | addr.
func (a Admit) body() []byte {
	b := make([]byte, 0, 90+len(a.Name)+len(a.Addr))
	b = append(b, statementVersion)
	b = append(b, a.Inviter.Bytes()...)
	b = append(b, a.Member.Bytes()...)
	b = appendI64(b, a.Issued.Unix())
	b = append(b, a.Nonce[:]...)
	b = appendStr8(b, a.Name)
	return appendStr8(b, a.Addr)
}

func (a Admit) check() error {
	switch {
	case a.Inviter.IsZero() || a.Member.IsZero():
		return malformed(KindAdmit, "missing key")
	case a.Inviter == a.Member:
		return malformed(KindAdmit, "a key cannot introduce itself")
	case !config.ValidName(a.Name):
		return malformed(KindAdmit, "name is not a valid nickname")
	case !validTime(a.Issued):
		return malformed(KindAdmit, "issue time out of range")
	case len(a.Addr) > MaxAddrLen:
		return malformed(KindAdmit, "address longer than %d bytes", MaxAddrLen)
	}
	if err := config.ValidAddr(a.Addr); err != nil {
		return malformed(KindAdmit, "address: %v", err)
	}
	return nil
}

// Sign returns the text of a, signed by key, which must be a.Inviter's.
func (a Admit) Sign(key identity.PrivateKey) (string, error) {
	a.Issued = a.Issued.Truncate(time.Second).UTC()
	if key.Public() != a.Inviter {
		return "", errors.New("membership: an introduction is signed by its inviter")
	}
	if err := a.check(); err != nil {
		return "", err
	}
	body := a.body()
	return encodeText(AdmitPrefix, body, key.Sign(signingInput(KindAdmit, body))), nil
}

// ParseAdmit decodes an introduction and verifies the inviter's signature.
func ParseAdmit(s string) (Admit, error) {
	raw, err := decodeText(KindAdmit, AdmitPrefix, s)
	if err != nil {
		return Admit{}, err
	}
	if len(raw) < 64 {
		return Admit{}, malformed(KindAdmit, "too short")
	}
	body, sig := raw[:len(raw)-64], raw[len(raw)-64:]
	r := reader{b: body}
	if ver := r.byte1(); !r.bad && ver != statementVersion {
		return Admit{}, malformed(KindAdmit, "unknown version %d", ver)
	}
	ik, mk := r.key(), r.key()
	var a Admit
	a.Issued = r.time()
	copy(a.Nonce[:], r.take(16))
	a.Name = r.str8()
	a.Addr = r.str8()
	if !r.done() {
		return Admit{}, malformed(KindAdmit, "wrong length")
	}
	if a.Inviter, err = parseKey(KindAdmit, "inviter", ik); err != nil {
		return Admit{}, err
	}
	if a.Member, err = parseKey(KindAdmit, "member", mk); err != nil {
		return Admit{}, err
	}
	if err := a.check(); err != nil {
		return Admit{}, err
	}
	if !a.Inviter.Verify(signingInput(KindAdmit, body), sig) {
		return Admit{}, &StatementError{Kind: KindAdmit, Reason: "signature does not verify with the inviter's key", Err: ErrBadSignature}
	}
	return a, nil
}
