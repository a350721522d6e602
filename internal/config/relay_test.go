package config_test

import (
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
)

func TestRelayKeys(t *testing.T) {
	const hub = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	const laptop = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
	book := "peers:\n  - name: hub\n    id: " + hub + "\n    addr: 127.0.0.1:7420\n"
	ok := []string{
		"name: a\nrelay:\n  serve: true\n",
		"name: a\n" + book + "relay:\n  via: [hub]\n",
		"name: a\n" + book + "relay:\n  via: [" + hub + "]\n",
		"name: a\n" + book + "  - name: laptop\n    id: " + laptop + "\n    via: hub\n",
		"name: a\nrelay:\n  serve: true\n  max_registrations: 16\n  max_circuits: 32\n  max_circuits_per_peer: 4\n" +
			"  max_circuit_bytes: 1048576\n  bytes_per_second: 65536\n  max_circuit_duration: 10m\n",
	}
	for _, y := range ok {
		c, err := config.Parse([]byte(y))
		if err != nil {
			t.Fatalf("%s: %v", y, err)
		}
		if strings.Contains(y, "via: hub") && c.Peers[1].Via != "hub" {
			t.Fatalf("peers[1].via = %q", c.Peers[1].Via)
		}
	}
	bad := map[string]string{
		"name: a\nrelay:\n  via: [hub]\n":                                                  "relay.via[0]",
		"name: a\n" + book + "relay:\n  via: [hub, hub]\n":                                 "listed twice",
		"name: a\n" + book + "  - name: laptop\n    id: " + laptop + "\n":                  "peers[1].addr",
		"name: a\n" + book + "  - name: laptop\n    id: " + laptop + "\n    via: nobody\n": "peers[1].via",
		"name: a\n" + book + "  - name: laptop\n    id: " + laptop + "\n    via: laptop\n": "peers[1].via",
		// A relay must be dialed directly: no chains of relays.
		"name: a\n" + book + "  - name: laptop\n    id: " + laptop + "\n    via: hub\nrelay:\n  via: [laptop]\n": "relay.via[0]",
		"name: a\n" + book + "relay:\n  via: [a, b, c, d, e, f, g, h, i]\n":                                      "at most 8",
		"name: a\nrelay:\n  max_registrations: 5000\n":                                                           "relay.max_registrations",
		"name: a\nrelay:\n  max_circuits: -1\n":                                                                  "relay.max_circuits",
		"name: a\nrelay:\n  max_circuits: 4\n  max_circuits_per_peer: 5\n":                                       "relay.max_circuits_per_peer",
		"name: a\nrelay:\n  max_circuits_per_peer: 300\n":                                                        "relay.max_circuits_per_peer",
		"name: a\nrelay:\n  max_circuit_bytes: 1024\n":                                                           "relay.max_circuit_bytes",
		"name: a\nrelay:\n  bytes_per_second: 2147483648\n":                                                      "relay.bytes_per_second",
		"name: a\nrelay:\n  max_circuit_duration: 48h\n":                                                         "relay.max_circuit_duration",
	}
	for y, want := range bad {
		if _, err := config.Parse([]byte(y)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want one naming %q", y, err, want)
		}
	}
}
