package api_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/treaty-dev/treaty/internal/backend"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/localapi"
)

// TestWithinUnknownRefused: a within token that names no call being served
// (guessed, or kept after its call ended, or another node's) is refused with
// stage usage. Before, it was silently a direct call of the node: a backend
// that kept its token could call on after its call, without the delegation
// chain and the depth and upstream checks that come with it.
func TestWithinUnknownRefused(t *testing.T) {
	t.Parallel()
	acme, globex := start(t, "acme"), start(t, "globex")
	federate(t, acme, globex)
	tokens := make(chan string, 1)
	err := globex.n.Register(node.Handler{Info: node.CapabilityInfo{Name: "keeptoken"},
		Backend: backend.Func(func(_ context.Context, inv backend.Invocation) ([]byte, error) {
			tokens <- inv.CallToken
			return []byte(`{}`), nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := home.Grant(globex.home, "acme", "keeptoken"); err != nil {
		t.Fatal(err)
	}
	if err := globex.n.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := acme.cl.Call(t.Context(), "globex", "keeptoken", nil); err != nil {
		t.Fatal(err)
	}
	ended := <-tokens
	if ended == "" {
		t.Fatal("the backend got no call token")
	}
	call := func(token string) string {
		b, _ := json.Marshal(localapi.CallRequest{Peer: "acme", Capability: "echo", Within: token})
		return string(b)
	}
	for name, tc := range map[string]struct {
		e     *env
		token string
	}{
		"after its call ended":     {globex, ended},
		"guessed":                  {globex, "00000000000000000000000000000000"},
		"on another node's socket": {acme, ended},
	} {
		t.Run(name, func(t *testing.T) {
			tc.e.rawError(t, "POST", "/v1/call", call(tc.token), 400, localapi.StageUsage)
			tc.e.rawError(t, "POST", "/v1/stream", call(tc.token), 400, localapi.StageUsage)
		})
	}
}
