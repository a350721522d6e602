//go:build race

package transport

// raceEnabled: the race detector slows CPU-bound code (the handshakes' crypto)
// by 5-20x, so latency bounds are reported but not asserted under it.
const raceEnabled = true
