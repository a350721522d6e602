package config

import (
	"strings"
	"testing"
)

func TestMembershipSection(t *testing.T) {
	t.Parallel()
	peer := func(source string) string {
		return "name: alice\npeers:\n  - {name: bob, id: " + bob + ", addr: \"127.0.0.1:7421\", source: " + source + "}\n"
	}
	for _, src := range []string{"operator", "invite", "gossip", "decision", `""`} {
		c, err := Parse([]byte(peer(src)))
		if err != nil {
			t.Fatalf("source %s: %v", src, err)
		}
		if got := c.Peers[0].Source; got != strings.Trim(src, `"`) {
			t.Fatalf("source %s parsed as %q", src, got)
		}
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown source", peer("rumour"), "peers[0].source"},
		{"ttl too short", "name: alice\nmembership: {max_invite_ttl: 30s}\n", "membership.max_invite_ttl"},
		{"ttl too long", "name: alice\nmembership: {max_invite_ttl: 721h}\n", "membership.max_invite_ttl"},
		{"uses too many", "name: alice\nmembership: {max_invite_uses: 1001}\n", "membership.max_invite_uses"},
		{"uses negative", "name: alice\nmembership: {max_invite_uses: -1}\n", "membership.max_invite_uses"},
		{"org too long", "name: alice\nmembership: {org: " + strings.Repeat("o", 65) + "}\n", "membership.org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
	c, err := Parse([]byte("name: alice\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Membership.InviteTTL() != DefaultMaxInviteTTL || c.Membership.InviteUses() != DefaultMaxInviteUses {
		t.Fatalf("defaults: %v, %d", c.Membership.InviteTTL(), c.Membership.InviteUses())
	}
}
