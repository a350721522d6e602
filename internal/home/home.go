// Package home is a node's home directory as the CLI (and any embedder) uses
// it: where it is (Default), how it is made (Init), and the edits made to it
// (peers, capabilities, grants, limits, trust bounds); the file names and the
// lock are package homedir's. Each edit validates before it writes and writes
// atomically, so a running node reloading the files never sees a torn or
// invalid state.
package home

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/policy"
	"github.com/treaty-dev/treaty/internal/sanitize"
	"github.com/treaty-dev/treaty/internal/screen"
)

// Default returns $TREATY_HOME, else ~/.treaty.
func Default() string {
	if h := os.Getenv("TREATY_HOME"); h != "" {
		return h
	}
	if u, err := os.UserHomeDir(); err == nil {
		return filepath.Join(u, ".treaty")
	}
	return ".treaty"
}

// ErrExists is returned by Init when the home already holds an identity.
var ErrExists = errors.New("home: already initialised (identity.key exists)")

// ErrInvalid is wrapped by every error that blames the arguments of an edit
// rather than the home: a bad did:key, name, address or capability, an unknown
// peer, a conflict the caller must resolve with a flag. The CLI maps it to a
// usage error (exit 2).
var ErrInvalid = errors.New("home: invalid argument")

// invalidError marks err as ErrInvalid without adding to its message.
type invalidError struct{ err error }

func (e *invalidError) Error() string        { return e.err.Error() }
func (e *invalidError) Unwrap() error        { return e.err }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(err error) error { return &invalidError{err} }

func invalidf(format string, a ...any) error {
	return invalid(fmt.Errorf("home: "+format, a...))
}

