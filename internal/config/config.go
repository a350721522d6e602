// Package config reads, validates and atomically writes a node's treaty.yaml.
//
// The file is the single source of truth that the CLI edits and a running node
// reloads: every field is validated on load with an error naming the field, and
// unknown fields are rejected so a typo never silently does nothing.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/screen"
	"github.com/treaty-dev/treaty/internal/trust"
	"github.com/treaty-dev/treaty/internal/wire"
)

// FileName is the config file inside a home directory.
const FileName = homedir.ConfigFile

// MaxFileBytes bounds treaty.yaml; a larger file is refused rather than parsed.
const MaxFileBytes = 4 << 20

// Config is the content of treaty.yaml.
type Config struct {
	Name   string `yaml:"name"`   // this node's nickname; display only
	Listen string `yaml:"listen"` // host:port of the federation port; loopback by default
	// FederationProtocol: "" (default) serves and offers treaty/2, the lean
	// framing, and treaty/1 (HTTP/2) for peers without it; "treaty/1" speaks
	// HTTP/2 only. Read at start.
	FederationProtocol string        `yaml:"federation_protocol,omitempty"`
	Peers              []Peer        `yaml:"peers,omitempty"`        // the peer book
	Capabilities       []Capability  `yaml:"capabilities,omitempty"` // what this node can expose (grants decide to whom)
	Limits             Limits        `yaml:"limits,omitempty"`       // protocol limits
	Sanitize           DataPolicy    `yaml:"sanitize,omitempty"`     // outbound: what leaves for each peer (internal/sanitize)
	Screen             ScreenPolicy  `yaml:"screen,omitempty"`       // inbound: how content from each peer is screened (internal/screen)
	Audit              AuditConfig   `yaml:"audit,omitempty"`        // what the audit log keeps (internal/audit)
	Trust              trust.Config  `yaml:"trust,omitempty"`        // behavioural trust model (internal/trust)
	Budget             budget.Config `yaml:"budget,omitempty"`       // per-peer rate, concurrency, bytes, cost; breaker; depth. Rule peers are did:keys or "*"
	Debug              Debug         `yaml:"debug,omitempty"`        // operator diagnostics; all off by default
	Groups             []Group       `yaml:"groups,omitempty"`       // consensus groups this node belongs to (groups.go)
	Metrics            Metrics       `yaml:"metrics,omitempty"`      // the Prometheus endpoint; off by default (metrics.go)
	Membership         Membership    `yaml:"membership,omitempty"`   // invites, rotation, revocation (membership.go)
	Relay              Relay         `yaml:"relay,omitempty"`        // relaying for peers, reached through relays (relay.go)
}

// Debug switches on diagnostics for the node's operator.
type Debug struct {
	// Pprof serves net/http/pprof under /debug/pprof/ on the local socket
	// (mode 0600: the node's user only). Profiles show call timing and
	// memory, so it is off unless asked for.
	Pprof bool `yaml:"pprof,omitempty"`
}

// Peer is an entry of the peer book. The key is the identity; Name is a local nickname.
type Peer struct {
	Name string `yaml:"name"`
	ID   string `yaml:"id"`   // did:key
	Addr string `yaml:"addr"` // host:port of its federation port; may be empty when Via is set
	// Via names the peer (nickname or did:key) whose relay this peer is
	// dialed through; empty: dialed directly at Addr.
	Via string `yaml:"via,omitempty"`
	// Source says how the entry got here: "" or "operator" (peer add),
	// "invite", "gossip" or "decision" (see PeerSources).
	Source string `yaml:"source,omitempty"`
}

// Capability is something this node can run for a peer.
type Capability struct {
	Name         string         `yaml:"name"`
	Description  string         `yaml:"description,omitempty"`
	InputSchema  map[string]any `yaml:"input_schema,omitempty"`
	OutputSchema map[string]any `yaml:"output_schema,omitempty"`
	Stream       bool           `yaml:"stream,omitempty"` // results are a stream of JSON events
	Exec         *ExecBackend   `yaml:"exec,omitempty"`
	HTTP         *HTTPBackend   `yaml:"http,omitempty"`
	MCP          *MCPBackend    `yaml:"mcp,omitempty"`
	A2A          *A2ABackend    `yaml:"a2a,omitempty"`
	Timeout      Duration       `yaml:"timeout,omitempty"` // zero: DefaultBackendTimeout
}

