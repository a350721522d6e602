// Package policy decides, with Cedar, which peer may list or call which capability.
//
// It guarantees default deny: with no permit, every request is denied, including
// listing, so a peer sees only the capabilities granted to it. A policy whose
// condition cannot be evaluated never grants, and a forbid that cannot be
// evaluated denies (Cedar alone would skip it). The Cedar model is
//
//	principal  Peer::"did:key:z6Mk..."
//	action     Action::"call" | Action::"list"
//	resource   Capability::"<name>"
//	context    { trust: decimal, level: string, depth: long }
//
// so a hand-written policy in policy.cedar can say, for example,
//
//	permit (principal, action == Action::"call", resource == Capability::"search")
//	when { context.trust.greaterThanOrEqual(decimal("0.8")) };
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	cedar "github.com/cedar-policy/cedar-go"

	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/wire"
)

// FileName is the policy file inside a home directory.
const FileName = homedir.PolicyFile

// MaxFileBytes bounds policy.cedar.
const MaxFileBytes = 4 << 20

// Action is what a peer asks to do with a capability.
type Action string

const (
	ActionCall Action = "call"
	ActionList Action = "list"
)

// Context is the request context Cedar policies can test. Later stages add to it.
type Context struct {
	Trust float64 // [0,1]; the peer's current trust score
	Level string  // the peer's trust level name
	Depth int     // delegation depth of this call (0 = direct)
}

// Decision is the result of one authorization.
type Decision struct {
	Allowed bool
	Reasons []string // IDs of the policies that decided
	Errors  []string // policy evaluation errors: they never grant, and one in a forbid denies
}

// Engine evaluates a parsed policy set. Its policies are immutable and it is
// safe for concurrent use; reloading builds a new Engine, so nothing an Engine
// has decided outlives a reload.
type Engine struct {
	ps *cedar.PolicySet

	// memo keeps recent decisions. Cedar evaluation here reads nothing but
	// the request (the entity store is empty and Cedar has no clock), so the
	// same request always gets the same decision; a call's request repeats
	// for as long as the caller's trust score is unchanged to Cedar's four
	// decimal places.
	mu   sync.RWMutex
	memo map[request]Decision
}

// request is one authorization's inputs, with trust as Cedar sees it.
type request struct {
	peer       identity.PublicKey
	action     Action
	capability string
	trust      cedar.Decimal
	level      string
	depth      int
}

// maxMemo bounds the decisions an Engine keeps: it forgets them all when
// full, so a peer asking for many names costs no more than evaluation.
const maxMemo = 4096

// Parse builds an Engine from policy.cedar text.
func Parse(name string, src []byte) (*Engine, error) {
	if len(src) > MaxFileBytes {
		return nil, fmt.Errorf("policy: %s is %d bytes, limit %d", name, len(src), MaxFileBytes)
	}
	ps, err := cedar.NewPolicySetFromBytes(name, src)
	if err != nil {
		// cedar-go reports positions in "<input>"; say which file.
		return nil, fmt.Errorf("policy: %s: %s", name, strings.ReplaceAll(err.Error(), "<input>", filepath.Base(name)))
	}
	return &Engine{ps: ps, memo: map[request]Decision{}}, nil
}

// Load reads HOME/policy.cedar; a missing file is an empty policy (deny all).
func Load(home string) (*Engine, error) {
	b, err := ReadFile(home)
	if err != nil {
		return nil, err
	}
	return Parse(filepath.Join(home, FileName), b)
}

// Authorize decides whether peer may perform action on capability.
func (e *Engine) Authorize(peer identity.PublicKey, action Action, capability string, c Context) Decision {
	key, err := requestOf(peer, action, capability, c)
	if err != nil {
		return Decision{Errors: []string{err.Error()}}
	}
	e.mu.RLock()
	d, ok := e.memo[key]
	e.mu.RUnlock()
	if ok {
		// The caller owns what it is given.
		d.Reasons, d.Errors = slices.Clone(d.Reasons), slices.Clone(d.Errors)
		return d
	}
	d = e.evaluate(key)
	e.mu.Lock()
	if len(e.memo) >= maxMemo {
		clear(e.memo)
	}
	e.memo[key] = Decision{Allowed: d.Allowed, Reasons: slices.Clone(d.Reasons), Errors: slices.Clone(d.Errors)}
	e.mu.Unlock()
	return d
}

