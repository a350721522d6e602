package node

import "github.com/treaty-dev/treaty/internal/identity"

// Unwitnessed is how many checkpoint notes in a row from peer the audit
// witness could not judge for want of a proof (0 once one is judged; it
// alerts at audit.MaxUnwitnessed). Shown by metrics and the local API.
func (n *Node) Unwitnessed(peer identity.PublicKey) int {
	return n.audit.Witness().Unwitnessed(peer)
}
