package config

import (
	"fmt"
	"time"
)

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

	// Budgets of relay.serve (transport.RelayConfig; zero: the default).
	// MaxRegistrations bounds the peers registered here at once. 0: 64; [1, 4096].
	MaxRegistrations int `yaml:"max_registrations,omitempty"`
	// MaxCircuits bounds the circuits open at once. 0: 256; [1, 65536].
	MaxCircuits int `yaml:"max_circuits,omitempty"`
	// MaxCircuitsPerPeer bounds the circuits open at once per caller and per
	// callee. 0: 8; [1, max_circuits].
	MaxCircuitsPerPeer int `yaml:"max_circuits_per_peer,omitempty"`
	// MaxCircuitBytes closes a circuit after it carried this many bytes,
	// both directions. 0: 64 MiB; [64 KiB, 1 TiB].
	MaxCircuitBytes int64 `yaml:"max_circuit_bytes,omitempty"`
	// BytesPerSecond paces each direction of each circuit (burst: one
	// second's worth). 0: 8 MiB/s; [1 KiB, 1 GiB].
	BytesPerSecond int64 `yaml:"bytes_per_second,omitempty"`
	// MaxCircuitDuration closes a circuit after this long. 0: 1h; [1s, 24h].
	MaxCircuitDuration Duration `yaml:"max_circuit_duration,omitempty"`
}

// validateBudgets checks the relay budgets against the bounds
// transport.NewRelay enforces, naming the key.
func (r Relay) validateBudgets() error {
	ints := []struct {
		key      string
		v        int64
		min, max int64
	}{
		{"max_registrations", int64(r.MaxRegistrations), 1, 4096},
		{"max_circuits", int64(r.MaxCircuits), 1, 65536},
		{"max_circuits_per_peer", int64(r.MaxCircuitsPerPeer), 1, 65536},
		{"max_circuit_bytes", r.MaxCircuitBytes, 64 << 10, 1 << 40},
		{"bytes_per_second", r.BytesPerSecond, 1 << 10, 1 << 30},
	}
	for _, f := range ints {
		if f.v != 0 && (f.v < f.min || f.v > f.max) {
			return fmt.Errorf("config: relay.%s %d outside [%d, %d]", f.key, f.v, f.min, f.max)
		}
	}
	circuits := r.MaxCircuits
	if circuits == 0 {
		circuits = 256
	}
	if r.MaxCircuitsPerPeer > circuits {
		return fmt.Errorf("config: relay.max_circuits_per_peer %d is more than relay.max_circuits (%d)", r.MaxCircuitsPerPeer, circuits)
	}
	if d := r.MaxCircuitDuration.D(); d != 0 && (d < time.Second || d > 24*time.Hour) {
		return fmt.Errorf("config: relay.max_circuit_duration %v outside [1s, 24h]", d)
	}
	return nil
}

// validateRelays checks relay.via and peers[].via against the peer book.
func (c *Config) validateRelays() error {
	if err := c.Relay.validateBudgets(); err != nil {
		return err
	}
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