// AuditConfig chooses what the audit log keeps of each action.
type AuditConfig struct {
	// Content is "full" (the default: the sanitized content, up to 64 KiB) or
	// "digest" (only its SHA-256).
	Content string `yaml:"content,omitempty"`
	// Capabilities overrides Content per capability name.
	Capabilities map[string]string `yaml:"capabilities,omitempty"`
	// Retention drops the content of entries older than this; their leaf hashes
	// stay, so proofs and verify keep working, and a signed pruning record says
	// up to which entry content was dropped. Zero keeps content forever.
	Retention Duration `yaml:"retention,omitempty"`
	// RowRetention deletes whole entries older than this, keeping a signed
	// pruning record (range, time, the tree hashes at the cut) so the rest of
	// the log still verifies. Zero keeps entries forever; else at least 1h.
	RowRetention Duration `yaml:"row_retention,omitempty"`
	// MaxBytes caps audit.db (pages in use plus its WAL): beyond it new calls
	// are refused at stage audit until pruning frees space. Zero: no cap; else
	// at least 1 MiB.
	MaxBytes int64 `yaml:"max_bytes,omitempty"`
	// MinFreeBytes is the free space kept on audit.db's filesystem: below it new
	// calls are refused at stage audit until space returns. Zero: the smaller
	// of 1 GiB and 5% of the filesystem; -1: not checked.
	MinFreeBytes int64 `yaml:"min_free_bytes,omitempty"`
	// WitnessInterval is how often each peer is asked for its latest signed
	// checkpoint (peers also show one on every call). Zero: 30s.
	WitnessInterval Duration `yaml:"witness_interval,omitempty"`
}

// AuditContent is "full" or "digest" for capability.
func (c *Config) AuditContent(capability string) string {
	if v, ok := c.Audit.Capabilities[capability]; ok {
		return v
	}
	if c.Audit.Content == "" {
		return "full"
	}
	return c.Audit.Content
}

// DataPolicy chooses the outbound sanitizer's action per category, per peer
// and capability. The most specific rule wins: (peer, capability) > (peer) >
// ("*", capability) > Default.
type DataPolicy struct {
	Default sanitize.Policy `yaml:"default,omitempty"`
	Rules   []SanitizeRule  `yaml:"rules,omitempty"`
	// Canaries are values that must never leave, in any encoding, whatever
	// the policy (each at least 8 bytes). Read when the node starts.
	Canaries []string `yaml:"canaries,omitempty"`
	// Vault bounds the pseudonym vault per peer. Read when the node starts.
	Vault VaultBounds `yaml:"vault,omitempty"`
}

// VaultBounds bound pseudonyms.vault per peer (see sanitize.VaultLimits).
type VaultBounds struct {
	MaxPerPeer int      `yaml:"max_per_peer,omitempty"` // zero: 100000
	TTL        Duration `yaml:"ttl,omitempty"`          // zero: 720h
}

// SanitizeRule is one peer's (or capability's) data policy.
type SanitizeRule struct {
	Peer       string          `yaml:"peer"`                 // did:key, nickname, or "*"
	Capability string          `yaml:"capability,omitempty"` // "" = every capability
	Policy     sanitize.Policy `yaml:",inline"`
}

// ScreenPolicy chooses how inbound content is screened, per peer and
// capability, with the same precedence as DataPolicy.
type ScreenPolicy struct {
	Default screen.Policy `yaml:"default,omitempty"`
	Rules   []ScreenRule  `yaml:"rules,omitempty"`
}

