package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
)

// Anti-entropy for decided statements (docs/admission.md, "How decided
// statements reach a node that missed the push"). Pushes reach the members
// that are up; a node that was down, cut off or not yet a member misses
// them. So every node keeps the decided statements it applied (DecidedFile,
// newest decidedKeep) and announces each one by gossip: a compact signed
// announcement (digest, action, key, group, index, time) in its push-pull
// state, and broadcast once when it is new. A node that hears of a decision
// it lacks fetches the statement from the announcer on ProtoDecided
// ("fetch DIGEST"), checks that it is the announced text, and applies it
// exactly as a pushed one (applyDecidedFrom): a forgery is refused, audited
// and charged to the announcer.

// DecidedFile holds the decided statements this node keeps to announce and
// serve (mode 0600).
const DecidedFile = "decided.json"

// Bounds of the anti-entropy.
const (
	// decidedKeep is how many decided statements a node keeps and announces,
	// newest decision first; an admission is dropped once it is older than
	// introductionMaxAge (no one would apply it).
	decidedKeep = 64
	// pullParallel bounds the fetches in flight; pullPending the decisions
	// waiting for one (more are ignored until announced again), and
	// pullCandidates the announcers remembered per decision.
	pullParallel   = 4
	pullPending    = 64
	pullCandidates = 8
	// pullTimeout bounds one fetch, dial included.
	pullTimeout = admissionIO
	// fetchPrefix starts a fetch request on ProtoDecided.
	fetchPrefix = "fetch "
)

// decidedStore is the governor's part of the node state for anti-entropy.
type decidedStore struct {
	path    string
	held    []membership.Decided // newest decision first
	byHash  map[[32]byte]string  // held texts by SHA-256, for fetches
	ann     atomic.Pointer[[]membership.Statement]
	pending map[string][]pullCandidate // by decision (decidedSeenKey)
	sem     chan struct{}
}

// pullCandidate is one announcer of a decision this node lacks.
type pullCandidate struct {
	from identity.PublicKey
	ann  membership.DecidedAnnouncement
}

