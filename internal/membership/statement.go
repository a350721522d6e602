package membership

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Limits of a statement.
const (
	MaxKindBytes      = 32   // Statement.Kind
	MaxStatementBody  = 1024 // Statement.Body
	MaxStatementBytes = 4 + 1 + MaxKindBytes + 32 + 2 + MaxStatementBody + 64
)

var statementMagic = [4]byte{'T', 'R', 'S', '1'}

// statementDomain separates statement signatures from records and everything
// else a treaty key signs. The kind is inside the signed bytes, so a body
// signed as one kind cannot be replayed as another.
const statementDomain = "treaty/membership/statement/v1\x00"

// Statement is a signed message that gossip carries for another package
// (revocations, rotations): Membership checks the envelope (encoding,
// signature by Signer) and hands the body to the Kind registered under Kind,
// which decides what it means and whether it is valid. Unknown kinds are
// neither accepted nor relayed.
type Statement struct {
	// Kind names the registered handler: 1 to MaxKindBytes of [a-z0-9.-].
	Kind   string
	Signer identity.PublicKey
	// Body is opaque here, at most MaxStatementBody bytes.
	Body []byte
	Sig  []byte
}

// Kind handles one kind of statement. The envelope signature is verified
// before either function is called.
type Kind struct {
	// Validate decides whether a statement of this kind is acceptable (e.g.
	// that Signer may say what Body says, that it has not expired). An error
	// drops the statement and is reported as Evidence against the peer that
	// sent it. Required. It is called concurrently and must not block.
	Validate func(Statement) error
	// Accept is called once for every new valid statement, whether it came by
	// gossip or from Publish, in no particular order across statements.
	// It must not block (hand off to a goroutine for slow work). Optional.
	Accept func(Statement)
	// Transient statements are gossiped but not kept for later joiners: the
	// node that stands behind one puts it in its own push-pull state
	// (Config.Announce), so what a member hears reflects what its
	// partners hold now, and the kept store (MaxStatements) does not fill
	// with one copy per member.
	Transient bool
}

// SignStatement returns a statement of kind with body, signed by k.
func SignStatement(k identity.PrivateKey, kind string, body []byte) (Statement, error) {
	s := Statement{Kind: kind, Signer: k.Public(), Body: bytes.Clone(body)}
	if err := s.check(); err != nil {
		return Statement{}, err
	}
	s.Sig = k.Sign(s.signingBase())
	return s, nil
}

func (s *Statement) body(b []byte) []byte {
	b = append(b, statementMagic[:]...)
	b = appendStr8(b, s.Kind)
	b = append(b, s.Signer.Bytes()...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Body)))
	return append(b, s.Body...)
}

func (s *Statement) signingBase() []byte { return s.body([]byte(statementDomain)) }

// Verify checks the envelope signature.
func (s *Statement) Verify() error {
	if s.Signer.IsZero() || !s.Signer.Verify(s.signingBase(), s.Sig) {
		return ErrBadSignature
	}
	return nil
}

// Marshal returns the canonical encoding of a signed statement.
func (s *Statement) Marshal() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if len(s.Sig) != 64 {
		return nil, fmt.Errorf("%w: statement is not signed", ErrMalformed)
	}
	return append(s.body(make([]byte, 0, 128+len(s.Body))), s.Sig...), nil
}

// ID is the SHA-256 of the statement's encoding; gossip deduplicates by it.
func (s *Statement) ID() [32]byte {
	b, err := s.Marshal()
	if err != nil {
		return [32]byte{}
	}
	return sha256.Sum256(b)
}

// UnmarshalStatement decodes exactly one statement, strictly (see
// UnmarshalRecord). It does not verify the signature.
func UnmarshalStatement(b []byte) (Statement, error) {
	var s Statement
	if len(b) > MaxStatementBytes {
		return s, fmt.Errorf("%w: statement of %d bytes exceeds %d", ErrMalformed, len(b), MaxStatementBytes)
	}
	d := decoder{b: b}
	if !bytes.Equal(d.take(4), statementMagic[:]) {
		return s, fmt.Errorf("%w: not a statement (magic)", ErrMalformed)
	}
	s.Kind = d.str8()
	key, err := identity.PublicKeyFromEd25519(d.take(32))
	if err != nil && d.err == nil {
		return Statement{}, fmt.Errorf("%w: statement signer: %v", ErrMalformed, err)
	}
	s.Signer = key
	n := d.u16()
	if int(n) > MaxStatementBody {
		return Statement{}, fmt.Errorf("%w: statement body of %d bytes exceeds %d", ErrMalformed, n, MaxStatementBody)
	}
	s.Body = bytes.Clone(d.take(int(n)))
	s.Sig = bytes.Clone(d.take(64))
	if d.err != nil {
		return Statement{}, fmt.Errorf("%w: statement: %v", ErrMalformed, d.err)
	}
	if len(d.b) != 0 {
		return Statement{}, fmt.Errorf("%w: %d bytes after the statement", ErrMalformed, len(d.b))
	}
	if err := s.check(); err != nil {
		return Statement{}, err
	}
	return s, nil
}

func (s *Statement) check() error {
	if err := checkKind(s.Kind); err != nil {
		return err
	}
	if s.Signer.IsZero() {
		return fmt.Errorf("%w: statement has no signer", ErrMalformed)
	}
	if len(s.Body) > MaxStatementBody {
		return fmt.Errorf("%w: statement body of %d bytes exceeds %d", ErrMalformed, len(s.Body), MaxStatementBody)
	}
	return nil
}

func checkKind(k string) error {
	if len(k) == 0 || len(k) > MaxKindBytes {
		return fmt.Errorf("%w: statement kind is %d bytes, allowed 1 to %d", ErrMalformed, len(k), MaxKindBytes)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("%w: statement kind has the byte %#x; only [a-z0-9.-] are allowed", ErrMalformed, c)
		}
	}
	return nil
}