// Init creates a home: a new identity key (0600), treaty.yaml and an empty
// policy.cedar (deny all).
func Init(dir, name, listen string) (identity.PublicKey, error) {
	if listen == "" {
		listen = config.DefaultListen
	}
	cfg := &config.Config{Name: name, Listen: listen}
	if err := cfg.Validate(); err != nil {
		return identity.PublicKey{}, invalid(err)
	}
	keyPath := filepath.Join(dir, homedir.KeyFile)
	if _, err := os.Stat(keyPath); err == nil {
		return identity.PublicKey{}, fmt.Errorf("%w in %s", ErrExists, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return identity.PublicKey{}, fmt.Errorf("home: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return identity.PublicKey{}, fmt.Errorf("home: %w", err)
	}
	unlock, err := homedir.Lock(context.Background(), dir)
	if err != nil {
		return identity.PublicKey{}, err
	}
	defer unlock()
	if _, err := os.Stat(keyPath); err == nil { // a parallel init won
		return identity.PublicKey{}, fmt.Errorf("%w in %s", ErrExists, dir)
	}
	key, err := identity.Generate(nil)
	if err != nil {
		return identity.PublicKey{}, err
	}
	if err := identity.WriteKeyFile(keyPath, key); err != nil {
		return identity.PublicKey{}, err
	}
	if err := config.Save(dir, cfg); err != nil {
		return identity.PublicKey{}, err
	}
	pol := filepath.Join(dir, policy.FileName)
	if _, err := os.Stat(pol); errors.Is(err, os.ErrNotExist) {
		header := "// treaty policy (Cedar). Default deny: nothing is visible or callable without a permit.\n" +
			"// 'treaty grant PEER CAP' appends permits below; hand-written policies may test\n" +
			"// context.trust (decimal), context.level (string) and context.depth (long).\n"
		if err := homedir.WriteFile(pol, []byte(header), 0o600); err != nil {
			return identity.PublicKey{}, err
		}
	}
	return key.Public(), nil
}

// ID returns the home's peer ID, refusing a key file others can read.
func ID(dir string) (identity.PublicKey, error) {
	k, err := identity.LoadKeyFile(filepath.Join(dir, homedir.KeyFile))
	if err != nil {
		return identity.PublicKey{}, err
	}
	return k.Public(), nil
}

// locked runs f under the home's edit lock, so that its read-modify-write of
// treaty.yaml or policy.cedar cannot interleave with another edit.
func locked(dir string, f func() error) error {
	unlock, err := homedir.Lock(context.Background(), dir)
	if err != nil {
		return err
	}
	defer unlock()
	return f()
}

// edit loads treaty.yaml, applies f and saves the result, all under the edit
// lock. The file was valid before f, so a validation failure after it blames
// the change: it wraps ErrInvalid.
func edit(dir string, f func(*config.Config) error) error {
	return locked(dir, func() error {
		cfg, err := config.Load(dir)
		if err != nil {
			return err
		}
		if err := f(cfg); err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return invalid(err)
		}
		return config.Save(dir, cfg)
	})
}

// PeerChange is one peer book entry to add. Rename allows giving a known key a
// new nickname (or address); without it, a known key is refused, so a typo
// cannot silently rename a peer.
type PeerChange struct {
	Name, Addr, ID string
	Rename         bool
	// Via, when SetVia, replaces the entry's via (the relay peer it is
	// dialed through; "" dials it directly). Without SetVia a known entry
	// keeps its via, so an address learned by gossip does not undo it.
	Via    string
	SetVia bool
}

// AddPeer adds a peer book entry, or changes the address of a known one; it is
// SetPeer without Rename.
func AddPeer(dir, name, addr, id string) error {
	return SetPeer(dir, PeerChange{Name: name, Addr: addr, ID: id})
}

// SetPeer adds a peer book entry or updates a known key's entry. It refuses the
// node's own key, a nickname used by another key, and, unless Rename is set, a
// new nickname for a key already in the book.
func SetPeer(dir string, p PeerChange) error {
	k, err := identity.ParseDID(p.ID)
	if err != nil {
		return invalid(err)
	}
	if !config.ValidName(p.Name) {
		return invalidf("nickname %q: want 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", p.Name)
	}
	if self, err := ID(dir); err == nil && self == k {
		return invalidf("%s is this node's own key; a node is not its own peer", k.Short())
	}
	return edit(dir, func(c *config.Config) error {
		at := -1
		for i, old := range c.Peers {
			if old.Name == p.Name && old.ID != p.ID {
				return invalidf("nickname %q is already used by %s; pick another or remove it first", p.Name, shortID(old.ID))
			}
			if old.ID == p.ID {
				at = i
			}
		}
		if at < 0 {
			c.Peers = append(c.Peers, config.Peer{Name: p.Name, ID: p.ID, Addr: p.Addr, Via: p.Via})
			return nil
		}
		old := c.Peers[at]
		if old.Name != p.Name && !p.Rename {
			return invalidf("%s is already in the peer book as %q; use --rename to call it %q", k.Short(), old.Name, p.Name)
		}
		c.Peers[at].Name, c.Peers[at].Addr = p.Name, p.Addr
		if p.SetVia {
			c.Peers[at].Via = p.Via
		}
		return nil
	})
}

// CheckFiles reports why the home's treaty.yaml or policy.cedar would not be
// applied by a node (nil when both are valid): a running node then keeps its
// last valid configuration.
func CheckFiles(dir string) error {
	if _, err := config.Load(dir); err != nil {
		return err
	}
	_, err := policy.Load(dir)
	return err
}

// shortID is the short form of a did:key for messages.
func shortID(did string) string {
	if k, err := identity.ParseDID(did); err == nil {
		return k.Short()
	}
	return did
}

// RemovePeer removes a peer by nickname or ID. Its grants stay in policy.cedar
// but are inert: a key outside the peer book cannot finish a handshake.
func RemovePeer(dir, ref string) error {
	return edit(dir, func(c *config.Config) error {
		for i, p := range c.Peers {
			if p.Name == ref || p.ID == ref {
				c.Peers = append(c.Peers[:i], c.Peers[i+1:]...)
				return nil
			}
		}
		return &UnknownPeerError{Ref: ref}
	})
}

// ErrCapabilityExists is wrapped by Expose when the capability is defined and
// replace is false.
var ErrCapabilityExists = errors.New("home: capability already exposed")

// Expose adds a capability, or replaces one of the same name when replace is
// set.
func Expose(dir string, cp config.Capability, replace bool) error {
	if !config.ValidCapability(cp.Name) {
		return invalidf("capability %q: want %s", cp.Name, config.CapabilityRule)
	}
	return edit(dir, func(c *config.Config) error {
		for i, old := range c.Capabilities {
			if old.Name == cp.Name {
				if !replace {
					return invalid(fmt.Errorf("%w: %q (use --replace to change it)", ErrCapabilityExists, cp.Name))
				}
				c.Capabilities[i] = cp
				return nil
			}
		}
		c.Capabilities = append(c.Capabilities, cp)
		return nil
	})
}

// ResolvePeer finds a peer's key by nickname or did:key in the peer book.
func ResolvePeer(dir, ref string) (identity.PublicKey, error) {
	cfg, err := config.Load(dir)
	if err != nil {
		return identity.PublicKey{}, err
	}
	return resolve(cfg, ref)
}

func resolve(cfg *config.Config, ref string) (identity.PublicKey, error) {
	p, ok := cfg.Peer(ref)
	if !ok {
		return identity.PublicKey{}, &UnknownPeerError{Ref: ref}
	}
	return identity.ParseDID(p.ID)
}

// editPolicy resolves peerRef and rewrites policy.cedar with f, under the edit
// lock.
func editPolicy(dir, peerRef, capability string, f func(src []byte, k identity.PublicKey) ([]byte, bool, error)) (changed bool, k identity.PublicKey, err error) {
	if !config.ValidCapability(capability) {
		return false, k, invalidf("capability %q: want %s", capability, config.CapabilityRule)
	}
	err = locked(dir, func() error {
		cfg, err := config.Load(dir)
		if err != nil {
			return err
		}
		if k, err = resolve(cfg, peerRef); err != nil {
			return err
		}
		src, err := policy.ReadFile(dir)
		if err != nil {
			return err
		}
		out, ch, err := f(src, k)
		if err != nil || !ch {
			return err
		}
		changed = true
		return homedir.WriteFile(filepath.Join(dir, policy.FileName), out, 0o600)
	})
	return changed, k, err
}

// Grant lets peer list and call capability. It reports whether policy.cedar
// changed (false when the grant was already there).
func Grant(dir, peerRef, capability string) (bool, error) {
	changed, _, err := editPolicy(dir, peerRef, capability, func(src []byte, k identity.PublicKey) ([]byte, bool, error) {
		return policy.AddGrant(src, k, capability)
	})
	return changed, err
}

// Ungrant removes the permit Grant wrote. It reports whether a hand-written
// policy still allows the call.
func Ungrant(dir, peerRef, capability string) (changed, stillAllowed bool, err error) {
	changed, k, err := editPolicy(dir, peerRef, capability, func(src []byte, k identity.PublicKey) ([]byte, bool, error) {
		return policy.RemoveGrant(src, k, capability)
	})
	if err != nil {
		return false, false, err
	}
	e, err := policy.Load(dir)
	if err != nil {
		return changed, false, err
	}
	return changed, e.Authorize(k, policy.ActionCall, capability, policy.Context{Trust: 1}).Allowed, nil
}

// DryRunner builds the content gates a node at dir would use, for the dry-run
// commands (treaty scan, treaty screen): the same rules, the same pseudonym key
// (derived from the identity, so tokens match the node's), but no vault, so a
// dry run never records anything. Without an initialised home the defaults and
// a throwaway pseudonym key are used.
func DryRunner(dir string) (*sanitize.Sanitizer, *screen.Screener, *config.Config, error) {
	cfg := &config.Config{}
	var pkey []byte
	k, err := identity.LoadKeyFile(filepath.Join(dir, homedir.KeyFile))
	switch {
	case err == nil:
		if cfg, err = config.Load(dir); err != nil {
			return nil, nil, nil, err
		}
		if pkey, err = k.DeriveKey("pseudonym"); err != nil {
			return nil, nil, nil, err
		}
	case errors.Is(err, fs.ErrNotExist):
		pkey = make([]byte, 32)
		if _, err := rand.Read(pkey); err != nil {
			return nil, nil, nil, err
		}
	default:
		return nil, nil, nil, err
	}
	san, err := sanitize.New(sanitize.Config{PseudonymKey: pkey})
	if err != nil {
		return nil, nil, nil, err
	}
	scr, err := screen.New(screen.Config{})
	if err != nil {
		san.Close()
		return nil, nil, nil, err
	}
	return san, scr, cfg, nil
}