// loadDecided reads DecidedFile (missing: empty); statements that no longer
// parse are dropped. Members skip announcements of a group they do not
// trust without fetching them, so a changed governor costs no one trust.
func (n *Node) loadDecided() error {
	g := &n.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	g.store.path = filepath.Join(n.home, DecidedFile)
	g.store.pending = map[string][]pullCandidate{}
	g.store.sem = make(chan struct{}, pullParallel)
	b, err := os.ReadFile(g.store.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	var texts []string
	if err := json.Unmarshal(b, &texts); err != nil {
		return fmt.Errorf("node: %s: %w", g.store.path, err)
	}
	for _, s := range texts {
		if d, err := membership.ParseDecided(s); err == nil {
			g.store.held = append(g.store.held, d)
		}
	}
	n.pruneDecidedLocked()
	n.announceLocked()
	return nil
}

// keepDecided keeps a decided statement this node applied (or had applied)
// and announces it when it is new here. Admissions without the opener's
// address, stale ones and those of refused keys are not kept: no one could
// apply them.
func (n *Node) keepDecided(ctx context.Context, d membership.Decided) {
	if d.Action.Kind == membership.ActionAdmit && (d.Addr == "" || n.adm.refusedWhy(d.Action.Key) != "" || n.staleDecision(d.Time)) {
		return
	}
	g := &n.gov
	g.mu.Lock()
	for _, h := range g.store.held {
		if h.Passed == d.Passed && h.Group.ID() == d.Group.ID() {
			g.mu.Unlock()
			return
		}
	}
	g.store.held = append(g.store.held, d)
	n.pruneDecidedLocked()
	texts := make([]string, 0, len(g.store.held))
	for _, h := range g.store.held {
		texts = append(texts, h.Text)
	}
	b, _ := json.Marshal(texts)
	err := homedir.WriteFile(g.store.path, b, 0o600)
	n.announceLocked()
	g.mu.Unlock()
	if err != nil {
		n.log.Error("decided statement not kept: members that missed it will not learn it from this node", "err", err)
		return
	}
	gs := n.adm.gossip.Load()
	if gs == nil {
		return
	}
	st, err := membership.SignDecidedAnnouncement(n.key, membership.AnnounceDecided(d))
	if err == nil {
		err = gs.Publish(ctx, st)
	}
	if err != nil {
		n.log.Warn("decided statement not announced", "err", err)
	}
}

// staleDecision reports whether an admission decided at t (unix ns) is
// outside the window in which members apply it.
func (n *Node) staleDecision(t int64) bool {
	age := n.now().Sub(time.Unix(0, t))
	return age > introductionMaxAge || age < -time.Minute
}

// pruneDecidedLocked orders the held statements newest first, drops stale
// admissions and keeps decidedKeep.
func (n *Node) pruneDecidedLocked() {
	s := &n.gov.store
	s.held = slices.DeleteFunc(s.held, func(d membership.Decided) bool {
		return d.Action.Kind == membership.ActionAdmit && n.staleDecision(d.Time)
	})
	slices.SortStableFunc(s.held, func(a, b membership.Decided) int {
		switch {
		case a.Time > b.Time:
			return -1
		case a.Time < b.Time:
			return 1
		}
		return 0
	})
	if len(s.held) > decidedKeep {
		s.held = s.held[:decidedKeep]
	}
}

// announceLocked signs the announcements of the held statements, for
// gossip's push-pull state, and indexes them by digest for fetches (signing is deterministic: the same statement
// gives the same announcement, which members have seen already).
func (n *Node) announceLocked() {
	var out []membership.Statement
	byHash := map[[32]byte]string{}
	for _, d := range n.gov.store.held {
		a := membership.AnnounceDecided(d)
		byHash[a.Digest] = d.Text
		if st, err := membership.SignDecidedAnnouncement(n.key, a); err == nil {
			out = append(out, st)
		}
	}
	n.gov.store.byHash = byHash
	n.gov.store.ann.Store(&out)
}

// decidedAnnouncements is gossip's Config.Announce.
func (n *Node) decidedAnnouncements() []membership.Statement {
	if p := n.gov.store.ann.Load(); p != nil {
		return *p
	}
	return nil
}

// heldDecided returns the held statement with the given digest.
func (n *Node) heldDecided(digest [32]byte) (string, bool) {
	n.gov.mu.Lock()
	defer n.gov.mu.Unlock()
	text, ok := n.gov.store.byHash[digest]
	return text, ok
}

// decidedAnnounced takes an announcement gossip accepted (it must not
// block): a decision this node lacks is fetched from the announcer.
func (n *Node) decidedAnnounced(ctx context.Context, from identity.PublicKey, a membership.DecidedAnnouncement) {
	if from == n.self || !n.lacksDecision(a) {
		return
	}
	key := "decided:" + a.Group.String() + ":" + fmt.Sprint(a.Passed)
	g := &n.gov
	g.mu.Lock()
	if q, ok := g.store.pending[key]; ok {
		if len(q) < pullCandidates && !slices.ContainsFunc(q, func(c pullCandidate) bool { return c.from == from && c.ann == a }) {
			g.store.pending[key] = append(q, pullCandidate{from, a})
		}
		g.mu.Unlock()
		return
	}
	if len(g.store.pending) >= pullPending {
		g.mu.Unlock()
		n.log.Debug("decided statement announced while too many fetches wait; it will be announced again", "from", from.Short())
		return
	}
	g.store.pending[key] = []pullCandidate{{from, a}}
	g.mu.Unlock()
	if !n.goTracked(func() { n.pullDecision(ctx, key) }) {
		g.mu.Lock()
		delete(g.store.pending, key)
		g.mu.Unlock()
	}
}

// lacksDecision reports whether a announces a decision of the trusted
// governing group that would change something here.
func (n *Node) lacksDecision(a membership.DecidedAnnouncement) bool {
	if n.governorName() == "" || !slices.Contains(n.trustedGovernors(), a.Group) {
		return false // another group's: not ours to fetch, nor to hold against anyone
	}
	switch a.Action {
	case membership.ActionRevoke:
		if n.adm.refusedWhy(a.Subject) == "revoked" {
			return false
		}
	case membership.ActionAdmit:
		if _, ok := n.state.Load().peers[a.Subject]; ok || a.Subject == n.self || n.adm.refusedWhy(a.Subject) != "" || n.staleDecision(a.Time) {
			return false
		}
	}
	g := &n.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, d := range g.store.held {
		if d.Passed == a.Passed && d.Group.ID() == a.Group {
			return false
		}
	}
	return true
}

// pullDecision fetches one decision from its announcers in turn until one
// gives a statement that applies, pullParallel decisions at a time.
func (n *Node) pullDecision(ctx context.Context, key string) {
	s := &n.gov.store
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		n.gov.mu.Lock()
		delete(s.pending, key)
		n.gov.mu.Unlock()
		return
	}
	defer func() { <-s.sem }()
	for {
		n.gov.mu.Lock()
		q := s.pending[key]
		if len(q) == 0 || ctx.Err() != nil {
			delete(s.pending, key)
			n.gov.mu.Unlock()
			return
		}
		c := q[0]
		s.pending[key] = q[1:]
		n.gov.mu.Unlock()
		if !n.lacksDecision(c.ann) || n.pullFrom(ctx, c) {
			n.gov.mu.Lock()
			delete(s.pending, key)
			n.gov.mu.Unlock()
			return
		}
	}
}

