package membership

// This node's own suspicions. memberlist has no event for a member it starts
// to suspect (only for alive, dead and left), and reports of suspicion from
// others (inspect.go) never arrive when the suspect is the only other member,
// or when this node is the first to notice. But memberlist broadcasts a
// suspect message the moment its own state turns a member suspect (a probe
// failed, or it accepted another member's report), so the suspect messages in
// the packets it sends are its local view. Reading them at our end keeps
// Member.State in step with this node's probing without reaching into
// memberlist's locked node table.

// noteOutbound reads the suspect messages in a packet memberlist is about to
// send (gossipNet.outbound). It never changes or drops the packet.
func (m *Membership) noteOutbound(pkt []byte) { m.noteSuspicions(pkt, 0) }

func (m *Membership) noteSuspicions(b []byte, depth int) {
	if len(b) == 0 {
		return
	}
	switch b[0] {
	case mlHasCRC:
		if depth == 0 && len(b) >= 5 {
			m.noteSuspicions(b[5:], depth+1)
		}
	case mlCompound:
		if depth >= maxCompoundDepth {
			return
		}
		parts, err := splitCompound(b[1:])
		if err != nil {
			return
		}
		for _, p := range parts {
			m.noteSuspicions(p, depth+1)
		}
	case mlSuspect:
		var s mlSuspectMsg
		if err := decodeMsgpack(b[1:], &s); err == nil {
			m.suspected(s.Node, s.Incarnation)
		}
	}
}
