package fsm

import "fmt"

// Option configures a Machine at New or Restore. Options are local to the
// replica: they are not part of the state, its snapshot or its digest.
type Option func(*options)

type options struct {
	trustLeaderSig bool
}

// SignaturesVerifiedByLeader lets Apply skip the proposer signature check on
// entries whose engine marks them Entry.LeaderVerified: the leader that
// appended such an entry verified the signature before proposing it. Only a
// Raft group may use it (members crash but do not lie, so every member can
// rely on the leader's check); New and Restore refuse it for a BFT group,
// where a lying leader could mark a forged request. Every other check
// (group and epoch, membership, sequence number) stays in Apply.
func SignaturesVerifiedByLeader() Option {
	return func(o *options) { o.trustLeaderSig = true }
}

func (m *Machine) setOptions(opts []Option) error {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.trustLeaderSig && m.group.Mode != ModeRaft {
		return fmt.Errorf("fsm: SignaturesVerifiedByLeader: group %s is %s; only a %s group may trust its leader's signature check", m.group.Name, m.group.Mode, ModeRaft)
	}
	m.opts = o
	return nil
}

// RestoreWith is Restore with options, which a snapshot does not carry.
func RestoreWith(b []byte, opts ...Option) (*Machine, error) {
	m, err := Restore(b)
	if err != nil {
		return nil, err
	}
	if err := m.setOptions(opts); err != nil {
		return nil, err
	}
	return m, nil
}