// ScreenRule is one peer's (or capability's) screening policy.
type ScreenRule struct {
	Peer       string        `yaml:"peer"`
	Capability string        `yaml:"capability,omitempty"`
	Policy     screen.Policy `yaml:",inline"`
}

// SanitizePolicy returns the data policy for sending to peer (did:key) on capability.
func (c *Config) SanitizePolicy(peer, capability string) sanitize.Policy {
	best, rank := c.Sanitize.Default, 0
	for _, r := range c.Sanitize.Rules {
		if k := c.ruleRank(r.Peer, r.Capability, peer, capability); k > rank {
			best, rank = r.Policy, k
		}
	}
	return best
}

// ScreenPolicyFor returns the screening policy for content from peer on capability.
func (c *Config) ScreenPolicyFor(peer, capability string) screen.Policy {
	best, rank := c.Screen.Default, 0
	for _, r := range c.Screen.Rules {
		if k := c.ruleRank(r.Peer, r.Capability, peer, capability); k > rank {
			best, rank = r.Policy, k
		}
	}
	return best
}

// ruleRank scores how specifically a rule (rp, rc) matches (peer, capability):
// 0 no match, 1 ("*", cap), 2 (peer, ""), 3 (peer, cap). A rule's peer may be a
// nickname.
func (c *Config) ruleRank(rp, rc, peer, capability string) int {
	if rc != "" && rc != capability {
		return 0
	}
	switch {
	case rp == "*" && rc != "":
		return 1
	case rp == "*":
		return 0 // ("*", "") is what Default is for
	}
	if rp != peer {
		p, ok := c.Peer(rp)
		if !ok || p.ID != peer {
			return 0
		}
	}
	if rc == "" {
		return 2
	}
	return 3
}

// DefaultBackendTimeout bounds a backend run when a capability sets no timeout.
const DefaultBackendTimeout = 30 * time.Second

// MaxBackendTimeout bounds any capability's timeout.
const MaxBackendTimeout = time.Hour

// ExecBackend runs a command: JSON in on stdin, JSON out on stdout. The
// command gets PATH, HOME, LANG, the EnvAllow names from the node's
// environment, Env and the node's TREATY_* variables; nothing else.
type ExecBackend struct {
	Command  string   `yaml:"command"`             // program and arguments, shell-quoted
	Env      []string `yaml:"env,omitempty"`       // extra KEY=VALUE entries
	EnvAllow []string `yaml:"env_allow,omitempty"` // names passed through from the node's environment
	Mode     string   `yaml:"mode,omitempty"`      // "call" (default): a process per call; "worker": long-lived processes serving JSON lines
	Workers  int      `yaml:"workers,omitempty"`   // worker mode: processes; zero: 1
}

// Exec backend modes.
const (
	ExecModeCall   = "call"
	ExecModeWorker = "worker"
)

// MaxExecWorkers bounds exec.workers.
const MaxExecWorkers = 64

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// Check validates env entries and names; TREATY_* names are the node's.
func (e *ExecBackend) Check() error {
	switch e.Mode {
	case "", ExecModeCall:
		if e.Workers != 0 {
			return fmt.Errorf("workers %d needs mode %q", e.Workers, ExecModeWorker)
		}
	case ExecModeWorker:
		if e.Workers < 0 || e.Workers > MaxExecWorkers {
			return fmt.Errorf("workers %d outside [0, %d]", e.Workers, MaxExecWorkers)
		}
	default:
		return fmt.Errorf("mode %q is not %q or %q", e.Mode, ExecModeCall, ExecModeWorker)
	}
	for i, kv := range e.Env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || !envNameRE.MatchString(name) {
			// Not echoed: an entry without a valid NAME= may be a pasted
			// secret, and a refused reload is logged and audited.
			return fmt.Errorf("env[%d] is not NAME=VALUE with NAME matching %s (the entry is not shown)", i, envNameRE)
		}
		if strings.HasPrefix(name, "TREATY_") {
			return fmt.Errorf("env[%d] %s: TREATY_* variables are set by the node", i, name)
		}
	}
	for i, name := range e.EnvAllow {
		if !envNameRE.MatchString(name) {
			return fmt.Errorf("env_allow[%d] %q does not match %s", i, name, envNameRE)
		}
		if strings.HasPrefix(name, "TREATY_") {
			return fmt.Errorf("env_allow[%d] %s: TREATY_* variables are set by the node", i, name)
		}
	}
	return nil
}

