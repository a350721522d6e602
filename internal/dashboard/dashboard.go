// Package dashboard serves a read-only web view of one running node: its peers
// and their trust over time, recent calls and refusals, the audit log with its
// verification state and inclusion proofs, consensus groups when the node
// has them, and members (admission and gossip) when its API lists them. It runs beside the node, reads it through the local API and the
// home's files (the audit log read-only), and never changes either.
//
// Guarantees: every read of the node's data needs the token as a bearer
// header (no cookie: a browser would send it to every port of the host); on a loopback address the Host header must be the bound
// address and a cross-origin request is refused, so a DNS-rebinding page
// cannot read it; pages carry a Content-Security-Policy without inline
// script, and peer-controlled text is only ever set as text by the page.
package dashboard

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/catalogue"
	"github.com/treaty-dev/treaty/localapi"
)

// Limits of what the dashboard keeps and shows.
const (
	DefaultPoll        = 250 * time.Millisecond // how often the node is read
	MinPoll            = 50 * time.Millisecond
	DefaultVerifyEvery = 5 * time.Second // pause between full verifications of the audit log
	DefaultSampleEvery = time.Second     // how often trust scores are sampled
	MaxSamples         = 120             // trust samples kept per peer (the sparkline)
	MaxPeers           = 256             // peers shown; more are cut
	MaxGroups          = 32              // groups shown; more are cut
	MaxMembers         = MaxPeers        // members shown; more are cut
	MaxMotions         = 20              // motions shown per group (the last the node lists)
	recentEntries      = 200             // newest audit entries read per poll
	shownAudit         = 50              // of those, shown in the audit panel
	shownCalls         = 50              // call entries shown
	shownRefusals      = 50              // refusals shown
	readTimeout        = 2 * time.Second
)

// Node is what the dashboard reads from the running node's local API;
// *client.Client is one.
type Node interface {
	Status(ctx context.Context) (localapi.Status, error)
	Peers(ctx context.Context) ([]localapi.PeerInfo, error)
}

// groupLister is the optional part of Node: groups appear only when the
// node's API has them and runs at least one.
type groupLister interface {
	Groups(ctx context.Context) ([]localapi.GroupInfo, error)
}

// memberLister is the optional part of Node that lists members (GET
// /v1/members): the peer book with sources, refused keys and gossip's view.
type memberLister interface {
	Members(ctx context.Context) ([]localapi.MemberInfo, error)
}

// motionLister is the optional part of Node that lists a group's motions
// (its decisions).
type motionLister interface {
	MotionList(ctx context.Context, group string) ([]localapi.MotionInfo, error)
}

// Options configures New.
type Options struct {
	Node Node   // required
	Home string // required: the node's home, for audit.db
	// Trust reads each peer's trust by did:key; nil shows none.
	Trust func(context.Context) (map[string]catalogue.Trust, error)
	// AuditFile overrides HOME/audit.db.
	AuditFile   string
	Poll        time.Duration // zero: DefaultPoll
	VerifyEvery time.Duration // zero: DefaultVerifyEvery
	SampleEvery time.Duration // zero: DefaultSampleEvery
	Logger      *slog.Logger  // nil: discard
}

// writeTimeout bounds each write of an event stream: a reader that stopped
// reading is dropped, not waited for.
const writeTimeout = 10 * time.Second

// Dashboard polls one node and keeps the latest Snapshot for its web view.
type Dashboard struct {
	opts         Options
	log          *slog.Logger
	writeTimeout time.Duration

	mu      sync.Mutex
	snap    []byte // latest snapshot JSON
	version uint64 // bumped when snap changes
	changed chan struct{}
	verify  VerifyState
	samples map[string][]float64 // peer did:key -> scores, oldest first
	reader  *audit.Reader
}

