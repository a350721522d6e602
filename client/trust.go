package client

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/treaty-dev/treaty/internal/home"
)

// TrustSet asks the running node to change peer's trust bounds: POST /v1/trust/set
// with a home.TrustOverride as JSON. peer is a did:key. A nil floor or ceiling
// leaves that bound as it is, home.ClearBound ("none") removes it, otherwise it is
// a level name; lift ends a quarantine. The node answers 200 with any JSON object.
// When no node is running it returns ErrNotRunning, and the caller may edit the
// book directly with home.SetTrust.
func (c *Client) TrustSet(ctx context.Context, peer string, floor, ceiling *string, lift bool) error {
	var out json.RawMessage
	return c.do(ctx, http.MethodPost, "/v1/trust/set", home.TrustOverride{Peer: peer, Floor: floor, Ceiling: ceiling, Lift: lift}, &out)
}
