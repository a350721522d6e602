package fsm

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Limits of a request. A request larger than MaxRequestSize is refused before
// it is parsed.
const (
	MaxKeyLen       = 256
	MaxValueLen     = 64 << 10
	MaxTextLen      = 4 << 10
	MaxRequestSize  = 80 << 10
	requestMagic    = "treaty/consensus/request/v1\x00"
	requestBodyBase = len(requestMagic) + 32 + 32 + 8 + 1
)

// OpKind is what a request asks the group to do.
type OpKind uint8

const (
	OpPut          OpKind = 1 // set Key to Value; with HasIfVersion, only if its version is IfVersion (0: absent)
	OpDelete       OpKind = 2 // remove Key; with HasIfVersion, only at that version
	OpMotionOpen   OpKind = 3 // open a motion needing Quorum yes votes, by Deadline (0: none)
	OpMotionVote   OpKind = 4 // vote Yes or no on Motion
	OpMemberAdd    OpKind = 5 // open a membership motion to add Member
	OpMemberRemove OpKind = 6 // open a membership motion to remove Member
)

func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpMotionOpen:
		return "motion-open"
	case OpMotionVote:
		return "motion-vote"
	case OpMemberAdd:
		return "member-add"
	case OpMemberRemove:
		return "member-remove"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op is one operation. Only the fields of its Kind are encoded; the others
// must be zero.
type Op struct {
	Kind OpKind

	Key          string // put, delete
	Value        []byte // put
	HasIfVersion bool   // put, delete: compare-and-set
	IfVersion    uint64 // put, delete; 0 means "the key is absent" (put only)

	Name     string // motion-open: the motion's name (see ValidMotionName)
	Quorum   uint32 // motion-open
	Deadline int64  // motion-open, member-add/remove: agreed time (unix ns) by which it must pass; 0 = none
	Text     string // motion-open, member-add/remove

	Motion string // motion-vote: the motion's name
	Yes    bool   // motion-vote

	Member identity.PublicKey // member-add/remove
}

// Put sets key to value unconditionally.
func Put(key string, value []byte) Op { return Op{Kind: OpPut, Key: key, Value: value} }

// CAS sets key to value only if its version is ifVersion (0: the key is absent).
func CAS(key string, value []byte, ifVersion uint64) Op {
	return Op{Kind: OpPut, Key: key, Value: value, HasIfVersion: true, IfVersion: ifVersion}
}

// Delete removes key.
func Delete(key string) Op { return Op{Kind: OpDelete, Key: key} }

// OpenMotion opens motion name, which passes with quorum yes votes. deadline
// is absolute agreed time in unix ns (the CLI turns --deadline DURATION into
// the proposer's now plus DURATION); 0 means none.
func OpenMotion(name string, quorum uint32, deadline int64, text string) Op {
	return Op{Kind: OpMotionOpen, Name: name, Quorum: quorum, Deadline: deadline, Text: text}
}

// Vote votes on the motion called name.
func Vote(name string, yes bool) Op { return Op{Kind: OpMotionVote, Motion: name, Yes: yes} }

// AddMember proposes adding k; the group decides by motion.
func AddMember(k identity.PublicKey, deadline int64, text string) Op {
	return Op{Kind: OpMemberAdd, Member: k, Deadline: deadline, Text: text}
}

// RemoveMember proposes removing k; the group decides by motion.
func RemoveMember(k identity.PublicKey, deadline int64, text string) Op {
	return Op{Kind: OpMemberRemove, Member: k, Deadline: deadline, Text: text}
}

