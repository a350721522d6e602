package node

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/transport"
)

// Admission: invites, introductions, rotations and revocations (docs/admission.md).
//
// Two protocols of their own on the federation port carry them:
//   - ProtoJoin: a stranger presents an invite to the member that issued it.
//     Its key may finish the handshake only for this protocol, and only while
//     this node has an invite with uses left (AdmittedFor); proof that it
//     holds its key is the handshake itself.
//   - ProtoStatement: a member pushes one signed statement (an introduction,
//     a rotation or a revocation). A statement seen for the first time is
//     applied, persisted and pushed on to every other member of the book, so
//     it floods the federation in a few round trips.
const (
	ProtoJoin      = "treaty-join/1"
	ProtoStatement = "treaty-statement/1"
)

// AdmissionFile holds this node's invite ledger, the revocations and the
// rotations it has applied (mode 0600).
const AdmissionFile = "admission.json"

// Kinds of audit entries written by admission (defined with the others in
// internal/audit).
const (
	KindInviteIssued = audit.KindInviteIssued
	KindMemberAdmit  = audit.KindMemberAdmitted
	KindMemberJoined = audit.KindMemberJoined
	KindKeyRotated   = audit.KindKeyRotated
	KindKeyRevoked   = audit.KindKeyRevoked
	KindJoinRefused  = audit.KindJoinRefused
	KindStmtRefused  = audit.KindStmtRefused
)

// Bounds of the admission protocols.
const (
	stmtLineMax       = membership.MaxStatementText + 2
	joinRequestMax    = 4 << 10
	joinReplyMax      = 256 << 10
	admissionIO       = 5 * time.Second // bounds one join or one push, each way
	pushParallel      = 8               // statements pushed to this many members at once
	seenStatementsMax = 4096            // digests of statements already handled
)

// admission is the node's admission state. Its zero value is empty; load
// fills it from AdmissionFile.
type admission struct {
	mu      sync.Mutex // serialises changes and writes of the ledger
	path    string
	ledger  ledger
	refused atomic.Pointer[map[identity.PublicKey]string] // revoked and superseded keys -> why, from the ledger
	held    *membership.Held                              // revocations of unknown keys, not in the ledger (revocations.go)
	heldRot *membership.HeldRotations                     // rotations between unknown keys, not in the ledger (rotations.go)
	saver   *membership.HeldSaver                         // coalesces the saves newly held statements cause (markHeld)
	writes  atomic.Int64                                  // saves of the ledger made, for tests and benchmarks
	written atomic.Int64                                  // bytes those saves wrote
	rotMu   sync.Mutex                                    // serialises sorting, holding and applying rotations (rotations.go)
	open    atomic.Int32                                  // invites not expired at the last count (used up or not)
	seen    map[[32]byte]struct{}
	restart chan struct{} // closed by Rotate (rotate.go)
	closing bool          // set when the node stops: goTracked starts nothing more
	wg      sync.WaitGroup
	gossip  atomic.Pointer[membership.Membership] // nil unless membership.enabled (gossip.go)
	left    chan struct{}                         // closed once gossip has said goodbye and stopped; nil without gossip
	counts  membershipCounts                      // membership_metrics.go
	relay   atomic.Pointer[transport.Relay]       // nil unless relay.serve (relay.go)

	// rotatedTo are the keys a rotation in the ledger hands over to (rotations.go).
	rotatedTo atomic.Pointer[map[identity.PublicKey]struct{}]

	// rotLimit bounds rotations of a member's live key (rotation_rate.go).
	rotLimit *membership.RotationLimit
}

// ledger is AdmissionFile.
type ledger struct {
	Invites   map[string]*inviteUse `json:"invites"`   // by nonce
	Revoked   []string              `json:"revoked"`   // revocation statements applied
	Rotations []string              `json:"rotations"` // rotation statements applied
	// GroupRevoked are the keys the governing group revoked (governor.go).
	GroupRevoked []groupRevocation `json:"group_revoked,omitempty"`
	// GovernAddrs are the addresses of keys this node proposed to admit, by
	// motion, until the motion passes or its deadline (governor.go).
	GovernAddrs map[string]governAddr `json:"govern_addrs,omitempty"`
	// HeldRevoked and HeldRotations are what a.held and a.heldRot hold,
	// written with every save so a restart keeps them (ADR 21 and 22,
	// amendments); a newly held one is saved at once or within
	// membership.HeldSaveInterval (markHeld); verified again when loaded.
	HeldRevoked   []membership.HeldRecord `json:"held_revoked,omitempty"`
	HeldRotations []membership.HeldRecord `json:"held_rotations,omitempty"`
}

