package config

import (
	"strings"
	"testing"
)

// TestFederationProtocol: empty, treaty/2 and treaty/1 are accepted; any
// other value is refused naming the key.
func TestFederationProtocol(t *testing.T) {
	for _, p := range []string{"", "treaty/2", "treaty/1"} {
		c := &Config{Name: "n", Listen: DefaultListen, FederationProtocol: p}
		if err := c.Validate(); err != nil {
			t.Errorf("%q refused: %v", p, err)
		}
	}
	for _, p := range []string{"h2", "treaty/3", "TREATY/1", " treaty/1"} {
		c := &Config{Name: "n", Listen: DefaultListen, FederationProtocol: p}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "federation_protocol") {
			t.Errorf("%q: %v, want a refusal naming federation_protocol", p, err)
		}
	}
}
