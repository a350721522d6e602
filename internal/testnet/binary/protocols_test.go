package binary

import (
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/testnet"
)

// TestMixedFederationProtocols: a node that speaks treaty/1 only
// (federation_protocol: treaty/1, as an older node) and two that prefer
// treaty/2 call each other both ways, and every
// audit log verifies.
func TestMixedFederationProtocols(t *testing.T) {
	t.Parallel()
	bin := treatyBin(t)
	old, a, b := testnet.Init(t, bin, "old"), testnet.Init(t, bin, "a"), testnet.Init(t, bin, "b")
	appendConfig(t, old, "federation_protocol: treaty/1\n")
	nodes := []*testnet.Node{old, a, b}
	for i, x := range nodes {
		for _, y := range nodes[i+1:] {
			testnet.Federate(t, x, y)
		}
	}
	for _, n := range nodes {
		n.Must(t, "expose", "echo", "--exec", testnet.WriteScript(t, `cat`))
		for _, m := range nodes {
			if m != n {
				n.Must(t, "grant", m.Name, "echo")
			}
		}
		n.Start(t)
	}
	for _, from := range nodes {
		for _, to := range nodes {
			if from == to {
				continue
			}
			for i := range 3 { // the first call dials; the next ones reuse
				out := from.Must(t, "call", to.Name, "echo", `{"from":"`+from.Name+`"}`)
				if !strings.Contains(out, `"from":"`+from.Name+`"`) {
					t.Fatalf("%s -> %s call %d: %q", from.Name, to.Name, i, out)
				}
			}
		}
	}
	for _, n := range nodes {
		n.Must(t, "audit", "verify")
	}
}
