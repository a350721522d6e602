package sanitize

import "sync"

// defaultGitleaks is the default rule set, loaded once per process: loading
// compiles hundreds of regexes (seconds, more under the race detector), and
// the result is only ever read, so every Sanitizer with the default rules
// shares it.
var defaultGitleaks = sync.OnceValues(func() (gitleaksSet, error) {
	rules, keywords, err := loadGitleaks(DefaultRulesTOML())
	return gitleaksSet{rules, keywords}, err
})

type gitleaksSet struct {
	rules    []glRule
	keywords map[string][]glHook
}
