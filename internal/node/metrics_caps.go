package node

import "github.com/treaty-dev/treaty/internal/metrics"

// capLabel is the metrics label of an inbound call's capability: its name
// when this node has it, else metrics.Other. A peer chooses the name it
// calls, and label values are admitted for the life of the process, so
// made-up names would otherwise take every slot from the real ones.
func (n *Node) capLabel(capName string) string {
	if capName == auditCapability || capName == capsCapability {
		return capName
	}
	if _, ok := n.state.Load().caps[capName]; ok {
		return capName
	}
	return metrics.Other
}
