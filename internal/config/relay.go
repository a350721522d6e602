package config

import "fmt"

// MaxRelayVia bounds relay.via: each entry holds one outbound connection open.
const MaxRelayVia = 8

// Relay says whether this node relays for its peers and through which peers'
// relays it can be reached (docs/membership.md, "Relays"). Read at start.
type Relay struct {
	// Serve offers relaying (ALPN treaty-relay/1) to the keys in the peer
	// book: they may register here and be called through here.
	Serve bool `yaml:"serve,omitempty"`
	// Via names peers (nickname or did:key) whose relays this node registers
	// with over outbound connections, so that callers can reach it through
	// them without an inbound connection to this node.
	Via []string `yaml:"via,omitempty"`
}

// validateRelays checks relay.via and peers[].via against the peer book.
func (c *Config) validateRelays() error {
	if len(c.Relay.Via) > MaxRelayVia {
		return fmt.Errorf("config: relay.via has %d entries; at most %d", len(c.Relay.Via), MaxRelayVia)
	}
	seen := map[string]bool{}
	for i, ref := range c.Relay.Via {
		p, ok := c.relayPeer(ref)
		if !ok {
			return fmt.Errorf("config: relay.via[%d] %q is not a peer with an addr", i, ref)
		}
		if seen[p.ID] {
			return fmt.Errorf("config: relay.via[%d] %q is listed twice", i, ref)
		}
		seen[p.ID] = true
	}
	for i, p := range c.Peers {
		if p.Via == "" {
			continue
		}
		r, ok := c.relayPeer(p.Via)
		if !ok || r.ID == p.ID {
			return fmt.Errorf("config: peers[%d].via %q is not another peer with an addr", i, p.Via)
		}
	}
	return nil
}

// relayPeer finds a peer by nickname or did:key that is reached directly.
func (c *Config) relayPeer(ref string) (Peer, bool) {
	for _, p := range c.Peers {
		if (p.Name == ref || p.ID == ref) && p.Addr != "" && p.Via == "" {
			return p, true
		}
	}
	return Peer{}, false
}
