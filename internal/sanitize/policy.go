package sanitize

import (
	"fmt"
	"slices"
)

// Action is what the sanitizer does with a finding. Strength order, used for a
// report's strongest action: allow < redact < pseudonymize < block.
type Action string

const (
	ActionAllow        Action = "allow"        // send the value unchanged
	ActionRedact       Action = "redact"       // replace it by <redacted:CATEGORY>
	ActionPseudonymize Action = "pseudonymize" // replace it by a keyed per-peer token; Restore undoes it
	ActionBlock        Action = "block"        // send nothing; Apply returns *BlockedError

	// ActionPass is never a policy action: it is Result.Action and
	// Report.Strongest when nothing was changed (no findings, or all allowed),
	// as the `treaty scan --json` contract spells it.
	ActionPass Action = "pass"
)

func (a Action) strength() int {
	switch a {
	case ActionPass, ActionAllow:
		return 0
	case ActionRedact:
		return 1
	case ActionPseudonymize:
		return 2
	case ActionBlock:
		return 3
	}
	return 3 // unknown actions are as strong as block: fail closed
}

func (a Action) valid() bool {
	switch a {
	case ActionAllow, ActionRedact, ActionPseudonymize, ActionBlock:
		return true
	}
	return false
}

// Policy chooses an action per category for one peer (and capability). The
// zero Policy is DefaultPolicy: an empty Secrets or PII means its default.
type Policy struct {
	Secrets    Action              `yaml:"secrets,omitempty" json:"secrets,omitempty"`       // "": block
	PII        Action              `yaml:"pii,omitempty" json:"pii,omitempty"`               // "": pseudonymize
	Categories map[Category]Action `yaml:"categories,omitempty" json:"categories,omitempty"` // overrides per category
}

// DefaultPolicy blocks secrets and pseudonymizes PII.
func DefaultPolicy() Policy {
	return Policy{Secrets: ActionBlock, PII: ActionPseudonymize}
}

// Validate reports the first unknown action or category, naming it and the
// allowed values.
func (p Policy) Validate() error {
	allowed := "allow, redact, pseudonymize, block"
	if p.Secrets != "" && !p.Secrets.valid() {
		return fmt.Errorf("sanitize: Policy.Secrets %q is not one of %s", p.Secrets, allowed)
	}
	if p.PII != "" && !p.PII.valid() {
		return fmt.Errorf("sanitize: Policy.PII %q is not one of %s", p.PII, allowed)
	}
	keys := make([]Category, 0, len(p.Categories))
	for c := range p.Categories {
		keys = append(keys, c)
	}
	slices.Sort(keys) // report the same error every time
	for _, c := range keys {
		if !c.Known() {
			return fmt.Errorf("sanitize: Policy.Categories has unknown category %q", c)
		}
		if a := p.Categories[c]; !a.valid() {
			return fmt.Errorf("sanitize: Policy.Categories[%s] %q is not one of %s", c, a, allowed)
		}
	}
	return nil
}

// ActionFor is the action p takes on category c. An invalid action (a policy
// that skipped Validate) counts as block.
func (p Policy) ActionFor(c Category) Action {
	if c == CategoryCanary {
		return ActionBlock // the node's own secrets: no policy sends them
	}
	a, ok := p.Categories[c]
	if !ok {
		if c.Class() == ClassPII {
			a = p.PII
			if a == "" {
				a = ActionPseudonymize
			}
		} else {
			a = p.Secrets
			if a == "" {
				a = ActionBlock
			}
		}
	}
	if !a.valid() {
		return ActionBlock
	}
	return a
}
