package trust

import "time"

// Move hands everything known about peer from to peer to, for a key rotation:
// the rotated key keeps its score, history, floor and ceiling. Onto a key that
// already has a state it only adds: that key's quarantine, bad evidence and
// ceiling stay, so a peer holding two keys cannot wash one clean by rotating
// the other onto it. Moving an unknown peer does nothing.
func (b *Book) Move(from, to string) error {
	if err := checkPeer(from); err != nil {
		return err
	}
	if err := checkPeer(to); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	st, ok := b.peers[from]
	if !ok || from == to {
		b.mu.Unlock()
		return nil
	}
	if old, ok := b.peers[to]; ok {
		moved := st.onto(&b.m, *old, b.now())
		st = &moved
	}
	b.peers[to] = st
	delete(b.peers, from)
	b.seq++
	b.mu.Unlock()
	return b.flush()
}

// onto returns s as the state of a key that already had old: s's good
// evidence, history and floor, with old's bad evidence added, old's quarantine
// and the lower of the two ceilings, and the lower of the two levels as the
// base of the new level's hysteresis.
func (s State) onto(m *model, old State, now time.Time) State {
	s.advance(m, now)
	old.advance(m, now)
	s.bad += old.bad
	s.natural = hysteresis(m.t, min(s.natural, old.natural), m.score(s.good, s.bad))
	if old.quarantined && !s.quarantined {
		s.quarantined, s.cause = true, old.cause
	}
	if old.hasCeiling && (!s.hasCeiling || old.ceiling < s.ceiling) {
		s.ceiling, s.hasCeiling = old.ceiling, true
		if s.hasFloor && s.floor > s.ceiling {
			s.floor = s.ceiling
		}
	}
	return s
}
