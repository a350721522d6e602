package home

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/policy"
)

// LearnPeer adds a key that admission let in (an invite, another member's
// introduction) with source recorded, under name or, when another key already
// uses name, under name plus a suffix of its key. A key already in the book is
// left as it is (an operator's entry is never overwritten by hearsay). It
// reports the nickname the entry has.
func LearnPeer(dir, name, addr string, k identity.PublicKey, source string) (string, error) {
	id := k.String()
	if self, err := ID(dir); err == nil && self == k {
		return "", invalidf("%s is this node's own key", k.Short())
	}
	got := name
	err := edit(dir, func(c *config.Config) error {
		taken := false
		for _, p := range c.Peers {
			if p.ID == id {
				got = p.Name
				return nil
			}
			if p.Name == name {
				taken = true
			}
		}
		if taken {
			got = fmt.Sprintf("%.57s-%x", name, k.Bytes()[:3])
		}
		c.Peers = append(c.Peers, config.Peer{Name: got, ID: id, Addr: addr, Source: source})
		return nil
	})
	return got, err
}

// ReplaceKey moves everything treaty.yaml and policy.cedar say about old to
// next, for a key rotation: the peer book entry, grants, budget, sanitize and
// screen rules. A did:key has one canonical spelling of fixed length, so
// replacing its text replaces exactly its uses. Both files are validated
// before either is written; policy.cedar is written first, so a crash between
// the two leaves the grants on the new key and the book on the old one (the
// rotation, applied again, finishes the move). It reports whether old was in
// the peer book.
func ReplaceKey(dir string, old, next identity.PublicKey) (bool, error) {
	var found bool
	err := locked(dir, func() error {
		cfgPath := filepath.Join(dir, config.FileName)
		raw, err := os.ReadFile(cfgPath)
		if err != nil {
			return fmt.Errorf("home: %w", err)
		}
		cur, err := config.Parse(raw)
		if err != nil {
			return err
		}
		_, found = cur.Peer(old.String())
		if !found {
			return nil
		}
		cfgOut := bytes.ReplaceAll(raw, []byte(old.String()), []byte(next.String()))
		if _, err := config.Parse(cfgOut); err != nil {
			return invalid(err)
		}
		pol, err := policy.ReadFile(dir)
		if err != nil {
			return err
		}
		polOut := bytes.ReplaceAll(pol, []byte(old.String()), []byte(next.String()))
		if _, err := policy.Parse(policy.FileName, polOut); err != nil {
			return invalid(err)
		}
		if !bytes.Equal(pol, polOut) {
			if err := homedir.WriteFile(filepath.Join(dir, policy.FileName), polOut, 0o600); err != nil {
				return err
			}
		}
		return homedir.WriteFile(cfgPath, cfgOut, 0o600)
	})
	return found, err
}
