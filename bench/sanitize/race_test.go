//go:build race

package sanitizebench

// raceEnabled: the race detector slows regexp-bound code tenfold.
const raceEnabled = true
