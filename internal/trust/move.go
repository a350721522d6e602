package trust

// Move hands everything known about peer from to peer to, for a key rotation:
// the rotated key keeps its score, history, floor and ceiling. A state already
// held for to is replaced. Moving an unknown peer does nothing.
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
	b.peers[to] = st
	delete(b.peers, from)
	b.seq++
	b.mu.Unlock()
	return b.flush()
}
