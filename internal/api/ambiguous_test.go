package api_test

import (
	"testing"

	"github.com/treaty-dev/treaty/localapi"
)

// TestAmbiguousBodiesRefused: over the socket, a call whose peer is given
// twice or in another case is refused (400, stage usage) before anything is
// resolved; before, the last "peer" won and "Peer" stood for "peer".
func TestAmbiguousBodiesRefused(t *testing.T) {
	t.Parallel()
	e := start(t, "acme")
	for _, body := range []string{
		`{"peer":"acme","capability":"echo","peer":"globex"}`,
		`{"Peer":"globex","capability":"echo"}`,
		`{"peer":"globex","capability":"echo","WITHIN":"00"}`,
		"{\"peer\":\"glob\xffex\",\"capability\":\"echo\"}",
	} {
		e.rawError(t, "POST", "/v1/call", body, 400, localapi.StageUsage)
		e.rawError(t, "POST", "/v1/stream", body, 400, localapi.StageUsage)
	}
	e.rawError(t, "POST", "/v1/trust/set", `{"peer":"globex","lift":true,"lift":false}`, 400, localapi.StageUsage)
}