// New validates opts.
func New(opts Options) (*Dashboard, error) {
	if opts.Node == nil {
		return nil, errors.New("dashboard: Options.Node is required")
	}
	if opts.Home == "" && opts.AuditFile == "" {
		return nil, errors.New("dashboard: Options.Home is required")
	}
	if opts.AuditFile == "" {
		opts.AuditFile = filepath.Join(opts.Home, "audit.db")
	}
	if opts.Poll == 0 {
		opts.Poll = DefaultPoll
	}
	if opts.Poll < MinPoll {
		return nil, fmt.Errorf("dashboard: Options.Poll %v is below %v", opts.Poll, MinPoll)
	}
	if opts.VerifyEvery == 0 {
		opts.VerifyEvery = DefaultVerifyEvery
	}
	if opts.SampleEvery == 0 {
		opts.SampleEvery = DefaultSampleEvery
	}
	if opts.VerifyEvery < 0 || opts.SampleEvery < 0 {
		return nil, errors.New("dashboard: Options.VerifyEvery and SampleEvery must be positive")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{opts: opts, log: log, writeTimeout: writeTimeout, changed: make(chan struct{}), samples: map[string][]float64{},
		verify: VerifyState{State: "unknown", Detail: "not verified yet"}}
	d.snap, _ = json.Marshal(Snapshot{Verify: d.verify})
	return d, nil
}

// Snapshot is what the page shows; GET /api/snapshot and each SSE event
// carry one as JSON.
type Snapshot struct {
	Node     NodeState    `json:"node"`
	Peers    []PeerState  `json:"peers"`
	Calls    []EntryView  `json:"calls"`
	Refusals []EntryView  `json:"refusals"`
	Audit    []EntryView  `json:"audit"`
	Size     uint64       `json:"audit_size"`
	Verify   VerifyState  `json:"verify"`
	Groups   []GroupState `json:"groups,omitempty"`
	// HasGroups is false when the node's API has no groups (or none run).
	HasGroups bool          `json:"has_groups"`
	Motions   []MotionState `json:"motions,omitempty"`
	Members   []MemberState `json:"members,omitempty"`
	// HasMembers is false when the node's API does not list members.
	HasMembers bool `json:"has_members"`
}

// MemberState is one member as admission and gossip know it.
type MemberState = localapi.MemberInfo

// MotionState is one motion of a group: a decision taken or pending. Its
// text and the voters' keys are not carried (a proposer may write 4 KiB,
// and a vote list may name 128 members, in each of 640 motions): `treaty
// motion ls` shows them.
type MotionState struct {
	Group    string `json:"group"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Subject  string `json:"subject,omitempty"`
	Proposer string `json:"proposer,omitempty"`
	Quorum   uint32 `json:"quorum"`
	Yes      int    `json:"yes"` // votes for
	No       int    `json:"no"`  // votes against
	Outcome  string `json:"outcome"`
	Reason   string `json:"reason,omitempty"` // clipped to maxText
	Opened   uint64 `json:"opened"`
	Decided  uint64 `json:"decided,omitempty"`
}

// maxText bounds a free-text field the snapshot carries (a refusal reason,
// an error): the page shows a line, the CLI has the whole of it.
const maxText = 128

// clip cuts s to at most maxText bytes, on a rune boundary, marking the cut.
func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	cut := maxText - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// NodeState is the node's own status.
type NodeState struct {
	Up          bool   `json:"up"`
	Error       string `json:"error,omitempty"`
	Name        string `json:"name,omitempty"`
	ID          string `json:"id,omitempty"`
	Addr        string `json:"addr,omitempty"`
	ConfigError string `json:"config_error,omitempty"`
}

// PeerState is one peer with its trust and the scores sampled so far.
type PeerState struct {
	Name    string           `json:"name"`
	ID      string           `json:"id"`
	Addr    string           `json:"addr"`
	Breaker string           `json:"breaker,omitempty"`
	Trust   *catalogue.Trust `json:"trust,omitempty"`
	History []float64        `json:"history,omitempty"`
	// Unwitnessed is the node's audit witness's streak of this peer's
	// checkpoint notes it could not judge (no consistency proof had);
	// UnwitnessedAlert is set from audit.MaxUnwitnessed on, where the
	// node alerts.
	Unwitnessed      int  `json:"unwitnessed,omitempty"`
	UnwitnessedAlert bool `json:"unwitnessed_alert,omitempty"`
}

// EntryView is one audit entry as the page shows it (no content, no evidence).
type EntryView struct {
	Index      uint64    `json:"index"`
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	Peer       string    `json:"peer,omitempty"`
	PeerName   string    `json:"peer_name,omitempty"`
	Direction  string    `json:"direction,omitempty"`
	Capability string    `json:"capability,omitempty"`
	Outcome    string    `json:"outcome,omitempty"`
	Stage      string    `json:"stage,omitempty"`
}

// VerifyState is the result of the last full verification of the audit log:
// "ok", "failed" (tampered or unreadable) or "unknown" (not yet done).
type VerifyState struct {
	State   string    `json:"state"`
	Detail  string    `json:"detail"`
	Entries uint64    `json:"entries,omitempty"`
	Root    string    `json:"root,omitempty"`
	Checked time.Time `json:"checked"`
}

// GroupState is one consensus group.
type GroupState = localapi.GroupInfo

// Run polls until ctx ends.
func (d *Dashboard) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { d.verifyLoop(ctx) })
	poll := time.NewTicker(d.opts.Poll)
	defer poll.Stop()
	var lastSample time.Time
	for {
		sample := time.Since(lastSample) >= d.opts.SampleEvery
		if sample {
			lastSample = time.Now()
		}
		d.Refresh(ctx, sample)
		select {
		case <-ctx.Done():
			wg.Wait()
			d.mu.Lock()
			if d.reader != nil {
				d.reader.Close()
				d.reader = nil
			}
			d.mu.Unlock()
			return
		case <-poll.C:
		}
	}
}

// verifyLoop verifies, pauses VerifyEvery, and again: a log that takes long
// to verify is not verified back to back.
func (d *Dashboard) verifyLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.Verify(ctx)
		t.Reset(d.opts.VerifyEvery)
	}
}

// Verify checks the whole audit log now, as `treaty audit verify` does, and
// keeps the result for the next snapshot.
func (d *Dashboard) Verify(ctx context.Context) VerifyState {
	start := time.Now()
	st := VerifyState{Checked: start.UTC()}
	r, err := audit.OpenReader(ctx, d.opts.AuditFile)
	if err == nil {
		key := r.Key()
		r.Close()
		var res audit.VerifyResult
		res, err = audit.Verify(ctx, d.opts.AuditFile, key)
		if err == nil {
			st.State, st.Entries, st.Root = "ok", res.Entries, hex.EncodeToString(res.Root[:])
			st.Detail = fmt.Sprintf("ok: %d entries, %d checkpoints checked in %v", res.Entries, res.Checkpoints, time.Since(start).Round(time.Millisecond))
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return st
		}
		st.State, st.Detail = "failed", err.Error()
	}
	d.mu.Lock()
	d.verify = st
	d.mu.Unlock()
	return st
}

// Refresh reads the node once and publishes a new snapshot if anything
// changed; sample appends each peer's score to its history.
func (d *Dashboard) Refresh(ctx context.Context, sample bool) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	var s Snapshot
	st, err := d.opts.Node.Status(ctx)
	if err != nil {
		s.Node = NodeState{Error: err.Error()}
	} else {
		s.Node = NodeState{Up: true, Name: st.Name, ID: st.ID, Addr: st.Addr, ConfigError: st.ConfigError}
	}
	names := map[string]string{}
	if st.ID != "" {
		names[st.ID] = st.Name + " (this node)"
	}
	if s.Node.Up {
		peers, perr := d.opts.Node.Peers(ctx)
		if perr != nil {
			s.Node.Error = "peers: " + perr.Error()
		}
		var trusts map[string]catalogue.Trust
		if d.opts.Trust != nil {
			var err error
			if trusts, err = d.opts.Trust(ctx); err != nil {
				d.log.Debug("dashboard: trust", "err", err)
			}
		}
		if len(peers) > MaxPeers {
			peers = peers[:MaxPeers]
		}
		d.mu.Lock()
		for _, p := range peers {
			names[p.ID] = p.Name
			ps := PeerState{Name: p.Name, ID: p.ID, Addr: p.Addr, Breaker: p.Breaker,
				Unwitnessed: p.Unwitnessed, UnwitnessedAlert: p.Unwitnessed >= audit.MaxUnwitnessed}
			if tr, ok := trusts[p.ID]; ok {
				ps.Trust = &tr
				if sample {
					h := append(d.samples[p.ID], tr.Score)
					if len(h) > MaxSamples {
						h = h[len(h)-MaxSamples:]
					}
					d.samples[p.ID] = h
				}
			}
			ps.History = slices.Clone(d.samples[p.ID])
			s.Peers = append(s.Peers, ps)
		}
		if perr == nil {
			// Peers gone from the book (gossip may churn it) take their
			// samples with them: memory stays bounded by MaxPeers.
			shown := make(map[string]bool, len(peers))
			for _, p := range peers {
				shown[p.ID] = true
			}
			maps.DeleteFunc(d.samples, func(id string, _ []float64) bool { return !shown[id] })
		}
		d.mu.Unlock()
		if gl, ok := d.opts.Node.(groupLister); ok {
			if gs, err := gl.Groups(ctx); err == nil && len(gs) > 0 {
				s.Groups, s.HasGroups = clipGroups(gs[:min(len(gs), MaxGroups)]), true
				s.Motions = d.motions(ctx, s.Groups)
			}
		}
		if ml, ok := d.opts.Node.(memberLister); ok {
			if ms, err := ml.Members(ctx); err == nil {
				s.Members, s.HasMembers = ms[:min(len(ms), MaxMembers)], true
			}
		}
	}
	d.readAudit(ctx, &s, names)
	d.mu.Lock()
	s.Verify = d.verify
	d.mu.Unlock()
	b, err := json.Marshal(s)
	if err != nil {
		d.log.Error("dashboard: snapshot", "err", err)
		return
	}
	d.publish(b)
}

// clipGroups clips the free text of groups (why a group or a member's
// connection was refused) to maxText.
func clipGroups(gs []GroupState) []GroupState {
	out := make([]GroupState, len(gs))
	for i, g := range gs {
		g.Error = clip(g.Error)
		g.Members = slices.Clone(g.Members)
		for j := range g.Members {
			g.Members[j].Refused = clip(g.Members[j].Refused)
		}
		out[i] = g
	}
	return out
}

// motions lists up to MaxMotions motions of each group, when the node's API has them.
func (d *Dashboard) motions(ctx context.Context, groups []GroupState) []MotionState {
	ml, ok := d.opts.Node.(motionLister)
	if !ok {
		return nil
	}
	var out []MotionState
	for _, g := range groups {
		ms, err := ml.MotionList(ctx, g.Name)
		if err != nil {
			continue // a group without a quorum yet, or an older node
		}
		for _, m := range ms[max(0, len(ms)-MaxMotions):] {
			out = append(out, MotionState{Group: g.Name, Name: m.Name, Kind: m.Kind, Subject: m.Subject, Proposer: m.Proposer,
				Quorum: m.Quorum, Yes: len(m.Yes), No: len(m.No), Outcome: m.Outcome, Reason: clip(m.Reason),
				Opened: m.Opened, Decided: m.Decided})
		}
	}
	return out
}

// readAudit fills the call, refusal and audit panels from the newest entries.
func (d *Dashboard) readAudit(ctx context.Context, s *Snapshot, names map[string]string) {
	d.mu.Lock()
	r := d.reader
	d.mu.Unlock()
	if r == nil {
		var err error
		if r, err = audit.OpenReader(ctx, d.opts.AuditFile); err != nil {
			d.log.Debug("dashboard: audit", "err", err)
			return
		}
		d.mu.Lock()
		d.reader = r
		d.mu.Unlock()
	}
	if cp, err := r.Checkpoint(ctx); err == nil {
		s.Size = cp.Size
	}
	entries, err := r.List(ctx, audit.Filter{Reverse: true, Limit: recentEntries})
	if err != nil {
		d.log.Debug("dashboard: audit list", "err", err)
		return
	}
	for _, e := range entries {
		v := EntryView{Index: e.Index, Time: e.Time, Kind: e.Kind, Peer: e.Peer, PeerName: names[e.Peer],
			Direction: e.Direction, Capability: e.Capability, Outcome: e.Outcome, Stage: e.Stage}
		if len(s.Audit) < shownAudit {
			s.Audit = append(s.Audit, v)
		}
		if strings.HasPrefix(e.Kind, "call.") && len(s.Calls) < shownCalls {
			s.Calls = append(s.Calls, v)
		}
		if (e.Outcome == "refused" || strings.HasSuffix(e.Kind, ".refused")) && len(s.Refusals) < shownRefusals {
			s.Refusals = append(s.Refusals, v)
		}
	}
}

// publish stores b and wakes the subscribers when it differs from the last.
func (d *Dashboard) publish(b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if bytes.Equal(b, d.snap) {
		return
	}
	d.snap = b
	d.version++
	close(d.changed)
	d.changed = make(chan struct{})
}

// current returns the latest snapshot, its version and a channel closed when
// a newer one is published.
func (d *Dashboard) current() ([]byte, uint64, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.snap, d.version, d.changed
}

// ProofView is an entry's inclusion proof and whether it checks against the
// log owner's key.
type ProofView struct {
	Proof audit.Proof `json:"proof"`
	Leaf  string      `json:"leaf_text"` // the leaf bytes as text (JSON)
	Valid bool        `json:"valid"`
	Error string      `json:"error,omitempty"`
}

// Prove returns entry index's inclusion proof against the signed checkpoint,
// as `treaty audit prove` does, checked with the log's own key.
func (d *Dashboard) Prove(ctx context.Context, index uint64) (ProofView, error) {
	r, err := audit.OpenReader(ctx, d.opts.AuditFile)
	if err != nil {
		return ProofView{}, err
	}
	defer r.Close()
	p, err := r.Prove(ctx, index)
	if err != nil {
		return ProofView{}, err
	}
	v := ProofView{Proof: p, Leaf: string(p.Leaf), Valid: true}
	if err := audit.VerifyProof(p, r.Key()); err != nil {
		v.Valid, v.Error = false, err.Error()
	}
	return v, nil
}