// HTTPBackend POSTs the input JSON to a local URL and returns the JSON answer.
type HTTPBackend struct {
	URL string `yaml:"url"`
}

// MCPBackend calls one tool of a local MCP server: a command the node runs
// and talks to over stdio, or a streamable HTTP endpoint. The server gets the
// input as the tool's arguments and nothing about the peer.
type MCPBackend struct {
	Command string `yaml:"command,omitempty"` // program and arguments, shell-quoted; or
	URL     string `yaml:"url,omitempty"`     // streamable HTTP endpoint
	Tool    string `yaml:"tool"`              // the tool's name in tools/list
}

// A2ABackend sends the input to one skill of a local A2A agent (JSON-RPC).
// The agent gets the input and the skill's id, nothing about the peer.
type A2ABackend struct {
	URL   string `yaml:"url"`   // the agent's base URL: its card is at URL/.well-known/agent-card.json
	Skill string `yaml:"skill"` // the skill's id on the card
}

// Limits are the explicit protocol limits; zero fields take the defaults noted.
type Limits struct {
	MaxBodyBytes         int64    `yaml:"max_body_bytes,omitempty"`          // zero: 1 MiB
	MaxHeaderBytes       int      `yaml:"max_header_bytes,omitempty"`        // zero: 16 KiB
	TimeToFirstByte      Duration `yaml:"time_to_first_byte,omitempty"`      // zero: 10s
	CallTimeout          Duration `yaml:"call_timeout,omitempty"`            // zero: 30s
	MaxConcurrentPerPeer int      `yaml:"max_concurrent_per_peer,omitempty"` // zero: 64
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 30s, 500ms)", s)
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// DefaultListen is where a node listens unless told otherwise: loopback only.
const DefaultListen = "127.0.0.1:7420"

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ReservedCapabilityPrefix starts the names of the protocol's own capabilities.
const ReservedCapabilityPrefix = "treaty."

// ValidName reports whether s is a valid node or peer nickname.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ValidCapability reports whether s may name a capability this node defines:
// the wire's one name rule (wire.ValidCapabilityName), outside the reserved
// "treaty." prefix.
func ValidCapability(s string) bool {
	return wire.ValidCapabilityName(s) && !strings.HasPrefix(s, ReservedCapabilityPrefix)
}

// GroupCapabilityPrefix names a consensus group where a capability is
// expected: a budget rule for group:NAME limits the proposals members make to
// group NAME.
const GroupCapabilityPrefix = "group:"

// ValidBudgetCapability reports whether s may be a budget rule's capability:
// a capability name, or group:NAME.
func ValidBudgetCapability(s string) bool {
	if g, ok := strings.CutPrefix(s, GroupCapabilityPrefix); ok {
		return ValidCapability(g)
	}
	return ValidCapability(s)
}

// CapabilityRule says in words what ValidCapability accepts.
const CapabilityRule = "1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit, not with \"" + ReservedCapabilityPrefix + "\""