// pullFrom fetches c's statement from its announcer and applies it; it
// reports whether it applied. A statement that is not the one announced, or
// whose proof does not hold, is refused and charged to the announcer.
func (n *Node) pullFrom(ctx context.Context, c pullCandidate) bool {
	text, err := n.fetchDecided(ctx, c.from, c.ann.Digest)
	if err != nil {
		n.log.Info("decided statement not fetched", "from", c.from.Short(), "err", err)
		return false
	}
	if sha256.Sum256([]byte(text)) != c.ann.Digest {
		n.statementRefused(ctx, c.from, &membership.StatementError{Kind: membership.KindDecided, Err: membership.ErrBadSignature,
			Reason: "the fetched statement is not the one its announcer announced (digest)"})
		return false
	}
	if _, err := n.applyDecidedFrom(ctx, text, c.from, &c.ann, func() {}); err != nil {
		n.log.Warn("fetched decided statement refused", "from", c.from.Short(), "err", err)
		return false
	}
	return true
}

// fetchDecided asks k for the decided statement with digest.
func (n *Node) fetchDecided(ctx context.Context, k identity.PublicKey, digest [32]byte) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	c, err := n.dialPeer(ctx, k, n.addrOf(k), ProtoDecided)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(pullTimeout))
	if _, err := c.Write([]byte(fetchPrefix + hex.EncodeToString(digest[:]) + "\n")); err != nil {
		return "", err
	}
	line, err := readLine(c, decidedLineMax)
	if err != nil {
		return "", err
	}
	if s := string(line); strings.HasPrefix(s, "error: ") {
		return "", errors.New(s)
	}
	return string(line), nil
}

// addrOf is where k listens: its peer book entry, else its gossip record.
func (n *Node) addrOf(k identity.PublicKey) string {
	if p, ok := n.state.Load().peers[k]; ok && p.Addr != "" {
		return p.Addr
	}
	if g := n.adm.gossip.Load(); g != nil {
		if m, ok := g.Member(k); ok && len(m.Record.Addrs) > 0 {
			return m.Record.Addrs[0]
		}
	}
	return ""
}

// serveFetch answers a fetch request (the first line, fetchPrefix and a
// hex digest) with the held statement, or "error: ...".
func (n *Node) serveFetch(c net.Conn, line string) {
	raw, err := hex.DecodeString(strings.TrimPrefix(line, fetchPrefix))
	if err != nil || len(raw) != sha256.Size {
		_, _ = c.Write([]byte("error: a fetch names a SHA-256 digest in hex\n"))
		return
	}
	text, ok := n.heldDecided([32]byte(raw))
	if !ok {
		_, _ = c.Write([]byte("error: not held here\n"))
		return
	}
	_, _ = c.Write([]byte(text + "\n"))
}

// trustedGovernors are the IDs of the definitions governs accepts.
func (n *Node) trustedGovernors() []fsm.ID {
	st := n.state.Load()
	gov := st.cfg.Membership.Governor
	if gov == nil {
		return nil
	}
	var out []fsm.ID
	if keys, err := st.cfg.GovernorMembers(n.self); err == nil && keys != nil {
		if d, err := fsm.NewGroup(gov.Group, fsm.Mode(gov.Mode), 0, keys); err == nil {
			d.Nonce = config.GroupNonce(gov.Nonce)
			out = append(out, d.ID())
		}
	}
	for _, d := range st.cfg.Groups {
		if d.Name != gov.Group {
			continue
		}
		if keys, err := st.cfg.GroupMembers(d, n.self); err == nil {
			if dg, err := fsm.NewGroup(d.Name, fsm.Mode(d.Mode), 0, keys); err == nil {
				dg.Nonce = config.GroupNonce(d.Nonce)
				out = append(out, dg.ID())
			}
		}
	}
	if cur, ok := n.governingGroup(); ok {
		out = append(out, cur.ID())
	}
	return out
}