func (o Op) encode(w *writer) {
	w.u8(uint8(o.Kind))
	switch o.Kind {
	case OpPut:
		w.str(o.Key)
		w.bytes(o.Value)
		w.boolean(o.HasIfVersion)
		w.u64(o.IfVersion)
	case OpDelete:
		w.str(o.Key)
		w.boolean(o.HasIfVersion)
		w.u64(o.IfVersion)
	case OpMotionOpen:
		w.str(o.Name)
		w.u32(o.Quorum)
		w.i64(o.Deadline)
		w.str(o.Text)
	case OpMotionVote:
		w.str(o.Motion)
		w.boolean(o.Yes)
	case OpMemberAdd, OpMemberRemove:
		w.raw(o.Member.Bytes())
		w.i64(o.Deadline)
		w.str(o.Text)
	}
}

func decodeOp(r *reader) Op {
	o := Op{Kind: OpKind(r.u8())}
	switch o.Kind {
	case OpPut:
		o.Key = r.text("key", MaxKeyLen)
		o.Value = r.bytes("value", MaxValueLen)
		o.HasIfVersion = r.boolean("if-version flag")
		o.IfVersion = r.u64()
	case OpDelete:
		o.Key = r.text("key", MaxKeyLen)
		o.HasIfVersion = r.boolean("if-version flag")
		o.IfVersion = r.u64()
	case OpMotionOpen:
		o.Name = r.text("motion name", MaxMotionNameLen)
		o.Quorum = r.u32()
		o.Deadline = r.i64()
		o.Text = r.text("text", MaxTextLen)
	case OpMotionVote:
		o.Motion = r.text("motion name", MaxMotionNameLen)
		o.Yes = r.boolean("vote")
	case OpMemberAdd, OpMemberRemove:
		p := r.take(32)
		if r.err == nil {
			k, err := identity.PublicKeyFromEd25519(p)
			if err != nil {
				r.fail(err)
			}
			o.Member = k
		}
		o.Deadline = r.i64()
		o.Text = r.text("text", MaxTextLen)
	default:
		r.fail(fmt.Errorf("unknown operation %d", uint8(o.Kind)))
	}
	if r.err == nil {
		if err := o.validate(); err != nil {
			r.fail(err)
		}
	}
	return o
}

// validate checks what can be checked without state, so that an encoding
// that decodes is also one that re-encodes to the same bytes.
func (o Op) validate() error {
	switch o.Kind {
	case OpPut, OpDelete:
		if err := validKey(o.Key); err != nil {
			return err
		}
		if len(o.Value) > MaxValueLen {
			return fmt.Errorf("value: %d bytes, limit %d", len(o.Value), MaxValueLen)
		}
		if !o.HasIfVersion && o.IfVersion != 0 {
			return errors.New("if-version set without its flag")
		}
	case OpMotionOpen, OpMemberAdd, OpMemberRemove:
		if len(o.Text) > MaxTextLen || !utf8.ValidString(o.Text) {
			return fmt.Errorf("text: want valid UTF-8 of at most %d bytes", MaxTextLen)
		}
		if o.Deadline < 0 {
			return errors.New("deadline: negative")
		}
		if o.Kind != OpMotionOpen && o.Member.IsZero() {
			return errors.New("member: zero key")
		}
		if o.Kind == OpMotionOpen {
			return ValidMotionName(o.Name)
		}
	case OpMotionVote:
		return validMotionRef(o.Motion)
	default:
		return fmt.Errorf("unknown operation %d", uint8(o.Kind))
	}
	return nil
}

// MaxMotionNameLen bounds a motion's name.
const MaxMotionNameLen = 64

// ValidMotionName accepts the names a member may give a motion: 1 to
// MaxMotionNameLen ASCII letters, digits, '-', '_' and '.'. Membership motions
// get names of the form "#INDEX" from the group, which no member can choose.
func ValidMotionName(s string) error {
	if s == "" || len(s) > MaxMotionNameLen {
		return fmt.Errorf("motion name: %d bytes, want 1..%d", len(s), MaxMotionNameLen)
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("motion name %+q: only A-Z a-z 0-9 - _ . are allowed", s)
		}
	}
	return nil
}

