//go:build race

package membership

import "time"

// handshakeTimeout is the test transports' HandshakeTimeout.
const handshakeTimeout = 20 * time.Second

// raceEnabled slows test timings: the race detector makes the handshakes'
// crypto 5-20x slower.
const raceEnabled = true
