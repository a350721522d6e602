//go:build !race

package sanitizebench

const raceEnabled = false