// validMotionRef accepts a member's name or a membership motion's "#INDEX".
func validMotionRef(s string) error {
	if len(s) > 1 && s[0] == '#' && len(s) <= 21 {
		for _, c := range []byte(s[1:]) {
			if c < '0' || c > '9' {
				return fmt.Errorf("motion name %+q: want digits after '#'", s)
			}
		}
		return nil
	}
	return ValidMotionName(s)
}

func validKey(k string) error {
	if k == "" || len(k) > MaxKeyLen {
		return fmt.Errorf("key: %d bytes, want 1..%d", len(k), MaxKeyLen)
	}
	if !utf8.ValidString(k) {
		return errors.New("key: not valid UTF-8")
	}
	for _, c := range k {
		if c < 0x20 || c == 0x7f {
			return errors.New("key: control character")
		}
	}
	return nil
}

// Request is a decoded signed request: one member's operation on one group
// epoch, with its sequence number and signature.
type Request struct {
	Group    ID
	Proposer identity.PublicKey
	Seq      uint64 // strictly greater than the proposer's last applied Seq
	Op       Op
	Sig      []byte // ed25519 over the body (magic included)

	body []byte
}

// Body is the signed encoding (domain-separated by its magic).
func (r Request) Body() []byte { return r.body }

// Encode is the wire form: body then the 64-byte signature.
func (r Request) Encode() []byte {
	return append(append([]byte{}, r.body...), r.Sig...)
}

// VerifySignature reports whether Sig is Proposer's signature of the body.
func (r Request) VerifySignature() bool { return r.Proposer.Verify(r.body, r.Sig) }

// SignRequest builds and signs a request; it fails on an operation that
// DecodeRequest would refuse.
func SignRequest(k identity.PrivateKey, group ID, seq uint64, op Op) (Request, error) {
	if k.IsZero() {
		return Request{}, errors.New("fsm: sign request: zero private key")
	}
	if err := op.validate(); err != nil {
		return Request{}, fmt.Errorf("fsm: sign request: %w", err)
	}
	var w writer
	w.raw([]byte(requestMagic))
	w.raw(group[:])
	w.raw(k.Public().Bytes())
	w.u64(seq)
	op.encode(&w)
	if len(w.b)+ed25519.SignatureSize > MaxRequestSize {
		return Request{}, fmt.Errorf("fsm: sign request: %d bytes, limit %d", len(w.b)+ed25519.SignatureSize, MaxRequestSize)
	}
	return Request{Group: group, Proposer: k.Public(), Seq: seq, Op: op, Sig: k.Sign(w.b), body: w.b}, nil
}

// DecodeError says why request bytes were refused.
type DecodeError struct{ Err error }

func (e *DecodeError) Error() string { return "fsm: malformed request: " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeRequest parses the wire form strictly: known magic and operation,
// every length within its limit, no trailing bytes, so that the bytes are the
// only encoding of the decoded request. It does not check the signature.
func DecodeRequest(b []byte) (Request, error) {
	if len(b) > MaxRequestSize {
		return Request{}, &DecodeError{fmt.Errorf("%d bytes, limit %d", len(b), MaxRequestSize)}
	}
	if len(b) < requestBodyBase+ed25519.SignatureSize {
		return Request{}, &DecodeError{errTruncated}
	}
	body, sig := b[:len(b)-ed25519.SignatureSize], b[len(b)-ed25519.SignatureSize:]
	r := reader{b: body}
	if string(r.take(len(requestMagic))) != requestMagic {
		return Request{}, &DecodeError{errors.New("bad magic")}
	}
	var q Request
	copy(q.Group[:], r.take(32))
	k, err := identity.PublicKeyFromEd25519(r.take(32))
	if err != nil {
		return Request{}, &DecodeError{fmt.Errorf("proposer: %w", err)}
	}
	q.Proposer = k
	q.Seq = r.u64()
	q.Op = decodeOp(&r)
	if err := r.done(); err != nil {
		return Request{}, &DecodeError{err}
	}
	q.body = append([]byte{}, body...)
	q.Sig = append([]byte{}, sig...)
	return q, nil
}