// requestOf is the request Cedar is asked, trust clamped to [0, 1].
func requestOf(peer identity.PublicKey, action Action, capability string, c Context) (request, error) {
	trust, err := cedar.NewDecimalFromFloat(clamp01(c.Trust))
	return request{peer: peer, action: action, capability: capability, trust: trust, level: c.Level, depth: c.Depth}, err
}

// evaluate runs the Cedar policies on one request.
func (e *Engine) evaluate(r request) Decision {
	req := cedar.Request{
		Principal: cedar.NewEntityUID("Peer", cedar.String(r.peer.String())),
		Action:    cedar.NewEntityUID("Action", cedar.String(r.action)),
		Resource:  cedar.NewEntityUID("Capability", cedar.String(r.capability)),
		Context: cedar.NewRecord(cedar.RecordMap{
			"trust": r.trust,
			"level": cedar.String(r.level),
			"depth": cedar.Long(r.depth),
		}),
	}
	dec, diag := e.ps.IsAuthorized(cedar.EntityMap{}, req)
	d := Decision{Allowed: dec == cedar.Allow}
	for _, r := range diag.Reasons {
		d.Reasons = append(d.Reasons, string(r.PolicyID))
	}
	for _, er := range diag.Errors {
		d.Errors = append(d.Errors, er.String())
		// Cedar skips a policy whose condition errors. For a forbid that
		// would fail open (a missing attribute lifting a ban), so a forbid
		// that could not be evaluated denies, as if it had applied.
		if p := e.ps.Get(er.PolicyID); p == nil || p.Effect() == cedar.Forbid {
			d.Allowed = false
		}
	}
	return d
}

// Visible filters caps to those peer may list.
func (e *Engine) Visible(peer identity.PublicKey, caps []string, c Context) []string {
	var out []string
	for _, cp := range caps {
		if e.Authorize(peer, ActionList, cp, c).Allowed {
			out = append(out, cp)
		}
	}
	return out
}

func clamp01(f float64) float64 {
	switch {
	case f < 0 || f != f:
		return 0
	case f > 1:
		return 1
	}
	return f
}

// grantTag marks the policies that Grant writes, so Revoke can find them again.
func grantTag(peer identity.PublicKey, capability string) string {
	return fmt.Sprintf("@grant(%q)", peer.String()+"/"+capability)
}

// grantText is the exact two lines Grant appends.
func grantText(peer identity.PublicKey, capability string) string {
	return fmt.Sprintf("%s\npermit (principal == Peer::%q, action in [Action::\"call\", Action::\"list\"], resource == Capability::%q);\n",
		grantTag(peer, capability), peer.String(), capability)
}

// AddGrant returns src with a permit for peer to list and call capability
// appended, and whether it changed (false when the grant is already there). The
// result is parsed, so a caller writes only a valid policy. The caller reads and
// writes policy.cedar under the home's edit lock (package homedir).
func AddGrant(src []byte, peer identity.PublicKey, capability string) ([]byte, bool, error) {
	if !wire.ValidCapabilityName(capability) {
		return nil, false, fmt.Errorf("policy: invalid capability name %q", capability)
	}
	if bytes.Contains(src, []byte(grantTag(peer, capability)+"\n")) {
		return src, false, nil
	}
	out := append([]byte(nil), src...)
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, '\n')
	}
	out = append(out, grantText(peer, capability)...)
	if _, err := Parse(FileName, out); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// RemoveGrant returns src without the permit AddGrant wrote for peer and
// capability, and whether it changed. Hand-written policies are left alone: use
// Engine.Authorize afterwards to see whether another policy still allows access.
func RemoveGrant(src []byte, peer identity.PublicKey, capability string) ([]byte, bool, error) {
	text := grantText(peer, capability)
	if !strings.Contains(string(src), text) {
		return src, false, nil
	}
	out := []byte(strings.ReplaceAll(string(src), text, ""))
	if _, err := Parse(FileName, out); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// ReadFile reads HOME/policy.cedar; a missing file is empty (deny all).
func ReadFile(home string) ([]byte, error) {
	path := filepath.Join(home, FileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("policy: %s is %d bytes, limit %d", path, len(b), MaxFileBytes)
	}
	return b, nil
}