type inviteUse struct {
	Uses    int       `json:"uses"`
	Used    int       `json:"used"`
	Expires time.Time `json:"expires"`
}

// loadAdmission reads AdmissionFile (missing: empty) and rebuilds the refused set.
func (n *Node) loadAdmission() error {
	a := &n.adm
	if err := a.closeHeld(); err != nil { // loaded again: the last save of what was held
		return fmt.Errorf("node: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.path = filepath.Join(n.home, AdmissionFile)
	a.seen = map[[32]byte]struct{}{}
	held, err := membership.NewHeld(membership.HeldConfig{})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	a.held = held
	if a.heldRot, err = membership.NewHeldRotations(membership.HeldConfig{}); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if a.rotLimit, err = membership.NewRotationLimit(membership.RotationLimitConfig{}); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if a.saver, err = membership.NewHeldSaver(membership.HeldSaverConfig{Save: a.saveHeld, Log: n.log}); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	a.ledger = ledger{Invites: map[string]*inviteUse{}}
	b, err := os.ReadFile(a.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("node: %w", err)
	default:
		if err := json.Unmarshal(b, &a.ledger); err != nil {
			return fmt.Errorf("node: %s: %w", a.path, err)
		}
		if a.ledger.Invites == nil {
			a.ledger.Invites = map[string]*inviteUse{}
		}
	}
	a.rebuildLocked(n.now())
	n.restoreHeldLocked()
	return nil
}

// maxDropLines bounds the log lines of one restore's dropped records.
const maxDropLines = 16

// restoreHeldLocked holds again the revocations and rotations the ledger
// kept, verifying each again and leaving out what the ledger has applied
// since; a record that does not pass is dropped with a log line. a.mu is
// held and the ledger rebuilt.
func (n *Node) restoreHeldLocked() {
	a := &n.adm
	now := n.now()
	held, dropped := a.held.Restore(a.ledger.HeldRevoked, now, func(r membership.Revocation) bool {
		return a.ledgerWhy(r.Key) == "revoked"
	})
	rots, droppedRot := a.heldRot.Restore(a.ledger.HeldRotations, now, func(text string) bool {
		return slices.Contains(a.ledger.Rotations, text)
	})
	// An edited ledger may hold any number: a few lines, then a count.
	dropped = append(dropped, droppedRot...)
	for i, err := range dropped {
		if i == maxDropLines {
			n.log.Warn("more held statements dropped from the admission ledger", "file", a.path, "count", len(dropped)-i)
			break
		}
		n.log.Warn("held statement dropped from the admission ledger", "file", a.path, "err", err)
	}
	if held+rots > 0 {
		n.log.Info("held statements restored", "revocations", held, "rotations", rots)
	}
}

// rebuildLocked derives the refused set from the ledger: superseded keys,
// revoked keys, and every key a revoked key rotated to (revocation wins over
// rotation: a thief who rotates a stolen key does not escape its revocation).
func (a *admission) rebuildLocked(now time.Time) {
	why := map[identity.PublicKey]string{}
	next := map[identity.PublicKey][]identity.PublicKey{} // every rotation from a key: a stolen key may have several
	to := map[identity.PublicKey]struct{}{}
	for _, s := range a.ledger.Rotations {
		if r, err := membership.ParseRotation(s); err == nil {
			why[r.Old] = "superseded by " + r.New.Short()
			next[r.Old] = append(next[r.Old], r.New)
			to[r.New] = struct{}{}
		}
	}
	a.rotatedTo.Store(&to)
	var revoked []identity.PublicKey
	for _, s := range a.ledger.Revoked {
		if r, err := membership.ParseRevocation(s); err == nil {
			revoked = append(revoked, r.Key)
		}
	}
	for _, g := range a.ledger.GroupRevoked {
		if k, err := identity.ParseDID(g.Key); err == nil {
			revoked = append(revoked, k)
		}
	}
	for _, r := range revoked {
		for walk := []identity.PublicKey{r}; len(walk) > 0; walk = walk[1:] {
			if k := walk[0]; why[k] != "revoked" { // each key once: the walk ends
				why[k] = "revoked"
				walk = append(walk, next[k]...)
			}
		}
	}
	a.refused.Store(&why)
	open := 0
	for _, u := range a.ledger.Invites {
		// Used-up invites keep the door open until they expire, so that a
		// newcomer presenting one hears why it is refused (a typed reply),
		// not only a refused handshake.
		if now.Before(u.Expires) {
			open++
		}
	}
	a.open.Store(int32(open))
}

// refusedWhy says why k may not connect ("" when it may): its ledger, then
// the revocations and rotations held.
func (a *admission) refusedWhy(k identity.PublicKey) string {
	if why := a.ledgerWhy(k); why != "" {
		return why
	}
	if a.held != nil && a.held.Revoked(k) || a.heldRotationRevoked(k) {
		return "revoked"
	}
	return ""
}

// ledgerWhy says why the ledger refuses k ("" when it does not).
func (a *admission) ledgerWhy(k identity.PublicKey) string {
	m := a.refused.Load()
	if m == nil {
		return ""
	}
	return (*m)[k]
}

// saveLocked writes the ledger; it is on disk before the change it records
// takes effect or is acknowledged.
func (a *admission) saveLocked() error {
	if a.held != nil {
		a.ledger.HeldRevoked = a.held.Records()
	}
	if a.heldRot != nil {
		a.ledger.HeldRotations = a.heldRot.Records()
	}
	b, err := json.MarshalIndent(a.ledger, "", "  ")
	if err != nil {
		return err
	}
	if err := homedir.WriteFile(a.path, b, 0o600); err != nil {
		return err
	}
	a.writes.Add(1)
	a.written.Add(int64(len(b)))
	return nil
}

// saveHeld writes the ledger, with what is held now (a.saver's Save).
func (a *admission) saveHeld() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.saveLocked()
}

// markHeld records that a statement was newly held. Unlike every other
// change of the ledger, it is not on disk before it is acknowledged: a lone
// one is saved at once, but a burst only once per
// membership.HeldSaveInterval, so a crash loses at most that interval's
// (ADR 21, amendment). A failed save is logged and retried; the statement
// stays held.
func (a *admission) markHeld() {
	if a.saver != nil {
		a.saver.Mark()
	}
}

// closeHeld makes the last save of what is held; Close calls it once every
// handler has returned (a later hold saves at once).
func (a *admission) closeHeld() error {
	if a.saver == nil {
		return nil
	}
	return a.saver.Close()
}

// markSeen reports whether text was already handled, and remembers it.
func (a *admission) markSeen(text string) bool {
	d := sha256Sum(text)
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.seen[d]; ok {
		return true
	}
	if len(a.seen) >= seenStatementsMax {
		clear(a.seen) // a statement seen again is applied again: harmless
	}
	a.seen[d] = struct{}{}
	return false
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// AdmittedFor implements transport.ProtoAdmitter: a stranger may reach the
// join protocol, and nothing else, while this node has an unexpired invite.
func (n *Node) AdmittedFor(k identity.PublicKey, proto string) bool {
	return proto == ProtoJoin && n.adm.open.Load() > 0 && n.adm.refusedWhy(k) == "" && k != n.self
}

// startAdmission loads the ledger and serves the admission protocols; Start
// calls it before the transport listens.
func (n *Node) startAdmission(ctx context.Context) error {
	if err := n.loadAdmission(); err != nil {
		return err
	}
	if err := n.recordRotation(ctx); err != nil {
		return err
	}
	n.registerGossip()
	join, stmt := n.tr.Listener(ProtoJoin), n.tr.Listener(ProtoStatement)
	// Closing the listeners ends the accept loops; AfterFunc starts no
	// goroutine until ctx ends, so Start returns with all of them running.
	context.AfterFunc(ctx, func() {
		join.Close()
		stmt.Close()
	})
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		<-ctx.Done()
		n.adm.mu.Lock()
		n.adm.closing = true
		n.adm.mu.Unlock()
		n.adm.wg.Wait()
	}()
	go func() {
		defer n.wg.Done()
		n.serveAdmission(ctx, join, n.serveJoin)
	}()
	go func() {
		defer n.wg.Done()
		n.serveAdmission(ctx, stmt, n.serveStatement)
	}()
	return nil
}

// serveAdmission accepts until the listener closes (startAdmission closes it
// when ctx ends); each connection gets its own goroutine with an I/O
// deadline, so a slow client holds only itself.
func (n *Node) serveAdmission(ctx context.Context, l net.Listener, serve func(context.Context, net.Conn)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(admissionIO))
			serve(ctx, c)
		})
	}
}

