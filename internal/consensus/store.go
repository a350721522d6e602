package consensus

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
)

// The layout of a manager's directory (HOME/groups):
//
//	groups.json        the groups created with the CLI or the local API
//	NAME/genesis       the group's definition at epoch 0 (fsm canonical encoding)
//	NAME/seq           the highest request sequence number reserved for this node
//	NAME/engine/       the engine's durable state (log, WAL, snapshots)
const (
	groupsFile  = "groups.json"
	genesisFile = "genesis"
	seqFile     = "seq"
	engineDir   = "engine"
)

// MaxGroups bounds the groups one node runs (declared plus created): each
// holds an engine, its goroutines and its connections.
const MaxGroups = 64

// seqBlock is how many sequence numbers one durable write reserves: a
// restart skips at most that many, which fsm allows (gaps are fine).
const seqBlock = 1024

// storedGroup is one entry of groups.json.
type storedGroup struct {
	Name    string   `json:"name"`
	Mode    fsm.Mode `json:"mode"`
	Members []string `json:"members"`         // did:key, sorted
	Join    bool     `json:"join,omitempty"`  // joined after a membership change: Members is the epoch-0 list, without this node
	Nonce   string   `json:"nonce,omitempty"` // the creation nonce (hex), if the group has one
}

// createdGroup is a group made through the CLI: created, or joined.
type createdGroup struct {
	g    fsm.Group
	join bool
}

func (c createdGroup) source() string {
	if c.join {
		return SourceJoin
	}
	return SourceCLI
}

func readGroupsFile(dir string) ([]createdGroup, error) {
	b, err := os.ReadFile(filepath.Join(dir, groupsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	var stored []storedGroup
	if err := json.Unmarshal(b, &stored); err != nil {
		return nil, fmt.Errorf("consensus: %s: %w", filepath.Join(dir, groupsFile), err)
	}
	out := make([]createdGroup, 0, len(stored))
	for i, s := range stored {
		keys := make([]identity.PublicKey, len(s.Members))
		for j, m := range s.Members {
			if keys[j], err = identity.ParseDID(m); err != nil {
				return nil, fmt.Errorf("consensus: %s: groups[%d].members[%d]: %w", groupsFile, i, j, err)
			}
		}
		g, err := fsm.NewGroup(s.Name, s.Mode, 0, keys)
		if err == nil {
			g.Nonce, err = fsm.ParseNonce(s.Nonce)
		}
		if err != nil {
			return nil, fmt.Errorf("consensus: %s: groups[%d]: %w", groupsFile, i, err)
		}
		out = append(out, createdGroup{g: g, join: s.Join})
	}
	return out, nil
}

func writeGroupsFile(dir string, gs []createdGroup) error {
	stored := make([]storedGroup, len(gs))
	for i, c := range gs {
		g := c.g
		s := storedGroup{Name: g.Name, Mode: g.Mode, Members: make([]string, len(g.Members)), Join: c.join, Nonce: g.Nonce.String()}
		for j, m := range g.Members {
			s.Members[j] = m.String()
		}
		stored[i] = s
	}
	b, err := json.MarshalIndent(stored, "", "  ")
	if err != nil {
		return err
	}
	return homedir.WriteFile(filepath.Join(dir, groupsFile), append(b, '\n'), 0o600)
}

// checkGenesis records g as the group's definition at epoch 0 the first time
// the group runs, and afterwards refuses a different one: the engine's state
// was built from the first, and a silently changed definition would fork it.
func checkGenesis(dir string, g fsm.Group) error {
	path := filepath.Join(dir, genesisFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return homedir.WriteFile(path, g.Canonical(), 0o600)
	}
	if err != nil {
		return fmt.Errorf("consensus: %w", err)
	}
	old, err := fsm.ParseGroup(b)
	if err != nil {
		return fmt.Errorf("consensus: %s: %w", path, err)
	}
	if err := fsm.Compare(old, g); err != nil {
		return fmt.Errorf("consensus: group %s was created with another definition (%s); its state in %s belongs to that one: %w", g.Name, old, dir, err)
	}
	return nil
}

// seqCounter hands out this node's request sequence numbers for one group,
// strictly increasing across restarts: each block of seqBlock numbers is
// reserved on disk before the first of them is used.
type seqCounter struct {
	path           string
	next, reserved uint64
}

func openSeq(dir string) (*seqCounter, error) {
	c := &seqCounter{path: filepath.Join(dir, seqFile)}
	b, err := os.ReadFile(c.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("consensus: %w", err)
	default:
		if c.reserved, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return nil, fmt.Errorf("consensus: %s: %w", c.path, err)
		}
	}
	c.next = c.reserved + 1
	return c, nil
}

// take returns the next number; the caller serialises calls.
func (c *seqCounter) take() (uint64, error) {
	if c.next > c.reserved {
		r := c.next + seqBlock - 1
		if err := homedir.WriteFile(c.path, []byte(strconv.FormatUint(r, 10)+"\n"), 0o600); err != nil {
			return 0, fmt.Errorf("consensus: reserve sequence numbers: %w", err)
		}
		c.reserved = r
	}
	s := c.next
	c.next++
	return s, nil
}
