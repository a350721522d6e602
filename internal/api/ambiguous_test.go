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

// TestAmbiguousQueriesRefused: a query parameter given twice (Get took the
// first), a malformed pair (Get dropped it) or a value that is not UTF-8 is
// refused, stage usage.
func TestAmbiguousQueriesRefused(t *testing.T) {
	t.Parallel()
	e := start(t, "acme")
	for _, path := range []string{
		"/v1/caps?peer=acme&peer=globex",
		"/v1/caps?peer=%zz",
		"/v1/caps?peer=glob%ffex",
		"/v1/kv/get?group=g&key=k&group=h",
		"/v1/kv/ls?group=g&prefix=a&prefix=b",
		"/v1/motions/show?group=g;name=m",
	} {
		e.rawError(t, "GET", path, "", 400, localapi.StageUsage)
	}
}
