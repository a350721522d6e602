package config

import (
	"fmt"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// Group declares a consensus group this node belongs to. Every member's
// treaty.yaml (or `treaty group create`) must declare it with the same name,
// mode and members: a group's identity is a digest of the three, and members
// whose definitions differ refuse each other.
type Group struct {
	Name    string   `yaml:"name"`    // a-z 0-9 - _ . (at most 64 bytes)
	Mode    string   `yaml:"mode"`    // raft (inside one organisation) or bft (across organisations)
	Members []string `yaml:"members"` // every member, this node included: a did:key, a peer's nickname, or this node's own name
	// Nonce is the group's creation nonce in hex (`treaty group create
	// --new-nonce` prints one), the same on every member; empty: none. With
	// one, a group declared again under the same name, mode and members but
	// a new nonce is another group, and nothing signed for the old one is
	// valid in it.
	Nonce string `yaml:"nonce,omitempty"`
}

// GroupNonce is a group definition's nonce, checked by Validate (a
// Config that passed it has only valid ones).
func GroupNonce(nonce string) fsm.Nonce {
	n, _ := fsm.ParseNonce(nonce)
	return n
}

func (c *Config) validGroups() error {
	seen := map[string]bool{}
	for i, g := range c.Groups {
		if !validGroupName(g.Name) {
			return fmt.Errorf("config: groups[%d].name %q: want 1 to %d of a-z, 0-9, '-', '_', '.'", i, g.Name, fsm.MaxNameLen)
		}
		if seen[g.Name] {
			return fmt.Errorf("config: groups[%d].name %q is declared twice", i, g.Name)
		}
		seen[g.Name] = true
		if g.Mode != string(fsm.ModeRaft) && g.Mode != string(fsm.ModeBFT) {
			return fmt.Errorf("config: groups[%d].mode %q: want raft or bft", i, g.Mode)
		}
		if _, err := fsm.ParseNonce(g.Nonce); err != nil {
			return fmt.Errorf("config: groups[%d].nonce: %w", i, err)
		}
		if len(g.Members) == 0 || len(g.Members) > fsm.MaxMembers {
			return fmt.Errorf("config: groups[%d].members: %d listed, want 1 to %d (every member, self included)", i, len(g.Members), fsm.MaxMembers)
		}
		listed := map[string]bool{}
		for j, m := range g.Members {
			if listed[m] {
				return fmt.Errorf("config: groups[%d].members[%d] %q is listed twice", i, j, m)
			}
			listed[m] = true
			if m == c.Name {
				continue
			}
			if _, ok := c.Peer(m); ok {
				continue
			}
			if _, err := identity.ParseDID(m); err != nil {
				return fmt.Errorf("config: groups[%d].members[%d] %q is not a did:key, a peer's nickname or this node's name", i, j, m)
			}
		}
	}
	return nil
}

// validGovernor checks membership.governor: a group name and, when the
// definition is given here, a mode and members that resolve.
func (c *Config) validGovernor() error {
	g := c.Membership.Governor
	if g == nil {
		return nil
	}
	if !validGroupName(g.Group) {
		return fmt.Errorf("config: membership.governor.group %q: want 1 to %d of a-z, 0-9, '-', '_', '.'", g.Group, fsm.MaxNameLen)
	}
	if (g.Mode == "") != (len(g.Members) == 0) {
		return fmt.Errorf("config: membership.governor: mode and members go together (a node outside the group gives both; a member gives neither)")
	}
	if g.Mode == "" {
		if g.Nonce != "" {
			return fmt.Errorf("config: membership.governor.nonce goes with mode and members (a member declares the nonce under groups:)")
		}
		return nil
	}
	if _, err := fsm.ParseNonce(g.Nonce); err != nil {
		return fmt.Errorf("config: membership.governor.nonce: %w", err)
	}
	if g.Mode != string(fsm.ModeRaft) && g.Mode != string(fsm.ModeBFT) {
		return fmt.Errorf("config: membership.governor.mode %q: want raft or bft", g.Mode)
	}
	if len(g.Members) > fsm.MaxMembers {
		return fmt.Errorf("config: membership.governor.members: %d listed, at most %d", len(g.Members), fsm.MaxMembers)
	}
	listed := map[string]bool{}
	for j, m := range g.Members {
		if listed[m] {
			return fmt.Errorf("config: membership.governor.members[%d] %q is listed twice", j, m)
		}
		listed[m] = true
		if m == c.Name {
			continue
		}
		if _, ok := c.Peer(m); ok {
			continue
		}
		if _, err := identity.ParseDID(m); err != nil {
			return fmt.Errorf("config: membership.governor.members[%d] %q is not a did:key, a peer's nickname or this node's name", j, m)
		}
	}
	return nil
}

// GovernorMembers resolves membership.governor.members to keys (nil when
// the section gives none); self is this node's key.
func (c *Config) GovernorMembers(self identity.PublicKey) ([]identity.PublicKey, error) {
	g := c.Membership.Governor
	if g == nil || len(g.Members) == 0 {
		return nil, nil
	}
	return c.GroupMembers(Group{Name: g.Group, Mode: g.Mode, Members: g.Members}, self)
}

func validGroupName(s string) bool {
	if s == "" || len(s) > fsm.MaxNameLen {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// GroupMembers resolves a declared group's members to keys; self is this
// node's key, named by its own name or its did:key.
func (c *Config) GroupMembers(g Group, self identity.PublicKey) ([]identity.PublicKey, error) {
	out := make([]identity.PublicKey, 0, len(g.Members))
	for _, m := range g.Members {
		if m == c.Name {
			out = append(out, self)
			continue
		}
		if p, ok := c.Peer(m); ok {
			k, err := identity.ParseDID(p.ID)
			if err != nil {
				return nil, err
			}
			out = append(out, k)
			continue
		}
		k, err := identity.ParseDID(m)
		if err != nil {
			return nil, fmt.Errorf("config: group %s: member %q: %w", g.Name, m, err)
		}
		out = append(out, k)
	}
	return out, nil
}
