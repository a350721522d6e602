package membership

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Kinds of the admission statements (invite.go, rotate.go, revoke.go). Each is
// a fixed binary body signed with ed25519 under a domain-separation label of
// its own, so a signature over one kind never verifies as another, and is
// written as "<prefix>.<base64url(body || signatures)>": compact enough for a
// command line, strict enough that one statement has exactly one encoding.
const (
	KindInvite = "invite" // a join token: an existing member lets one or a few keys in
	KindAdmit  = "admit"  // an introduction: the inviter vouches for the key that used its token
	KindRotate = "rotate" // the old key hands its membership to a new key
	KindRevoke = "revoke" // a key declares itself void
)

// MaxStatementText bounds the text form of every admission statement; a longer
// input is refused before it is decoded.
const MaxStatementText = 1024

// statementVersion is the first byte of every body; a new layout gets a new one.
const statementVersion = 1

// StatementError says which kind of statement was refused and why. Reason is
// safe to show: it never quotes the statement (an invite token is a secret).
type StatementError struct {
	Kind   string // KindInvite, ...
	Reason string
	Err    error // ErrMalformed, ErrBadSignature, ErrExpired, ErrUsedUp, ...
}

func (e *StatementError) Error() string {
	return fmt.Sprintf("membership: %s statement refused: %s", e.Kind, e.Reason)
}
func (e *StatementError) Unwrap() error { return e.Err }

func malformed(kind, format string, a ...any) error {
	return &StatementError{Kind: kind, Reason: fmt.Sprintf(format, a...), Err: ErrMalformed}
}

// signingInput is what a key signs for a statement of kind: the label binds
// the signature to the kind and version.
func signingInput(kind string, body []byte) []byte {
	msg := make([]byte, 0, 32+len(body))
	msg = append(msg, "treaty-membership-v1/"...)
	msg = append(msg, kind...)
	msg = append(msg, 0)
	return append(msg, body...)
}

// encodeText frames body and signatures as prefix + "." + base64url.
func encodeText(prefix string, body []byte, sigs ...[]byte) string {
	raw := append([]byte(nil), body...)
	for _, s := range sigs {
		raw = append(raw, s...)
	}
	return prefix + "." + base64.RawURLEncoding.EncodeToString(raw)
}

// decodeText undoes encodeText: the exact prefix, canonical unpadded
// base64url, at most MaxStatementText bytes. Surrounding whitespace is
// allowed (copy and paste); anything else is refused.
func decodeText(kind, prefix, s string) ([]byte, error) {
	if len(s) > MaxStatementText {
		return nil, malformed(kind, "longer than %d bytes", MaxStatementText)
	}
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, prefix+".")
	if !ok {
		return nil, malformed(kind, "does not start with %q", prefix+".")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, malformed(kind, "not canonical unpadded base64url")
	}
	return raw, nil
}

// reader reads a body field by field; the first short read sticks, so a
// decoder checks r.err once at the end.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte1() byte     { return r.take(1)[0] }
func (r *reader) u16() uint16     { return binary.BigEndian.Uint16(r.take(2)) }
func (r *reader) i64() int64      { return int64(binary.BigEndian.Uint64(r.take(8))) }
func (r *reader) str8() string    { return string(r.take(int(r.byte1()))) }
func (r *reader) done() bool      { return !r.bad && len(r.b) == 0 }
func (r *reader) key() []byte     { return r.take(32) }
func (r *reader) time() time.Time { return time.Unix(r.i64(), 0).UTC() }

func appendI64(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }

// parseKey turns 32 body bytes into a key, refusing the zero key.
func parseKey(kind, field string, b []byte) (identity.PublicKey, error) {
	k, err := identity.PublicKeyFromEd25519(b)
	if err != nil {
		return identity.PublicKey{}, malformed(kind, "%s: %v", field, err)
	}
	return k, nil
}

// validTime bounds the times a statement may carry, so that a hostile value
// cannot overflow arithmetic or print as garbage: years 2000 to 9999.
func validTime(t time.Time) bool {
	return t.Year() >= 2000 && t.Year() <= 9999
}

// AdmissionStatement is one decoded and verified admission statement that
// members spread: exactly one of its pointers is set, as Kind says.
type AdmissionStatement struct {
	Kind string
	Text string // the canonical text, for forwarding and storage
	// Publisher is the key that signed the gossip envelope it came in (the
	// member that put it into gossip, accountable for it); zero otherwise.
	Publisher  identity.PublicKey
	Admit      *Admit
	Rotation   *Rotation
	Revocation *Revocation
}

// ParseAdmission decodes and verifies an introduction, a rotation or a
// revocation, chosen by its prefix. Invites are not statements: they are
// presented to their inviter only (ParseInvite).
func ParseAdmission(s string) (AdmissionStatement, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, AdmitPrefix+"."):
		a, err := ParseAdmit(s)
		return AdmissionStatement{Kind: KindAdmit, Text: s, Admit: &a}, err
	case strings.HasPrefix(s, RotatePrefix+"."):
		r, err := ParseRotation(s)
		return AdmissionStatement{Kind: KindRotate, Text: s, Rotation: &r}, err
	case strings.HasPrefix(s, RevokePrefix+"."):
		r, err := ParseRevocation(s)
		return AdmissionStatement{Kind: KindRevoke, Text: s, Revocation: &r}, err
	}
	return AdmissionStatement{}, malformed("unknown", "not an introduction, rotation or revocation")
}

// Envelope kinds under which gossip carries admission statements: the body is
// the statement's text, and the envelope's signer is whoever published it
// (the statement carries its own signatures).
const (
	GossipKindAdmit  = "treaty.admit"
	GossipKindRotate = "treaty.rotate"
	GossipKindRevoke = "treaty.revoke"
)

// gossipKinds maps a statement kind to its envelope kind.
var gossipKinds = map[string]string{KindAdmit: GossipKindAdmit, KindRotate: GossipKindRotate, KindRevoke: GossipKindRevoke}

// AdmissionEnvelope wraps a verified admission statement for gossip, signed
// by the publishing node's key.
func AdmissionEnvelope(publisher identity.PrivateKey, st AdmissionStatement) (Statement, error) {
	kind, ok := gossipKinds[st.Kind]
	if !ok {
		return Statement{}, malformed(st.Kind, "not an admission statement")
	}
	return SignStatement(publisher, kind, []byte(st.Text))
}

// AdmissionKinds registers the admission statements with gossip: each
// envelope kind accepts only a body that verifies as its own kind of
// statement, and accept gets every new one with its Publisher set (it must
// not block).
func AdmissionKinds(accept func(AdmissionStatement)) map[string]Kind {
	out := map[string]Kind{}
	for kind, envelope := range gossipKinds {
		out[envelope] = Kind{
			Validate: func(s Statement) error {
				st, err := ParseAdmission(string(s.Body))
				if err != nil {
					return err
				}
				if st.Kind != kind || st.Text != string(s.Body) {
					return malformed(kind, "envelope kind %s carries a %s statement", envelope, st.Kind)
				}
				return nil
			},
			Accept: func(s Statement) {
				if st, err := ParseAdmission(string(s.Body)); err == nil {
					st.Publisher = s.Signer
					accept(st)
				}
			},
		}
	}
	return out
}
