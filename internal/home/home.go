// Package home is a node's home directory: its layout and the edits that the
// CLI (and any embedder) makes to it. Each edit validates before it writes and
// writes atomically, so a running node reloading the files never sees a torn or
// invalid state.
package home

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/node"
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

// Init creates a home: a new identity key (0600), treaty.yaml and an empty
// policy.cedar (deny all).
func Init(dir, name, listen string) (identity.PublicKey, error) {
	if listen == "" {
		listen = config.DefaultListen
	}
	cfg := &config.Config{Name: name, Listen: listen}
	if err := cfg.Validate(); err != nil {
		return identity.PublicKey{}, err
	}
	keyPath := filepath.Join(dir, node.KeyFile)
	if _, err := os.Stat(keyPath); err == nil {
		return identity.PublicKey{}, fmt.Errorf("%w in %s", ErrExists, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return identity.PublicKey{}, fmt.Errorf("home: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return identity.PublicKey{}, fmt.Errorf("home: %w", err)
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
		if err := config.WriteFileAtomic(pol, []byte(header), 0o600); err != nil {
			return identity.PublicKey{}, err
		}
	}
	return key.Public(), nil
}

// ID returns the home's peer ID, refusing a key file others can read.
func ID(dir string) (identity.PublicKey, error) {
	k, err := identity.LoadKeyFile(filepath.Join(dir, node.KeyFile))
	if err != nil {
		return identity.PublicKey{}, err
	}
	return k.Public(), nil
}

// edit loads treaty.yaml, applies f and saves the result.
func edit(dir string, f func(*config.Config) error) error {
	cfg, err := config.Load(dir)
	if err != nil {
		return err
	}
	if err := f(cfg); err != nil {
		return err
	}
	return config.Save(dir, cfg)
}

// AddPeer adds (or updates, when the ID is known) a peer book entry.
func AddPeer(dir, name, addr, id string) error {
	if _, err := identity.ParseDID(id); err != nil {
		return err
	}
	return edit(dir, func(c *config.Config) error {
		for i, p := range c.Peers {
			if p.ID == id {
				c.Peers[i].Name, c.Peers[i].Addr = name, addr
				return nil
			}
			if p.Name == name {
				return fmt.Errorf("home: nickname %q is already used by %s", name, p.ID)
			}
		}
		c.Peers = append(c.Peers, config.Peer{Name: name, ID: id, Addr: addr})
		return nil
	})
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
		return fmt.Errorf("home: no peer %q in the peer book", ref)
	})
}

// Expose adds or replaces a capability.
func Expose(dir string, cp config.Capability) error {
	return edit(dir, func(c *config.Config) error {
		for i, old := range c.Capabilities {
			if old.Name == cp.Name {
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
	p, ok := cfg.Peer(ref)
	if !ok {
		return identity.PublicKey{}, fmt.Errorf("home: no peer %q in the peer book", ref)
	}
	return identity.ParseDID(p.ID)
}

// Grant lets peer list and call capability.
func Grant(dir, peerRef, capability string) (bool, error) {
	k, err := ResolvePeer(dir, peerRef)
	if err != nil {
		return false, err
	}
	return policy.Grant(dir, k, capability)
}

// Ungrant removes the permit Grant wrote. It reports whether a hand-written
// policy still allows the call.
func Ungrant(dir, peerRef, capability string) (changed, stillAllowed bool, err error) {
	k, err := ResolvePeer(dir, peerRef)
	if err != nil {
		return false, false, err
	}
	changed, err = policy.Revoke(dir, k, capability)
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
	k, err := identity.LoadKeyFile(filepath.Join(dir, node.KeyFile))
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
