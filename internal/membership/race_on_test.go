//go:build race

package membership

// raceEnabled slows test timings: the race detector makes the handshakes'
// crypto 5-20x slower.
const raceEnabled = true
