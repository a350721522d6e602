package consensus

import "github.com/treaty-dev/treaty/internal/identity"

// The node's seams a group hands its engine besides OnApply and OnEvidence.

// admitRequest charges a request member asks this node to order against
// member's budgets (ManagerConfig.AdmitRequest): the byte meter (meter.go) bounds
// what a member sends, this bounds how many proposals it makes.
func (gr *group) admitRequest(member identity.PublicKey, size int) (func(), error) {
	if f := gr.m.cfg.AdmitRequest; f != nil {
		return f(gr.current(), member, size)
	}
	return nil, nil
}

// flushApplied passes the engine's flush to the node (ManagerConfig.FlushApplied).
func (gr *group) flushApplied() (uint64, func() error) {
	if f := gr.m.cfg.FlushApplied; f != nil {
		return f(gr.name)
	}
	return 0, nil
}