// readLine reads one '\n'-terminated line of at most max bytes (without the
// newline) from a connection that carries only that line.
func readLine(r io.Reader, max int) ([]byte, error) {
	return readLineFrom(bufio.NewReader(r), max)
}

// readLineFrom reads the next line of br, of at most max bytes; reading stops
// at max+1 bytes whatever the peer sends. br may hold the lines that follow.
func readLineFrom(br *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("no complete line: %w", err)
		}
		if b == '\n' {
			return out, nil
		}
		if len(out) >= max {
			return nil, fmt.Errorf("line longer than %d bytes", max)
		}
		out = append(out, b)
	}
}

// JoinRequest is what a newcomer sends its inviter.
type JoinRequest struct {
	Token string `json:"token"`
	Name  string `json:"name"` // the nickname the newcomer gives itself
	Addr  string `json:"addr"` // where the newcomer's federation port is
}

// JoinReply is the inviter's answer: on success its own name, the
// introduction it spread, and the members it knows (so the newcomer can
// reach them at once); on failure Code says why.
type JoinReply struct {
	Name    string       `json:"name,omitempty"`
	Admit   string       `json:"admit,omitempty"`
	Members []MemberInfo `json:"members,omitempty"`
	Code    string       `json:"code,omitempty"` // "expired", "used_up", "bad_signature", "malformed", "not_inviter", "refused"
	Reason  string       `json:"reason,omitempty"`
}

