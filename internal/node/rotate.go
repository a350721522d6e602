package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// Files of a key rotation in progress.
const (
	// rotationPendingFile holds the new key and the rotation statement from
	// the moment members are told until the next Open installs the key.
	rotationPendingFile = "rotation.pending"
	// rotationDoneFile tells the first node on the new key to record the
	// rotation at the head of its new audit log.
	rotationDoneFile = "rotation.done"
)

type pendingRotation struct {
	Key       string `json:"key"` // identity.MarshalKeyFile of the new key
	Statement string `json:"statement"`
	Archive   string `json:"archive,omitempty"` // the old key's audit log, renamed
}

// RotateResult is what Rotate did.
type RotateResult struct {
	Old, New identity.PublicKey
	Acked    int // members that acknowledged the rotation
	Members  int // members in the peer book
}

// Rotate makes a new identity key, signs the hand-over with both keys and
// tells every member, who move the peer book entry, grants, trust and budgets
// to the new key. The node then needs to be opened again on the new key
// (Restart fires; `treaty run` does it by itself). Rotate refuses, changing
// nothing, when the book has members and none acknowledged: the node would be
// cut off on a key nobody knows.
func (n *Node) Rotate(ctx context.Context) (RotateResult, error) {
	if err := n.ownRotationRate(); err != nil { // rotation_rate.go
		return RotateResult{}, err
	}
	next, err := identity.Generate(nil)
	if err != nil {
		return RotateResult{}, err
	}
	r, text, err := membership.SignRotation(n.key, next, n.now())
	if err != nil {
		return RotateResult{}, err
	}
	kf, err := identity.MarshalKeyFile(next)
	if err != nil {
		return RotateResult{}, err
	}
	b, _ := json.Marshal(pendingRotation{Key: string(kf), Statement: text})
	pending := filepath.Join(n.home, rotationPendingFile)
	if _, err := os.Stat(pending); err == nil {
		return RotateResult{}, refusal.New(refusal.StageUsage, "a rotation is already waiting for the node to restart")
	}
	// On disk before anyone is told: a crash after the push still ends on
	// the new key at the next start.
	if err := homedir.WriteFile(pending, b, 0o600); err != nil {
		return RotateResult{}, err
	}
	res := RotateResult{Old: r.Old, New: r.New, Members: len(n.state.Load().peers)}
	n.adm.markSeen(text)
	res.Acked = n.spread(ctx, text, nil)
	n.publishGossip(ctx, text)
	if res.Members > 0 && res.Acked == 0 {
		os.Remove(pending)
		return res, refusal.New(refusal.StageTransport, "no member acknowledged the rotation; the key is unchanged")
	}
	n.auditAdmission(ctx, KindKeyRotated, r.New, "out", map[string]any{"old": r.Old.String(), "new": r.New.String(), "acked": res.Acked})
	n.adm.counts.rotationsOut.Add(1)
	n.log.Info("identity key rotated; the node restarts on the new key", "old", r.Old, "new", r.New, "acked", res.Acked)
	n.adm.requestRestart()
	return res, nil
}

// requestRestart closes the Restart channel (once).
func (a *admission) requestRestart() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.restart == nil {
		a.restart = make(chan struct{})
	}
	select {
	case <-a.restart:
	default:
		close(a.restart)
	}
}

// Restart is closed when the node must be closed and opened again (after
// Rotate); a node never restarts itself.
func (n *Node) Restart() <-chan struct{} {
	a := &n.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.restart == nil {
		a.restart = make(chan struct{})
	}
	return a.restart
}

// finishRotation installs the key of a pending rotation; Open calls it before
// it loads the key. The old key's audit log is archived beside the new one
// (its checkpoints are signed by the old key), and the new log starts with
// the rotation (rotationDoneFile). Each step can be run again after a crash.
func finishRotation(home string) error {
	pending := filepath.Join(home, rotationPendingFile)
	b, err := os.ReadFile(pending)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	var p pendingRotation
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("node: %s: %w", pending, err)
	}
	next, err := identity.ParseKeyFile([]byte(p.Key))
	if err != nil {
		return fmt.Errorf("node: %s: %w", pending, err)
	}
	r, err := membership.ParseRotation(p.Statement)
	if err != nil || r.New != next.Public() {
		return fmt.Errorf("node: %s holds a rotation that does not match its key", pending)
	}
	keyPath := filepath.Join(home, KeyFile)
	cur, err := identity.LoadKeyFile(keyPath)
	if err != nil {
		return err
	}
	if cur.Public() == r.Old {
		p.Archive = "audit-" + strings.ToLower(r.Old.Short()) + ".db"
		for _, suffix := range []string{"", "-wal", "-shm"} {
			err := os.Rename(filepath.Join(home, AuditFile+suffix), filepath.Join(home, p.Archive+suffix))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("node: archive the old key's audit log: %w", err)
			}
		}
		tmp := keyPath + ".new"
		os.Remove(tmp)
		if err := identity.WriteKeyFile(tmp, next); err != nil {
			return err
		}
		if err := os.Rename(tmp, keyPath); err != nil {
			return fmt.Errorf("node: install the rotated key: %w", err)
		}
	} else if cur.Public() != r.New {
		return fmt.Errorf("node: %s rotates %s, but the home's key is %s", pending, r.Old.Short(), cur.Public().Short())
	}
	done, _ := json.Marshal(pendingRotation{Statement: p.Statement, Archive: p.Archive})
	if err := homedir.WriteFile(filepath.Join(home, rotationDoneFile), done, 0o600); err != nil {
		return err
	}
	return os.Remove(pending)
}

// recordRotation runs when a node on a new key starts: the rotation goes into
// the ledger (the old key is this node's no more) and heads the new audit log.
func (n *Node) recordRotation(ctx context.Context) error {
	path := filepath.Join(n.home, rotationDoneFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	var p pendingRotation
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("node: %s: %w", path, err)
	}
	r, err := membership.ParseRotation(p.Statement)
	if err != nil {
		return fmt.Errorf("node: %s: %w", path, err)
	}
	a := &n.adm
	a.mu.Lock()
	if recordLocked(&a.ledger.Rotations, p.Statement) {
		err = a.saveLocked()
		a.rebuildLocked(n.now())
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	n.adm.markSeen(p.Statement)
	n.auditAdmission(ctx, KindKeyRotated, r.Old, "", map[string]any{
		"old": r.Old.String(), "new": r.New.String(), "issued": r.Issued, "old_audit_log": p.Archive})
	return os.Remove(path)
}
