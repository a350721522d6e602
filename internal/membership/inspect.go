package membership

import (
	"net"

	"github.com/treaty-dev/treaty/internal/identity"
)

// inspectPacket checks the records and statements in a packet from peer
// before memberlist sees it; false drops the packet.
func (m *Membership) inspectPacket(peer identity.PublicKey, pkt []byte) bool { return true }

// inspectStream checks the push-pull state read from a stream with peer.
func (m *Membership) inspectStream(peer identity.PublicKey, c net.Conn) net.Conn { return c }
