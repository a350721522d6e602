//go:build !race

package membership

import "time"

// handshakeTimeout is the test transports' HandshakeTimeout.
const handshakeTimeout = 5 * time.Second

const raceEnabled = false
