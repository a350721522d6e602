package client

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/treaty-dev/treaty/internal/home"
)

// TrustSet asks the running node to change peer's trust bounds: POST /v1/trust/set
// with a home.TrustOverride as JSON. peer is a did:key or nickname. A nil floor or
// ceiling leaves that bound as it is, "" or home.ClearBound ("none") removes it
// (sent as ""), otherwise it is a level name; lift ends a quarantine. The node
// answers 200 with a JSON object. When no node is running it returns
// ErrNotRunning, and the caller may edit the book directly with home.SetTrust.
func (c *Client) TrustSet(ctx context.Context, peer string, floor, ceiling *string, lift bool) error {
	var out json.RawMessage
	body := home.TrustOverride{Peer: peer, Floor: wireBound(floor), Ceiling: wireBound(ceiling), Lift: lift}
	return c.do(ctx, http.MethodPost, "/v1/trust/set", body, &out)
}

// wireBound spells "clear the bound" as the local API does: "".
func wireBound(s *string) *string {
	if s != nil && strings.EqualFold(*s, home.ClearBound) {
		empty := ""
		return &empty
	}
	return s
}
