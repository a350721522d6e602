package config

import (
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

func TestGroupsValidateAndResolve(t *testing.T) {
	const globex = "did:key:z6MkvUdw8DwPZFzm9ihkPNtdYbr7iF2BKb49fdEGHTifzdpe"
	const other = "did:key:z6MknmsX2VJjsAmkeQ65xWp63ij9JjG3YcxfcF2jLjzPrNcd"
	base := "name: acme\npeers:\n  - {name: globex, id: " + globex + ", addr: 127.0.0.1:1}\n"
	for _, tc := range []struct{ yaml, want string }{
		{"groups:\n  - {name: reviews, mode: bft, members: [acme, globex, " + other + "]}\n", ""},
		{"groups:\n  - {name: Reviews, mode: bft, members: [acme]}\n", "groups[0].name"},
		{"groups:\n  - {name: r, mode: paxos, members: [acme]}\n", "groups[0].mode"},
		{"groups:\n  - {name: r, mode: raft, members: []}\n", "groups[0].members"},
		{"groups:\n  - {name: r, mode: raft, members: [acme, nobody]}\n", "groups[0].members[1]"},
		{"groups:\n  - {name: r, mode: raft, members: [acme, acme]}\n", "listed twice"},
		{"groups:\n  - {name: r, mode: raft, members: [acme]}\n  - {name: r, mode: bft, members: [acme]}\n", "declared twice"},
		{"groups:\n  - {name: reviews, mode: bft, members: [acme, globex, " + other + "], nonce: 0123456789abcdef0123456789abcdef}\n", ""},
		{"groups:\n  - {name: r, mode: raft, members: [acme], nonce: 0123}\n", "groups[0].nonce"},
		{"groups:\n  - {name: r, mode: raft, members: [acme], nonce: 0123456789abcdef0123456789abcdeg}\n", "groups[0].nonce"},
		{"groups:\n  - {name: r, mode: raft, members: [acme], nonce: 00000000000000000000000000000000}\n", "groups[0].nonce"},
		{"membership:\n  governor: {group: board, nonce: 0123456789abcdef0123456789abcdef}\n", "governor.nonce goes with mode and members"},
		{"membership:\n  governor: {group: board, mode: bft, members: [globex], nonce: zz}\n", "governor.nonce"},
	} {
		y := base + tc.yaml
		c, err := Parse([]byte(y))
		if tc.want == "" {
			if err != nil {
				t.Fatalf("%s: %v", tc.yaml, err)
			}
			self, _ := identity.ParseDID(other)
			keys, err := c.GroupMembers(c.Groups[0], self)
			if err != nil || len(keys) != 3 || keys[0] != self || keys[1].String() != globex {
				t.Fatalf("resolve: %v %v", keys, err)
			}
			if n := GroupNonce(c.Groups[0].Nonce); n.IsZero() != (c.Groups[0].Nonce == "") {
				t.Fatalf("nonce %q read as %v", c.Groups[0].Nonce, n)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to name %s", tc.yaml, err, tc.want)
		}
	}
}