// Validate checks every field and the relations between them.
func (c *Config) Validate() error {
	if !ValidName(c.Name) {
		return fmt.Errorf("config: name %q must match %s", c.Name, nameRE)
	}
	if err := validAddr(c.Listen); err != nil {
		return fmt.Errorf("config: listen: %w", err)
	}
	if p := c.FederationProtocol; p != "" && p != "treaty/1" && p != "treaty/2" {
		return fmt.Errorf("config: federation_protocol %q: want treaty/2 (the default) or treaty/1 (HTTP/2 only)", p)
	}
	seenName := map[string]bool{}
	seenID := map[string]bool{}
	for i, p := range c.Peers {
		if !ValidName(p.Name) {
			return fmt.Errorf("config: peers[%d].name %q must match %s", i, p.Name, nameRE)
		}
		if _, err := identity.ParseDID(p.ID); err != nil {
			return fmt.Errorf("config: peers[%d].id: %w", i, err)
		}
		if err := validAddr(p.Addr); err != nil && (p.Addr != "" || p.Via == "") {
			return fmt.Errorf("config: peers[%d].addr: %w", i, err)
		}
		if seenName[p.Name] {
			return fmt.Errorf("config: peers[%d].name %q is used twice", i, p.Name)
		}
		if seenID[p.ID] {
			return fmt.Errorf("config: peers[%d].id %s is listed twice", i, p.ID)
		}
		if !validSource(p.Source) {
			return fmt.Errorf("config: peers[%d].source %q: want one of %v", i, p.Source, PeerSources())
		}
		seenName[p.Name], seenID[p.ID] = true, true
	}
	if err := c.Membership.validate(); err != nil {
		return err
	}
	if err := c.validateRelays(); err != nil {
		return err
	}
	seenCap := map[string]bool{}
	for i, cp := range c.Capabilities {
		if !ValidCapability(cp.Name) {
			return fmt.Errorf("config: capabilities[%d].name %q: want %s", i, cp.Name, CapabilityRule)
		}
		if seenCap[cp.Name] {
			return fmt.Errorf("config: capabilities[%d].name %q is defined twice", i, cp.Name)
		}
		seenCap[cp.Name] = true
		kinds := 0
		for _, set := range []bool{cp.Exec != nil, cp.HTTP != nil, cp.MCP != nil, cp.A2A != nil} {
			if set {
				kinds++
			}
		}
		switch {
		case kinds > 1:
			return fmt.Errorf("config: capabilities[%d] (%s) sets more than one of exec, http, mcp and a2a; choose one", i, cp.Name)
		case cp.A2A != nil:
			if u, err := url.Parse(cp.A2A.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("config: capabilities[%d].a2a.url %q: want an http:// or https:// URL", i, cp.A2A.URL)
			}
			if cp.A2A.Skill == "" {
				return fmt.Errorf("config: capabilities[%d].a2a.skill is required", i)
			}
		case cp.MCP != nil:
			m := cp.MCP
			if (m.Command == "") == (m.URL == "") {
				return fmt.Errorf("config: capabilities[%d].mcp: set exactly one of command and url", i)
			}
			if m.Command != "" {
				if _, err := SplitCommand(m.Command); err != nil {
					return fmt.Errorf("config: capabilities[%d].mcp.command: %w", i, err)
				}
			}
			if m.Tool == "" {
				return fmt.Errorf("config: capabilities[%d].mcp.tool is required", i)
			}
			if cp.Stream {
				return fmt.Errorf("config: capabilities[%d] (%s): mcp backends cannot stream", i, cp.Name)
			}
		case cp.Exec != nil:
			if _, err := SplitCommand(cp.Exec.Command); err != nil {
				return fmt.Errorf("config: capabilities[%d].exec.command: %w", i, err)
			}
			if err := cp.Exec.Check(); err != nil {
				return fmt.Errorf("config: capabilities[%d].exec.%w", i, err)
			}
		case cp.HTTP != nil:
			if cp.HTTP.URL == "" {
				return fmt.Errorf("config: capabilities[%d].http.url is required", i)
			}
			if cp.Stream {
				return fmt.Errorf("config: capabilities[%d] (%s): http backends cannot stream yet; use exec", i, cp.Name)
			}
		}
		if t := cp.Timeout.D(); t < 0 || t > MaxBackendTimeout {
			return fmt.Errorf("config: capabilities[%d].timeout %v outside [0, %v]", i, t, MaxBackendTimeout)
		}
	}
	l := c.Limits
	if l.MaxBodyBytes < 0 || l.MaxBodyBytes > 1<<30 {
		return fmt.Errorf("config: limits.max_body_bytes %d outside [0, 1 GiB]", l.MaxBodyBytes)
	}
	if l.MaxHeaderBytes < 0 || l.MaxHeaderBytes > 1<<20 {
		return fmt.Errorf("config: limits.max_header_bytes %d outside [0, 1 MiB]", l.MaxHeaderBytes)
	}
	if l.MaxConcurrentPerPeer < 0 || l.MaxConcurrentPerPeer > 1<<16 {
		return fmt.Errorf("config: limits.max_concurrent_per_peer %d outside [0, 65536]", l.MaxConcurrentPerPeer)
	}
	for name, d := range map[string]Duration{"time_to_first_byte": l.TimeToFirstByte, "call_timeout": l.CallTimeout} {
		if d.D() < 0 || d.D() > MaxBackendTimeout {
			return fmt.Errorf("config: limits.%s %v outside [0, %v]", name, d.D(), MaxBackendTimeout)
		}
	}
	for name, v := range c.Audit.Capabilities {
		if v != "full" && v != "digest" {
			return fmt.Errorf("config: audit.capabilities[%s] %q must be full or digest", name, v)
		}
	}
	if v := c.Audit.Content; v != "" && v != "full" && v != "digest" {
		return fmt.Errorf("config: audit.content %q must be full or digest", v)
	}
	if r := c.Audit.Retention.D(); r != 0 && r < time.Hour {
		return fmt.Errorf("config: audit.retention %v must be zero (keep) or at least 1h", r)
	}
	if r := c.Audit.RowRetention.D(); r != 0 && r < time.Hour {
		return fmt.Errorf("config: audit.row_retention %v must be zero (keep) or at least 1h", r)
	}
	if n := c.Audit.MaxBytes; n != 0 && (n < 1<<20 || n > 1<<60) {
		return fmt.Errorf("config: audit.max_bytes %d must be zero (no cap) or in [1 MiB, 2^60]", n)
	}
	if n := c.Audit.MinFreeBytes; n < -1 || n > 1<<60 {
		return fmt.Errorf("config: audit.min_free_bytes %d must be -1 (off), zero (default) or in [1, 2^60]", n)
	}
	if w := c.Audit.WitnessInterval.D(); w != 0 && (w < 100*time.Millisecond || w > 24*time.Hour) {
		return fmt.Errorf("config: audit.witness_interval %v outside [100ms, 24h]", w)
	}
	if err := c.Sanitize.Default.Validate(); err != nil {
		return fmt.Errorf("config: sanitize.default: %w", err)
	}
	for i, v := range c.Sanitize.Canaries {
		if len(v) < 8 {
			return fmt.Errorf("config: sanitize.canaries[%d] is %d bytes, want at least 8", i, len(v))
		}
	}
	if m := c.Sanitize.Vault.MaxPerPeer; m != 0 && (m < 16 || m > 10_000_000) {
		return fmt.Errorf("config: sanitize.vault.max_per_peer %d outside [16, 10000000]", m)
	}
	if t := c.Sanitize.Vault.TTL.D(); t != 0 && (t < time.Minute || t > 10*365*24*time.Hour) {
		return fmt.Errorf("config: sanitize.vault.ttl %v outside [1m, 87600h]", t)
	}
	for i, r := range c.Sanitize.Rules {
		if err := c.validRulePeer(r.Peer); err != nil {
			return fmt.Errorf("config: sanitize.rules[%d].peer: %w", i, err)
		}
		if err := r.Policy.Validate(); err != nil {
			return fmt.Errorf("config: sanitize.rules[%d]: %w", i, err)
		}
	}
	if err := c.Screen.Default.Validate(); err != nil {
		return fmt.Errorf("config: screen.default: %w", err)
	}
	for i, r := range c.Screen.Rules {
		if err := c.validRulePeer(r.Peer); err != nil {
			return fmt.Errorf("config: screen.rules[%d].peer: %w", i, err)
		}
		if err := r.Policy.Validate(); err != nil {
			return fmt.Errorf("config: screen.rules[%d]: %w", i, err)
		}
	}
	if err := c.Trust.Validate(); err != nil {
		return fmt.Errorf("config: trust: %w", err)
	}
	if err := c.Budget.Validate(); err != nil {
		return fmt.Errorf("config: budget: %w", err)
	}
	for i, r := range c.Budget.Rules {
		if r.Peer == "*" {
			continue
		}
		if _, err := identity.ParseDID(r.Peer); err != nil {
			return fmt.Errorf("config: budget.rules[%d].peer must be a did:key or \"*\": %w", i, err)
		}
	}
	if err := c.validGovernor(); err != nil {
		return err
	}
	if err := c.validGroups(); err != nil {
		return err
	}
	return c.Metrics.validate()
}

