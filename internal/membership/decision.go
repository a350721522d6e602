package membership

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// Admission and revocation by a governing consensus group
// (docs/adr/0017-governing-group.md). The group decides by an ordinary
// motion whose text names the action (GroupAction.MotionText); once it
// passes, a member spreads a *decided* statement: the decision records of the
// entry that opened the motion and of the entry that passed it, wrapped and
// signed by the member that spreads them. A receiver checks the statement
// alone (ParseDecided), then that its group is the one it trusts to govern
// (the node's configuration).

// KindDecided is the statement kind of a group decision; DecidedPrefix starts
// its text.
const (
	KindDecided   = "decided"
	DecidedPrefix = "treaty-decided-v1"
)

// Actions a governing group takes on a key.
const (
	ActionAdmit  = "admit"
	ActionRevoke = "revoke"
)

// GovernorTextPrefix starts the text of a governing motion. A motion whose
// text does not start with it is an ordinary motion and means nothing to
// admission.
const GovernorTextPrefix = "treaty-governor-v1"

// MaxDecidedText bounds a decided statement's text (two decision records of a
// group of up to fsm.MaxMembers members, base64url): a longer input is
// refused before it is decoded.
const MaxDecidedText = 128 << 10

// ErrNotGoverning: a decision that verifies but was not taken by the group
// this node trusts to govern the federation.
var ErrNotGoverning = errors.New("membership: not a decision of the governing group")

// GroupAction is what a governing motion asks: admit Key under Name, or
// revoke Key.
type GroupAction struct {
	Kind string // ActionAdmit or ActionRevoke
	Key  identity.PublicKey
	Name string // admit: the nickname members give the key (a peer book nickname)
}

// MotionText is the motion's text: "treaty-governor-v1 admit DID NAME" or
// "treaty-governor-v1 revoke DID". It carries no address: the group decides
// which key is a member, not where it listens (and the outbound sanitizer
// would refuse an IP address in a replicated text).
func (a GroupAction) MotionText() string {
	if a.Kind == ActionAdmit {
		return GovernorTextPrefix + " " + a.Kind + " " + a.Key.String() + " " + a.Name
	}
	return GovernorTextPrefix + " " + a.Kind + " " + a.Key.String()
}

// MotionName names the motion: the action, a digest of the key and suffix
// (the opener's choice, e.g. its clock in base 36, so a failed motion can be
// tried again under a new name).
func (a GroupAction) MotionName(suffix string) string {
	d := sha256.Sum256(a.Key.Bytes())
	return a.Kind + "-" + hex.EncodeToString(d[:6]) + "-" + suffix
}

// Check says whether a is well formed.
func (a GroupAction) Check() error {
	if a.Key.IsZero() {
		return malformed(KindDecided, "governing motion names no key")
	}
	switch a.Kind {
	case ActionRevoke:
		if a.Name != "" {
			return malformed(KindDecided, "a revocation carries no name")
		}
	case ActionAdmit:
		if !validNickname(a.Name) {
			return malformed(KindDecided, "name %q: want 1 to 64 of a-z, 0-9, '-', '_', '.', starting with a letter or digit", a.Name)
		}
	default:
		return malformed(KindDecided, "unknown action %q", a.Kind)
	}
	return nil
}

func validNickname(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '-' && c != '_' && c != '.') {
			return false
		}
	}
	return true
}

