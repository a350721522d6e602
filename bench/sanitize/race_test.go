//go:build race

package sanitizebench

// raceEnabled reports whether the race detector is on. It slows the regex-heavy
// whole-corpus scans tenfold or more, so the measurement with the gitleaks
// baseline (minutes) is skipped under it; TestCorpusTargets still runs.
const raceEnabled = true
