package membership

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// Anti-entropy for decided statements (docs/admission.md). A decided
// statement is up to MaxDecidedText bytes, far past a gossip statement's
// MaxStatementBody, so gossip carries only an announcement: "I hold the
// decided statement with this digest, about this key, from this group and
// index". A member that lacks it fetches the statement from the announcer
// (the envelope's signer) on the node's decided-statement protocol and checks
// it as if it had been pushed.

// GossipKindDecided is the envelope kind of a decided-statement announcement.
// Its Kind is Transient: each node announces what it holds in its own
// push-pull state (Config.Announce) instead of the kept statements.
const GossipKindDecided = "treaty.decided"

// decidedAnnouncementBytes is the fixed size of an announcement body.
const decidedAnnouncementBytes = 1 + 1 + 32 + 32 + 8 + 8 + 32

// DecidedAnnouncement says that its signer holds a decided statement.
type DecidedAnnouncement struct {
	Digest  [32]byte // SHA-256 of the statement's text
	Action  string   // ActionAdmit or ActionRevoke
	Subject identity.PublicKey
	Group   fsm.ID // the deciding group's definition
	Passed  uint64 // index of the entry that passed the motion
	Time    int64  // the decision's time, unix ns
}

// AnnounceDecided describes d for gossip.
func AnnounceDecided(d Decided) DecidedAnnouncement {
	return DecidedAnnouncement{Digest: sha256.Sum256([]byte(d.Text)), Action: d.Action.Kind, Subject: d.Action.Key,
		Group: d.Group.ID(), Passed: d.Passed, Time: d.Time}
}

// Matches reports whether d is the statement a announces: the same text
// and the same decision.
func (a DecidedAnnouncement) Matches(d Decided) bool {
	return AnnounceDecided(d) == a
}

// Marshal returns the announcement's fixed-size body.
func (a DecidedAnnouncement) Marshal() []byte {
	b := make([]byte, 0, decidedAnnouncementBytes)
	b = append(b, statementVersion)
	switch a.Action {
	case ActionAdmit:
		b = append(b, 1)
	default:
		b = append(b, 2)
	}
	b = append(b, a.Subject.Bytes()...)
	b = append(b, a.Group[:]...)
	b = binary.BigEndian.AppendUint64(b, a.Passed)
	b = appendI64(b, a.Time)
	return append(b, a.Digest[:]...)
}

// ParseDecidedAnnouncement decodes an announcement body strictly: exactly
// decidedAnnouncementBytes, version 1, a known action, a valid key, a
// non-zero index and a time within validTime.
func ParseDecidedAnnouncement(b []byte) (DecidedAnnouncement, error) {
	var a DecidedAnnouncement
	if len(b) != decidedAnnouncementBytes {
		return a, malformed(KindDecided, "announcement of %d bytes, want %d", len(b), decidedAnnouncementBytes)
	}
	r := reader{b: b}
	if r.byte1() != statementVersion {
		return a, malformed(KindDecided, "announcement version")
	}
	switch r.byte1() {
	case 1:
		a.Action = ActionAdmit
	case 2:
		a.Action = ActionRevoke
	default:
		return a, malformed(KindDecided, "announcement action")
	}
	k, err := parseKey(KindDecided, "subject", r.key())
	if err != nil {
		return DecidedAnnouncement{}, err
	}
	a.Subject = k
	copy(a.Group[:], r.take(32))
	a.Passed = binary.BigEndian.Uint64(r.take(8))
	a.Time = r.i64()
	copy(a.Digest[:], r.take(32))
	if !r.done() || a.Passed == 0 || !validTime(time.Unix(0, a.Time)) {
		return DecidedAnnouncement{}, malformed(KindDecided, "announcement fields out of bounds")
	}
	return a, nil
}

// SignDecidedAnnouncement wraps a for gossip, signed by the announcer.
func SignDecidedAnnouncement(k identity.PrivateKey, a DecidedAnnouncement) (Statement, error) {
	return SignStatement(k, GossipKindDecided, a.Marshal())
}

// DecidedKinds registers announcements with gossip; accept gets every new
// valid one with its announcer (it must not block).
func DecidedKinds(accept func(announcer identity.PublicKey, a DecidedAnnouncement)) map[string]Kind {
	return map[string]Kind{GossipKindDecided: {
		Transient: true,
		Validate: func(s Statement) error {
			_, err := ParseDecidedAnnouncement(s.Body)
			return err
		},
		Accept: func(s Statement) {
			if a, err := ParseDecidedAnnouncement(s.Body); err == nil {
				accept(s.Signer, a)
			}
		},
	}}
}

// MaxAnnounce bounds the announcements one push-pull state carries
// (Config.Announce): the first ones are used.
const MaxAnnounce = 256

// announced returns this node's announcements for its push-pull state.
func (m *Membership) announced() []Statement {
	if m.cfg.Announce == nil {
		return nil
	}
	out := m.cfg.Announce()
	if len(out) > MaxAnnounce {
		out = out[:MaxAnnounce]
	}
	return out
}
