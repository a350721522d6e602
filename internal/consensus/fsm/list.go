package fsm

import "slices"

// Motions returns copies of the motions the state keeps (open and recently
// decided), in ID order.
func (m *Machine) Motions() []Motion {
	ids := make([]uint64, 0, len(m.motions))
	for id := range m.motions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]Motion, 0, len(ids))
	for _, id := range ids {
		c := *m.motions[id]
		c.Yes, c.No = slices.Clone(c.Yes), slices.Clone(c.No)
		out = append(out, c)
	}
	return out
}
