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

func TestMembershipGovernor(t *testing.T) {
	t.Parallel()
	base := "name: alice\npeers:\n  - {name: bob, id: " + bob + ", addr: \"127.0.0.1:7421\"}\n"
	for _, ok := range []string{
		"membership: {governor: {group: board}}\n",
		"membership: {governor: {group: board, mode: bft, members: [alice, bob]}}\n",
		"membership: {governor: {group: board, mode: raft, members: [" + bob + "]}}\n",
	} {
		c, err := Parse([]byte(base + ok))
		if err != nil {
			t.Fatalf("%s: %v", ok, err)
		}
		if c.Membership.Governor == nil || c.Membership.Governor.Group != "board" {
			t.Fatalf("%s: %+v", ok, c.Membership.Governor)
		}
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"no group", "membership: {governor: {mode: bft, members: [bob]}}\n", "membership.governor.group"},
		{"bad group", "membership: {governor: {group: Board}}\n", "membership.governor.group"},
		{"mode without members", "membership: {governor: {group: board, mode: bft}}\n", "membership.governor"},
		{"members without mode", "membership: {governor: {group: board, members: [bob]}}\n", "membership.governor"},
		{"bad mode", "membership: {governor: {group: board, mode: paxos, members: [bob]}}\n", "membership.governor.mode"},
		{"unknown member", "membership: {governor: {group: board, mode: bft, members: [carol]}}\n", "membership.governor.members[0]"},
		{"member twice", "membership: {governor: {group: board, mode: bft, members: [bob, bob]}}\n", "membership.governor.members[1]"},
		{"unknown key", "membership: {governor: {group: board, quorum: 1}}\n", "quorum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(base + tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}