// MemberInfo is one member as a join reply lists it.
type MemberInfo struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

func (n *Node) serveJoin(ctx context.Context, c net.Conn) {
	newcomer, _ := transport.PeerFromConn(c)
	n.answerJoin(ctx, c, newcomer)
}

// answerJoin runs one join of newcomer on c and answers it. Once the
// newcomer is admitted and introduced, what this node holds about its key
// (a rotation from it) is applied, as for a key an introduction brings.
func (n *Node) answerJoin(ctx context.Context, c net.Conn, newcomer identity.PublicKey) {
	reply := n.join(ctx, c, newcomer)
	b, _ := json.Marshal(reply)
	_, _ = c.Write(append(b, '\n'))
	c.Close()
	if reply.Admit != "" {
		// Every member learns the newcomer; it already knows them.
		n.spread(ctx, reply.Admit, map[identity.PublicKey]struct{}{newcomer: {}})
		n.publishGossip(ctx, reply.Admit)
		// After the introduction, so that members learn the key before the
		// rotation from it (revocations.go).
		n.promoteHeld(ctx, newcomer)
	}
}

// join runs the inviter's checks in order and admits newcomer.
func (n *Node) join(ctx context.Context, c net.Conn, newcomer identity.PublicKey) JoinReply {
	refuse := func(code string, err error) JoinReply {
		n.adm.counts.joinsRefused.Add(1)
		// Strangers can cause these at will while an invite is open: they
		// are aggregated per source like refused handshakes (refusals.go).
		k := refusalKey{source: strangerSource(c.RemoteAddr().String()), kind: KindJoinRefused, direction: "in", stage: string(refusal.StageTransport)}
		if n.refusalAdmitted(k, code) {
			n.log.Warn("join refused", "peer", newcomer, "code", code, "err", err)
			e := audit.Entry{Kind: KindJoinRefused, Peer: newcomer.String(), Direction: "in", Outcome: "refused", Stage: string(refusal.StageTransport)}
			e.Report, _ = json.Marshal(map[string]string{"code": code, "reason": err.Error()})
			if _, aerr := n.audit.Append(ctx, e); aerr != nil {
				n.log.Error("audit append of a refused join failed", "err", aerr)
			}
		}
		return JoinReply{Code: code, Reason: err.Error()}
	}
	line, err := readLine(c, joinRequestMax)
	if err != nil {
		return refuse("malformed", err)
	}
	var req JoinRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return refuse("malformed", fmt.Errorf("join request is not JSON: %w", err))
	}
	inv, err := membership.ParseInvite(req.Token)
	if err != nil {
		return refuse(inviteCode(err), err)
	}
	if inv.Inviter != n.self {
		return refuse("not_inviter", membership.ErrNotInviter)
	}
	if err := inv.Check(n.now()); err != nil {
		return refuse("expired", err)
	}
	if !config.ValidName(req.Name) {
		return refuse("malformed", fmt.Errorf("name %q is not a valid nickname", req.Name))
	}
	if err := config.ValidAddr(req.Addr); err != nil {
		return refuse("malformed", err)
	}
	if why := n.adm.refusedWhy(newcomer); why != "" {
		n.promoteHeld(ctx, newcomer) // revocations.go
		return refuse("refused", fmt.Errorf("key %s is %s", newcomer.Short(), why))
	}
	if _, known := n.state.Load().peers[newcomer]; known {
		return refuse("refused", fmt.Errorf("key %s is already a member", newcomer.Short()))
	}
	if err := n.useInvite(inv); err != nil {
		return refuse(inviteCode(err), err)
	}
	name, err := home.LearnPeer(n.home, req.Name, req.Addr, newcomer, config.SourceInvite)
	if err != nil {
		return refuse("refused", err)
	}
	if err := n.reload(); err != nil {
		return refuse("refused", err)
	}
	adm := membership.Admit{Inviter: n.self, Member: newcomer, Name: req.Name, Addr: req.Addr, Nonce: inv.Nonce, Issued: n.now()}
	text, err := adm.Sign(n.key)
	if err != nil {
		return refuse("refused", err)
	}
	n.auditAdmission(ctx, KindMemberAdmit, newcomer, "in", map[string]any{
		"name": name, "addr": req.Addr, "source": config.SourceInvite, "invite": inv.Nonce.String()})
	n.log.Info("member admitted by invite", "peer", newcomer, "name", name)
	n.adm.counts.joinsAdmitted.Add(1)
	n.adm.markSeen(text)
	reply := JoinReply{Name: n.Name(), Admit: text}
	for _, p := range n.Peers() {
		if p.ID != newcomer {
			reply.Members = append(reply.Members, MemberInfo{Name: p.Name, ID: p.ID.String(), Addr: p.Addr})
		}
	}
	return reply
}

