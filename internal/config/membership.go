package config

import (
	"fmt"
	"slices"
	"time"
)

// Where a peer book entry came from (Peer.Source).
const (
	SourceOperator = "operator" // treaty peer add (also the meaning of "")
	SourceInvite   = "invite"   // this node let the key in with one of its invites, or joined through it
	SourceGossip   = "gossip"   // another member introduced the key, or it rotated from a known key
	SourceDecision = "decision" // a governing consensus group admitted the key
)

// PeerSources lists the values Peer.Source may take besides "".
func PeerSources() []string {
	return []string{SourceOperator, SourceInvite, SourceGossip, SourceDecision}
}

func validSource(s string) bool { return s == "" || slices.Contains(PeerSources(), s) }

// Bounds of the membership section.
const (
	DefaultMaxInviteTTL  = 24 * time.Hour
	MaxMaxInviteTTL      = 30 * 24 * time.Hour
	DefaultMaxInviteUses = 10
	MaxMaxInviteUses     = 1000
)

// Membership turns on gossip and bounds the invites this node signs
// (docs/admission.md, docs/membership.md).
type Membership struct {
	// Enabled runs gossip (memberlist over the transport, seeded with the
	// peer book): members' signed records keep addresses current, and
	// statements spread by gossip as well as by push. Read at start.
	Enabled bool `yaml:"enabled,omitempty"`
	// Org is the organisation this node names in its signed record, for
	// display (`treaty members`). At most 64 bytes. Read at start.
	Org string `yaml:"org,omitempty"`
	// MaxInviteTTL is the longest --ttl `treaty invite` accepts. Zero: 24h;
	// allowed [1m, 720h].
	MaxInviteTTL Duration `yaml:"max_invite_ttl,omitempty"`
	// MaxInviteUses is the largest --uses `treaty invite` accepts. Zero: 10;
	// allowed [1, 1000].
	MaxInviteUses int `yaml:"max_invite_uses,omitempty"`
	// Governor names the consensus group that governs the federation: its
	// passed motions admit and revoke keys (docs/admission.md). Nil: none.
	Governor *Governor `yaml:"governor,omitempty"`
}

// Governor is the governing group. A member of the group names it by
// Group alone (it is declared under groups: or made with `treaty group
// create`); a node outside the group also gives Mode and Members, the
// definition it checks the group's decisions against.
type Governor struct {
	Group   string   `yaml:"group"`
	Mode    string   `yaml:"mode,omitempty"`    // raft or bft; with Members
	Members []string `yaml:"members,omitempty"` // did:keys, peer nicknames or this node's name
	Nonce   string   `yaml:"nonce,omitempty"`   // the group's creation nonce in hex, with Members; empty: none
}

// InviteTTL returns MaxInviteTTL with its default.
func (m Membership) InviteTTL() time.Duration {
	if m.MaxInviteTTL == 0 {
		return DefaultMaxInviteTTL
	}
	return m.MaxInviteTTL.D()
}

// InviteUses returns MaxInviteUses with its default.
func (m Membership) InviteUses() int {
	if m.MaxInviteUses == 0 {
		return DefaultMaxInviteUses
	}
	return m.MaxInviteUses
}

func (m Membership) validate() error {
	if len(m.Org) > 64 {
		return fmt.Errorf("config: membership.org is %d bytes; at most 64", len(m.Org))
	}
	if d := m.MaxInviteTTL.D(); d != 0 && (d < time.Minute || d > MaxMaxInviteTTL) {
		return fmt.Errorf("config: membership.max_invite_ttl %v outside [1m, %v]", d, MaxMaxInviteTTL)
	}
	if u := m.MaxInviteUses; u != 0 && (u < 1 || u > MaxMaxInviteUses) {
		return fmt.Errorf("config: membership.max_invite_uses %d outside [1, %d]", u, MaxMaxInviteUses)
	}
	return nil
}

// ValidAddr reports why s is not a usable host:port (nil when it is): the
// rule peers[].addr follows, for addresses that arrive in statements.
func ValidAddr(s string) error { return validAddr(s) }