// validRulePeer accepts "*", a did:key, or a nickname from the peer book.
func (c *Config) validRulePeer(p string) error {
	if p == "*" {
		return nil
	}
	if _, ok := c.Peer(p); ok {
		return nil
	}
	if _, err := identity.ParseDID(p); err != nil {
		return fmt.Errorf("%q is not \"*\", a did:key, or a nickname in the peer book", p)
	}
	return nil
}

func validAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host (use 127.0.0.1 for loopback)", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has an invalid port", s)
	}
	return nil
}

// Peer returns the peer whose name or did:key is ref.
func (c *Config) Peer(ref string) (Peer, bool) {
	for _, p := range c.Peers {
		if p.Name == ref || p.ID == ref {
			return p, true
		}
	}
	return Peer{}, false
}

// Capability returns the capability named name.
func (c *Config) Capability(name string) (Capability, bool) {
	for _, cp := range c.Capabilities {
		if cp.Name == name {
			return cp, true
		}
	}
	return Capability{}, false
}

// Parse decodes and validates treaty.yaml bytes. Unknown fields are errors.
func Parse(b []byte) (*Config, error) {
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("config: file is %d bytes, limit %d", len(b), MaxFileBytes)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Load reads DIR/treaty.yaml.
func Load(home string) (*Config, error) {
	b, err := os.ReadFile(filepath.Join(home, FileName))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, filepath.Join(home, FileName))
	}
	return c, nil
}