// inviteCode names the class of an invite error for the join reply.
func inviteCode(err error) string {
	switch {
	case errors.Is(err, membership.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, membership.ErrExpired):
		return "expired"
	case errors.Is(err, membership.ErrUsedUp):
		return "used_up"
	case errors.Is(err, membership.ErrNotInviter):
		return "not_inviter"
	}
	return "malformed"
}

// useInvite counts one use of inv in the ledger, on disk before the join is
// acknowledged, refusing an invite this node never issued or that is used up.
func (n *Node) useInvite(inv membership.Invite) error {
	a := &n.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.ledger.Invites[inv.Nonce.String()]
	if u == nil {
		// Signed by this key but not in the ledger: issued before the
		// ledger was lost, or by a copy of this key elsewhere.
		return &membership.StatementError{Kind: membership.KindInvite, Reason: "not in this node's invite ledger", Err: membership.ErrUsedUp}
	}
	if u.Used >= u.Uses {
		return &membership.StatementError{Kind: membership.KindInvite, Reason: fmt.Sprintf("all %d uses taken", u.Uses), Err: membership.ErrUsedUp}
	}
	u.Used++
	if err := a.saveLocked(); err != nil {
		u.Used--
		return err
	}
	a.rebuildLocked(n.now())
	return nil
}

