package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"testing"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/sanitize"
)

// Issue 10, defect 1: the node's sanitizer blocks its own identity key in
// every encoding, and the operator's canaries, even under a policy that
// allows every category.
func TestSanitizerBlocksOwnSecrets(t *testing.T) {
	key, err := identity.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkey, err := key.DeriveKey("pseudonym")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Sanitize: config.DataPolicy{Canaries: []string{"prod-db-root-Zq81"}}}
	s, err := sanitize.New(sanitizerConfig(key, pkey, "", cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seed := key.Signer().(ed25519.PrivateKey).Seed()
	kf, _ := identity.MarshalKeyFile(key)
	allow := sanitize.Policy{Secrets: sanitize.ActionAllow, PII: sanitize.ActionAllow}
	for name, in := range map[string]string{
		"key file":    string(kf),
		"seed base64": base64.StdEncoding.EncodeToString(seed),
		"seed b64url": base64.RawURLEncoding.EncodeToString(seed),
		"seed hex":    hex.EncodeToString(seed),
		"pseudonym":   hex.EncodeToString(pkey),
		"canary":      `{"note":"the password is prod-db-root-Zq81"}`,
	} {
		if res := s.DryRun("did:key:zpeer", allow, []byte(in)); res.Action != sanitize.ActionBlock {
			t.Errorf("%s: action %s, want block", name, res.Action)
		}
	}
	if res := s.DryRun("did:key:zpeer", allow, []byte(key.Public().String())); res.Action == sanitize.ActionBlock {
		t.Error("the public did:key is blocked")
	}
}
