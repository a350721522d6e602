//go:build race

package sanitize

// raceEnabled reports whether the race detector is on; it slows gitleaks'
// regexes tenfold or more, so corpus-wide tests use a smaller sample under it.
const raceEnabled = true