// Invite signs a join token for this node, valid for ttl and uses joins, that
// newcomers present at addr ("" : the bound federation address, which must
// then not be a wildcard).
func (n *Node) Invite(ctx context.Context, ttl time.Duration, uses int, addr string) (string, membership.Invite, error) {
	m := n.state.Load().cfg.Membership
	if ttl > m.InviteTTL() {
		return "", membership.Invite{}, refusal.New(refusal.StageUsage, "--ttl %v is longer than membership.max_invite_ttl (%v)", ttl, m.InviteTTL())
	}
	if uses < 1 || uses > m.InviteUses() {
		return "", membership.Invite{}, refusal.New(refusal.StageUsage, "--uses %d outside [1, %d] (membership.max_invite_uses)", uses, m.InviteUses())
	}
	if addr == "" {
		a, ok := n.tr.Addr().(*net.TCPAddr)
		if !ok || a.IP.IsUnspecified() {
			return "", membership.Invite{}, refusal.New(refusal.StageUsage, "this node listens on a wildcard address; give the address newcomers should use with --addr")
		}
		addr = a.String()
	}
	inv, tok, err := membership.IssueInvite(n.key, addr, n.now(), ttl, uses, nil)
	if err != nil {
		return "", membership.Invite{}, refusal.Wrap(refusal.StageUsage, err)
	}
	a := &n.adm
	a.mu.Lock()
	now := n.now()
	for k, u := range a.ledger.Invites { // forget spent and expired invites
		if !now.Before(u.Expires) {
			delete(a.ledger.Invites, k)
		}
	}
	a.ledger.Invites[inv.Nonce.String()] = &inviteUse{Uses: uses, Expires: inv.Expires}
	err = a.saveLocked()
	a.rebuildLocked(now)
	a.mu.Unlock()
	if err != nil {
		return "", membership.Invite{}, err
	}
	n.auditAdmission(ctx, KindInviteIssued, identity.PublicKey{}, "", map[string]any{
		"invite": inv.Nonce.String(), "uses": uses, "expires": inv.Expires, "addr": addr})
	return tok, inv, nil
}

// JoinError is a join the inviter refused: Code is one of JoinReply's codes.
// It unwraps to the membership error of the same meaning.
type JoinError struct {
	Code   string
	Reason string
}

func (e *JoinError) Error() string { return "join refused by the inviter: " + e.Reason }

func (e *JoinError) Unwrap() error {
	switch e.Code {
	case "expired":
		return membership.ErrExpired
	case "used_up":
		return membership.ErrUsedUp
	case "bad_signature":
		return membership.ErrBadSignature
	case "not_inviter":
		return membership.ErrNotInviter
	case "malformed":
		return membership.ErrMalformed
	}
	return nil
}

// JoinResult is what Join learned.
type JoinResult struct {
	Inviter identity.PublicKey
	Name    string // the inviter's nickname in this node's book
	Members int    // members learned besides the inviter
}