// ParseGroupAction reads a governing motion's text strictly; ok is false for
// a motion that is not a governing one (its text lacks the prefix).
func ParseGroupAction(text string) (a GroupAction, ok bool, err error) {
	rest, found := strings.CutPrefix(text, GovernorTextPrefix+" ")
	if !found {
		return GroupAction{}, false, nil
	}
	f := strings.Split(rest, " ")
	if len(f) < 2 || len(f) > 3 {
		return GroupAction{}, true, malformed(KindDecided, "governing motion text has %d fields", len(f)+1)
	}
	a.Kind = f[0]
	if a.Key, err = identity.ParseDID(f[1]); err != nil {
		return GroupAction{}, true, malformed(KindDecided, "governing motion key: %v", err)
	}
	if len(f) == 3 {
		a.Name = f[2]
	}
	if a.Kind == ActionAdmit && len(f) != 3 {
		return GroupAction{}, true, malformed(KindDecided, "an admission names the key's nickname")
	}
	if err := a.Check(); err != nil {
		return GroupAction{}, true, err
	}
	return a, true, nil
}

// Decided is a verified decided statement.
type Decided struct {
	Action GroupAction
	Group  fsm.Group // the definition in force when the motion opened and passed
	Motion string
	Opened uint64 // index of the entry that opened the motion
	Passed uint64 // index of the entry that passed it
	Time   int64  // the group's agreed time after Passed, unix ns
	Signer identity.PublicKey
	// Addr is where the admitted key listens, a hint signed by the member
	// that opened the motion (the only signer allowed to give one): the
	// handshake pins the key, so a wrong address costs reachability, never
	// identity.
	Addr string
	Text string // canonical text, for forwarding
}

// decidedBody is the JSON inside a decided statement.
type decidedBody struct {
	Signer identity.PublicKey `json:"signer"`
	Addr   string             `json:"addr,omitempty"`
	Open   json.RawMessage    `json:"open"`
	Close  json.RawMessage    `json:"close"`
}

// SignDecided wraps the records of the entry that opened a governing motion
// and of the entry that passed it, signed by k. addr (admissions only) is the
// newcomer's address, which only the motion's opener may give. The result is
// checked as a receiver would check it.
func SignDecided(k identity.PrivateKey, open, passed fsm.Record, addr string) (string, Decided, error) {
	ob, err := json.Marshal(open)
	if err != nil {
		return "", Decided{}, err
	}
	cb, err := json.Marshal(passed)
	if err != nil {
		return "", Decided{}, err
	}
	body, err := json.Marshal(decidedBody{Signer: k.Public(), Addr: addr, Open: ob, Close: cb})
	if err != nil {
		return "", Decided{}, err
	}
	text := encodeText(DecidedPrefix, body, k.Sign(signingInput(KindDecided, body)))
	if len(text) > MaxDecidedText {
		return "", Decided{}, malformed(KindDecided, "longer than %d bytes", MaxDecidedText)
	}
	d, err := ParseDecided(text)
	return text, d, err
}

// unproven is a decided statement whose proof does not hold.
func unproven(format string, a ...any) error {
	return &StatementError{Kind: KindDecided, Reason: fmt.Sprintf(format, a...), Err: ErrBadSignature}
}

