package client

import (
	"context"
	"net/http"
	"strings"

	"github.com/treaty-dev/treaty/localapi"
)

// ClearBound is the CLI's spelling of "remove this bound" for a trust floor or
// ceiling; TrustSet sends it as "", which is how the local API spells it.
const ClearBound = "none"

// TrustSet asks the running node to change peer's trust bounds (POST
// /v1/trust/set). peer is a did:key or nickname. A nil floor or ceiling leaves
// that bound as it is, "" or ClearBound removes it, otherwise it is a level
// name; lift ends a quarantine. When no node is running it returns
// ErrNotRunning, and the caller may edit the book directly instead.
func (c *Client) TrustSet(ctx context.Context, peer string, floor, ceiling *string, lift bool) error {
	var out localapi.OKResponse
	body := localapi.TrustSetRequest{Peer: peer, Floor: wireBound(floor), Ceiling: wireBound(ceiling), Lift: lift}
	return c.do(ctx, http.MethodPost, "/v1/trust/set", body, &out)
}

// wireBound spells "clear the bound" as the local API does: "".
func wireBound(s *string) *string {
	if s != nil && strings.EqualFold(*s, ClearBound) {
		empty := ""
		return &empty
	}
	return s
}