// Join presents token to its inviter; on success the inviter and the members
// it lists enter this node's peer book (with no grants). addr is where peers
// reach this node ("": the bound address).
func (n *Node) Join(ctx context.Context, token, addr string) (JoinResult, error) {
	inv, err := membership.ParseInvite(token)
	if err != nil {
		return JoinResult{}, refusal.Wrap(refusal.StageUsage, err)
	}
	if err := inv.Check(n.now()); err != nil {
		return JoinResult{}, refusal.Wrap(refusal.StageUsage, err)
	}
	if inv.Inviter == n.self {
		return JoinResult{}, refusal.New(refusal.StageUsage, "this token was issued by this node")
	}
	if addr == "" {
		a := n.tr.Addr()
		if a == nil {
			return JoinResult{}, refusal.New(refusal.StageUsage, "the node is not listening yet; start it before joining")
		}
		addr = a.String()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*admissionIO)
	defer cancel()
	conn, err := n.tr.Dial(ctx, inv.Addr, inv.Inviter, ProtoJoin)
	if err != nil {
		return JoinResult{}, joinDialError(inv.Addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(admissionIO))
	req, _ := json.Marshal(JoinRequest{Token: token, Name: n.Name(), Addr: addr})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return JoinResult{}, refusal.Wrap(refusal.StageTransport, err)
	}
	line, err := readLine(conn, joinReplyMax)
	if err != nil {
		return JoinResult{}, refusal.Wrap(refusal.StageTransport, fmt.Errorf("join reply: %w", err))
	}
	var rep JoinReply
	if err := json.Unmarshal(line, &rep); err != nil {
		return JoinResult{}, refusal.Wrap(refusal.StageWire, fmt.Errorf("join reply is not JSON: %w", err))
	}
	if rep.Code != "" {
		return JoinResult{}, &refusal.Error{Stage: refusal.StagePolicy, Reason: (&JoinError{Code: rep.Code, Reason: rep.Reason}).Error(), Err: &JoinError{Code: rep.Code, Reason: rep.Reason}}
	}
	adm, err := membership.ParseAdmit(rep.Admit)
	if err != nil || adm.Inviter != inv.Inviter || adm.Member != n.self {
		return JoinResult{}, refusal.New(refusal.StageWire, "the inviter's introduction of this node does not verify")
	}
	name := rep.Name
	if !config.ValidName(name) {
		name = "inviter"
	}
	res := JoinResult{Inviter: inv.Inviter}
	if res.Name, err = home.LearnPeer(n.home, name, inv.Addr, inv.Inviter, config.SourceInvite); err != nil {
		return JoinResult{}, err
	}
	for i, m := range rep.Members {
		if i >= 1024 {
			break
		}
		k, err := identity.ParseDID(m.ID)
		if err != nil || k == n.self || n.adm.refusedWhy(k) != "" || !config.ValidName(m.Name) || config.ValidAddr(m.Addr) != nil {
			continue
		}
		if _, err := home.LearnPeer(n.home, m.Name, m.Addr, k, config.SourceGossip); err == nil {
			res.Members++
		}
	}
	if err := n.reload(); err != nil {
		return JoinResult{}, err
	}
	n.adm.markSeen(rep.Admit)
	n.auditAdmission(ctx, KindMemberJoined, inv.Inviter, "out", map[string]any{
		"inviter": res.Name, "invite": inv.Nonce.String(), "members": res.Members})
	return res, nil
}

// joinDialError says why the inviter could not be reached, once: the
// transport's own errors already begin with its name.
func joinDialError(addr string, err error) error {
	var he *transport.HandshakeError
	reason := fmt.Sprintf("could not reach the inviter at %s", addr)
	switch {
	case errors.As(err, &he):
		reason = fmt.Sprintf("handshake with the inviter at %s refused: %s", addr, he.Reason)
	case errors.Is(err, transport.ErrUnreachable):
		reason = fmt.Sprintf("the inviter at %s is unreachable", addr)
	case errors.Is(err, context.DeadlineExceeded):
		reason = fmt.Sprintf("no answer from the inviter at %s within %v", addr, 2*admissionIO)
	}
	return &refusal.Error{Stage: refusal.StageTransport, Reason: reason, Err: err}
}

// auditAdmission appends one admission entry; a failure is logged (the
// change it records has been made and persisted in the home).
func (n *Node) auditAdmission(ctx context.Context, kind string, peer identity.PublicKey, dir string, report map[string]any) {
	e := audit.Entry{Kind: kind, Direction: dir, Outcome: "applied"}
	if !peer.IsZero() {
		e.Peer = peer.String()
	}
	e.Report, _ = json.Marshal(report)
	if _, err := n.audit.Append(context.WithoutCancel(ctx), e); err != nil {
		n.log.Error("audit append failed", "kind", kind, "err", err)
	}
}

// Conns is how many connections the transport holds open (accepted and
// pooled), for `treaty members` and tests.
func (n *Node) Conns() int { return n.tr.Stats().Conns }