// ParseDecided decodes a decided statement and checks everything it can
// alone: the wrapper's signature; both records (fsm.Verify: the group
// definition, the proposers' signatures and, for BFT, certificates of a
// quorum of members over each entry and its result); that they belong to one
// definition; that the first opened a governing motion with at least the
// group's quorum and the second passed that motion, at most
// fsm.MaxDecidedMotions entries later (closer than the group can forget a
// motion's name and reuse it); for Raft, whose records carry no
// certificate, that the wrapper's signer is a member; and that only the
// motion's opener gives an address. The caller still checks that Group is
// the one it trusts (ErrNotGoverning).
func ParseDecided(s string) (Decided, error) {
	if len(s) > MaxDecidedText {
		return Decided{}, malformed(KindDecided, "longer than %d bytes", MaxDecidedText)
	}
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, DecidedPrefix+".")
	if !ok {
		return Decided{}, malformed(KindDecided, "does not start with %q", DecidedPrefix+".")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return Decided{}, malformed(KindDecided, "not canonical unpadded base64url")
	}
	if len(raw) < 64 {
		return Decided{}, malformed(KindDecided, "too short")
	}
	body, sig := raw[:len(raw)-64], raw[len(raw)-64:]
	var b decidedBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return Decided{}, malformed(KindDecided, "body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Decided{}, malformed(KindDecided, "data after the body")
	}
	if b.Signer.IsZero() {
		return Decided{}, malformed(KindDecided, "no signer")
	}
	if !b.Signer.Verify(signingInput(KindDecided, body), sig) {
		return Decided{}, &StatementError{Kind: KindDecided, Reason: "signature does not verify with its signer", Err: ErrBadSignature}
	}
	open, err := fsm.ParseRecord(b.Open)
	if err != nil {
		return Decided{}, malformed(KindDecided, "open record: %v", err)
	}
	passed, err := fsm.ParseRecord(b.Close)
	if err != nil {
		return Decided{}, malformed(KindDecided, "close record: %v", err)
	}
	if err := fsm.Verify(open); err != nil {
		return Decided{}, unproven("open record: %v", err)
	}
	if err := fsm.Verify(passed); err != nil {
		return Decided{}, unproven("close record: %v", err)
	}
	if open.Group.ID != passed.Group.ID {
		return Decided{}, unproven("the records belong to different group definitions (%s, %s)", open.Group.ID, passed.Group.ID)
	}
	g, err := fsm.NewGroup(open.Group.Name, open.Group.Mode, open.Group.Epoch, open.Group.Members)
	if err != nil {
		return Decided{}, malformed(KindDecided, "group: %v", err)
	}
	if len(open.Request) == 0 {
		return Decided{}, unproven("the open record is a tick")
	}
	q, err := fsm.DecodeRequest(open.Request)
	if err != nil {
		return Decided{}, malformed(KindDecided, "open request: %v", err)
	}
	if q.Op.Kind != fsm.OpMotionOpen || open.Result.Code != fsm.CodeOK || open.Result.Motion != q.Op.Name {
		return Decided{}, unproven("the open record did not open a motion")
	}
	act, gov, err := ParseGroupAction(q.Op.Text)
	if err != nil {
		return Decided{}, err
	}
	if !gov {
		return Decided{}, unproven("motion %q is not a governing motion", q.Op.Name)
	}
	if int(q.Op.Quorum) < g.Quorum() {
		return Decided{}, unproven("motion %q needs %d yes votes, fewer than the group's quorum %d", q.Op.Name, q.Op.Quorum, g.Quorum())
	}
	if passed.Index <= open.Index || passed.Index-open.Index > fsm.MaxDecidedMotions {
		return Decided{}, unproven("close index %d is not within %d entries after open index %d", passed.Index, fsm.MaxDecidedMotions, open.Index)
	}
	closed := false
	for _, c := range passed.Result.Closed {
		if c.Motion == q.Op.Name && c.Outcome == fsm.OutcomePassed {
			closed = true
		}
	}
	if !closed {
		return Decided{}, unproven("the close record does not pass motion %q", q.Op.Name)
	}
	if g.Mode == fsm.ModeRaft && !g.IsMember(b.Signer) {
		// No certificate: a Raft decision is the word of a member.
		return Decided{}, unproven("raft decision relayed under the signature of %s, not a member", b.Signer.Short())
	}
	if b.Addr != "" {
		if act.Kind != ActionAdmit || b.Signer != q.Proposer {
			return Decided{}, unproven("an address given by %s, not the admission's opener", b.Signer.Short())
		}
		if err := checkHostPort(b.Addr); err != nil {
			return Decided{}, malformed(KindDecided, "addr: %v", err)
		}
	}
	return Decided{Action: act, Group: g, Motion: q.Op.Name, Opened: open.Index, Passed: passed.Index,
		Time: passed.Result.Time, Signer: b.Signer, Addr: b.Addr, Text: s}, nil
}

func checkHostPort(s string) error {
	if len(s) > 255 {
		return errors.New("longer than 255 bytes")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("%q is not host:port", s)
	}
	return nil
}
