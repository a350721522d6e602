package node

import (
	"crypto/ed25519"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/sanitize"
)

// sanitizerConfig is the outbound sanitizer's configuration: the pseudonym
// key and vault, the vault's bounds, and the node's own secrets as canaries
// (the identity key's seed, its expanded form and its key file line, the
// pseudonym key, and the operator's sanitize.canaries), so that no policy
// and no encoding lets them out.
func sanitizerConfig(key identity.PrivateKey, pkey []byte, vaultPath string, cfg *config.Config, now func() time.Time) sanitize.Config {
	c := sanitize.Config{
		PseudonymKey: pkey,
		VaultPath:    vaultPath,
		Vault:        sanitize.VaultLimits{MaxPerPeer: cfg.Sanitize.Vault.MaxPerPeer, TTL: cfg.Sanitize.Vault.TTL.D()},
		Now:          now,
		Canaries:     [][]byte{pkey},
	}
	if priv, ok := key.Signer().(ed25519.PrivateKey); ok {
		c.Canaries = append(c.Canaries, priv.Seed(), []byte(priv))
	}
	if kf, err := identity.MarshalKeyFile(key); err == nil {
		c.Canaries = append(c.Canaries, []byte(strings.TrimSpace(string(kf))))
	}
	for _, v := range cfg.Sanitize.Canaries {
		c.Canaries = append(c.Canaries, []byte(v))
	}
	return c
}