// Save validates c and writes it atomically (temp file, fsync, rename), so a
// running node never reads a half-written file.
func Save(home string, c *Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return homedir.WriteFile(filepath.Join(home, FileName), b, 0o600)
}

// ErrQuote is returned by SplitCommand for an unterminated quote.
var ErrQuote = errors.New("unterminated quote")

// SplitCommand splits a command line into arguments with POSIX-shell-like
// quoting ('single', "double", backslash). It does not expand variables or globs:
// the command is run directly, never through a shell.
func SplitCommand(s string) ([]string, error) {
	var args []string
	var cur []byte
	inArg := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := i + 1
			for j < len(s) && s[j] != '\'' {
				j++
			}
			if j == len(s) {
				return nil, ErrQuote
			}
			cur = append(cur, s[i+1:j]...)
			inArg, i = true, j
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\') {
					j++
				}
				cur = append(cur, s[j])
			}
			if j == len(s) {
				return nil, ErrQuote
			}
			inArg, i = true, j
		case c == '\\' && i+1 < len(s):
			i++
			cur = append(cur, s[i])
			inArg = true
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				args = append(args, string(cur))
				cur, inArg = cur[:0:0], false
			}
		default:
			cur = append(cur, c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, string(cur))
	}
	if len(args) == 0 {
		return nil, errors.New("empty command")
	}
	return args, nil
}

// JoinCommand quotes args into a command line that SplitCommand turns back
// into the same args.
func JoinCommand(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = quoteArg(a)
	}
	return strings.Join(out, " ")
}

func quoteArg(a string) string {
	if a != "" && strings.IndexFunc(a, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./:=@%+,-", r))
	}) < 0 {
		return a
	}
	// Inside single quotes nothing is special; a quote is closed, escaped, reopened.
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
